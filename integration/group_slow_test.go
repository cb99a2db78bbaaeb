package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
)

// A handler takes 45s on one record of each partition while another member
// joins. Nobody is kicked out (heartbeats go on), a partition moves only
// after its slow record finished, and the new owner starts after it: the
// record's offset was committed before the move.
func TestGroupSlowHandlerDuringRebalance(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, proto []keel.GroupOption) {
		if testing.Short() {
			t.Skip("takes 45s")
		}
		slow := 45 * time.Second
		if len(proto) > 0 {
			// Still over three session timeouts (6s): what the test is
			// about, at less CI time.
			slow = 20 * time.Second
		}
		cl := groupCluster(t, 4)
		c := newClient(t, cl)
		p := newProducer(t, c, keel.ManualPartitioner())
		ctx := testCtx(t, 3*time.Minute)
		for part := range int32(4) {
			for i := range 3 {
				if _, err := p.Send(ctx, &keel.Message{Topic: "orders", Partition: part, Value: []byte(fmt.Sprint(int(part)*3 + i))}); err != nil {
					t.Fatal(err)
				}
			}
		}

		type event struct {
			who     string
			offset  int64
			start   time.Time
			end     time.Time
			revoked bool
		}
		var mu sync.Mutex
		events := map[keel.TopicPartition][]event{}
		var lost []string
		assignedAt := map[string]map[keel.TopicPartition]time.Time{"A": {}, "B": {}}
		handler := func(who string) keel.HandlerFunc {
			return func(hctx context.Context, m *keel.Message) error {
				ev := event{who: who, offset: m.Offset, start: time.Now()}
				if m.Offset == 0 && who == "A" {
					time.Sleep(slow) // ignores ctx on purpose: a handler that must finish
				}
				ev.end = time.Now()
				ev.revoked = errors.Is(context.Cause(hctx), keel.ErrRevoked)
				mu.Lock()
				tp := keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}
				events[tp] = append(events[tp], ev)
				mu.Unlock()
				return nil
			}
		}
		opts := func(who string) []keel.GroupOption {
			return fastGroup(with(proto,
				keel.RebalanceTimeout(2*time.Minute),
				keel.OnLost(func(tps []keel.TopicPartition) { mu.Lock(); lost = append(lost, who); mu.Unlock() }),
				keel.OnAssigned(func(tps []keel.TopicPartition) {
					mu.Lock()
					for _, tp := range tps {
						assignedAt[who][tp] = time.Now()
					}
					mu.Unlock()
				}),
			)...)
		}
		a := startMember(t, c, "slow", handler("A"), opts("A")...)
		deadline := time.Now().Add(10 * time.Second)
		for len(a.g.Assigned()) < 4 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Second) // A is inside the slow records now
		joined := time.Now()
		b := startMember(t, c, "slow", handler("B"), opts("B")...)

		// Wait for everything: every record processed, the group settled 2/2.
		for {
			mu.Lock()
			total := 0
			for _, evs := range events {
				total += len(evs)
			}
			mu.Unlock()
			if total >= 12 && len(a.g.Assigned()) == 2 && len(b.g.Assigned()) == 2 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("not settled: %d records, A has %v, B has %v", total, a.g.Assigned(), b.g.Assigned())
			}
			time.Sleep(50 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(lost) > 0 {
			t.Fatalf("members %v lost their partitions: kicked out during the slow handler", lost)
		}
		for _, tp := range b.g.Assigned() {
			evs := events[tp]
			var slowEnd time.Time
			zeros := 0
			for _, ev := range evs {
				if ev.offset == 0 {
					zeros++
					slowEnd = ev.end
					if ev.who != "A" || !ev.revoked {
						t.Errorf("%v: offset 0 handled by %s (revoked cause seen: %v); want A, whose ctx was cancelled with ErrRevoked", tp, ev.who, ev.revoked)
					}
				}
			}
			if zeros != 1 {
				t.Errorf("%v: the slow record was processed %d times", tp, zeros)
			}
			got := assignedAt["B"][tp]
			if got.Before(slowEnd) {
				t.Errorf("%v moved to B at %v, before A finished its slow record at %v", tp, got.Sub(joined), slowEnd.Sub(joined))
			}
			for _, ev := range evs {
				if ev.who == "B" && ev.offset == 0 {
					t.Errorf("%v: B started at offset 0: A's commit did not precede the move", tp)
				}
			}
			t.Logf("%v: B joined at 0s, A finished offset 0 at %v, B was assigned at %v", tp, slowEnd.Sub(joined).Round(time.Millisecond), got.Sub(joined).Round(time.Millisecond))
		}
	})
}
