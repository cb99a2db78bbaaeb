package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// TestShareGroupSurvivesSessionFaults: share sessions broken while two
// members work through the records — connections dropped under ShareFetch
// and ShareAcknowledge, a broker forgetting the session, the partition's
// leader moving — and still every record is accepted exactly once (the
// broker's answers, counted by the ledger), and every record is done.
// Records in flight when a fault hits are handled again, with a higher
// delivery count: at least once, never lost.
func TestShareGroupSurvivesSessionFaults(t *testing.T) {
	// Each fault returns how often it hit so far, and removes itself.
	type fault func(cl *keeltest.Cluster) (hits func() int, remove func())
	drop := func(key kmsg.Key, n int) fault {
		return func(cl *keeltest.Cluster) (func() int, func()) {
			h := cl.DropConnections(key, n)
			return h.Dropped, h.Remove
		}
	}
	fail := func(key kmsg.Key, code int16, n int) fault {
		return func(cl *keeltest.Cluster) (func() int, func()) {
			h := cl.FailRequests(key, code, n, keeltest.AtTopLevel())
			return func() int { return int(h.Hits()) }, h.Remove
		}
	}
	faults := []struct {
		name   string
		inject fault
		// flush runs Poll-mode members that Flush after each batch, so
		// that acknowledgements travel in ShareAcknowledge requests (in
		// Run mode they nearly always ride on the next fetch).
		flush bool
	}{
		{"dropped fetch connections", drop(kmsg.ShareFetch, 3), false},
		{"dropped acknowledge connections", drop(kmsg.ShareAcknowledge, 3), true},
		{"session not found", fail(kmsg.ShareFetch, kerr.ShareSessionNotFound.Code, 2), false},
		{"invalid session epoch", fail(kmsg.ShareAcknowledge, kerr.InvalidShareSessionEpoch.Code, 2), true},
		{"leader moved", func(cl *keeltest.Cluster) (func() int, func()) {
			cl.MoveLeader(shareTopic, 0, (cl.Leader(shareTopic, 0)+1)%3)
			return func() int { return 1 }, func() {}
		}, false},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			const n = 2000
			// Short locks: records whose acknowledgement went to a
			// dead session come back quickly.
			cl := shareCluster(t, 2*time.Second)
			c := newClient(t, cl)
			ctx := testCtx(t, 90*time.Second)
			adm := startShareGroupAtBeginning(t, ctx, c, "g")
			l := newShareLedger()
			for i := range 2 {
				name := fmt.Sprintf("m%d", i)
				if f.flush {
					startFlushingShareMember(t, cl, name, "g", l)
					continue
				}
				m := startShareMember(t, cl, name, "g", l, func(ctx context.Context, _ *keel.Message) error {
					// A little work per record, so that faults meet
					// records in flight.
					select {
					case <-time.After(100 * time.Microsecond):
					case <-ctx.Done():
					}
					return nil
				}, keel.ShareConcurrency(4), keel.ShareMaxRecords(50))
				m.waitAssigned(t, ctx)
			}
			produceIDs(t, ctx, newProducer(t, c), shareTopic, n, nil)
			l.waitFor(t, ctx, "some records accepted", func() bool { return len(l.accepted) >= n/10 })
			hits, remove := f.inject(cl)
			l.waitFor(t, ctx, "every record accepted", func() bool { return len(l.accepted) == n })
			waitDone(t, ctx, adm, "g", n)
			remove()
			if hits() == 0 {
				t.Fatal("the fault never hit: the test proves nothing")
			}

			l.mu.Lock()
			defer l.mu.Unlock()
			again := 0
			for o := range int64(n) {
				if l.accepted[o] != 1 {
					t.Errorf("offset %d accepted %d times; handled %v", o, l.accepted[o], l.handled[o])
				}
				ds := l.handled[o]
				if len(ds) == 0 {
					t.Errorf("offset %d never handled", o)
					continue
				}
				for i, d := range ds {
					if d.count < i+1 {
						t.Errorf("offset %d: delivery %d has count %d: %v", o, i+1, d.count, ds)
					}
				}
				if len(ds) > 1 {
					again++
				}
			}
			t.Logf("%d records handled more than once; %d acknowledgements failed", again, len(l.failed))
		})
	}
}

// startFlushingShareMember runs a Poll-mode member that accepts each
// batch and flushes, until the test ends.
func startFlushingShareMember(t *testing.T, cl *keeltest.Cluster, name, group string, l *shareLedger) {
	t.Helper()
	sc, err := keel.NewShareConsumer(newClient(t, cl), group, []string{shareTopic}, keel.OnShareAcknowledged(l.acked), keel.ShareMaxRecords(20))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msgs, err := sc.Poll(context.Background())
			if err != nil {
				return // closed
			}
			for _, m := range msgs {
				l.handle(name, m)
			}
			sc.Accept(msgs...)                 // a record lost to a reset is ErrShareRecordNotHeld: fine
			_ = sc.Flush(context.Background()) // failures are in the ledger
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := sc.Close(ctx); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
		<-done
	})
}
