package integration

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// ExactlyOnce with Parallel (issue 13): the exactly-once checks of
// eos_run_test.go, for both parallel orders. With NoOrder outputs of one
// key may be produced in any order, so only exactly-once is checked; with
// KeyOrder also the order per key.

var eosParallelOrders = []keel.Order{keel.KeyOrder, keel.NoOrder}

func eosParallel(order keel.Order) keel.GroupOption { return keel.Parallel(order, 8, 0) }

// checkEOSParallelResult is checkEOSResult for a parallel order: a keel
// read_committed reader and kcat see every output exactly once (in order
// per key with KeyOrder), and the committed offsets equal the input's end.
func checkEOSParallelResult(t *testing.T, ctx context.Context, cl *keeltest.Cluster, c *keel.Client, order keel.Order, group, in, out string, partitions int32, want []string) {
	t.Helper()
	if order != keel.NoOrder {
		checkEOSResult(t, ctx, cl, c, group, in, out, partitions, want)
		return
	}
	rank := make(map[string]int, len(want))
	for i, v := range want {
		rank[v] = i
	}
	// No order is promised: put what was read in input order, so that
	// the checker counts only the missing, duplicated and unexpected.
	inInputOrder := func(vals []string) []string {
		sort.SliceStable(vals, func(i, j int) bool {
			ri, okI := rank[vals[i]]
			rj, okJ := rank[vals[j]]
			if okI != okJ {
				return okI
			}
			return ri < rj
		})
		return vals
	}
	rctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	got := readAll(t, rctx, c, out, partitions, len(want), true)
	cancel()
	if !checkExactly(t, "keel read_committed", inInputOrder(messageValues(got)), want) {
		explainMissing(t, ctx, c, out, partitions, got, want)
	}
	if kcat := kcatPath(t); kcat != "" {
		checkExactly(t, "kcat read_committed", inInputOrder(kcatValues(t, ctx, kcat, cl.Addr(), out, "read_committed")), want)
	}
	checkCommittedAtEnd(t, ctx, c, group, in)
}

// TestExactlyOnceParallelRun: one ExactlyOnce member with Parallel
// transforms keyed input; every output is visible once and the committed
// offsets reach the input's end.
func TestExactlyOnceParallelRun(t *testing.T) {
	for _, order := range eosParallelOrders {
		t.Run(order.String(), func(t *testing.T) {
			in, out, group := "eospr-in-"+order.String(), "eospr-out-"+order.String(), "eospr-"+order.String()
			const n = 3000
			cl := groupCluster(t, 1, keeltest.Topic(in, 3), keeltest.Topic(out, 3))
			c := newClient(t, cl)
			ctx := testCtx(t, 2*time.Minute)
			want := eosInput(t, ctx, c, in, n, 11)
			var handled atomic.Int64
			tr := transform(out)
			h := keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
				handled.Add(1)
				return tr(ctx, m)
			})
			m := startEOSMember(t, ctx, cl, "eospr-"+order.String(), group, in, h, eosParallel(order))
			waitCommitted(t, ctx, c, group, in)
			m.close(t)
			t.Logf("%d handler calls for %d records", handled.Load(), n)
			checkEOSParallelResult(t, ctx, cl, c, order, group, in, out, 3, want)
		})
	}
}

// TestExactlyOnceParallelHandlerError: a handler fails once while other
// records of the same partitions are being handled and finished out of
// order: the transaction aborts, each parallel lane goes back to its last
// committed offset and ranges, and every output is still visible once.
func TestExactlyOnceParallelHandlerError(t *testing.T) {
	for _, order := range eosParallelOrders {
		t.Run(order.String(), func(t *testing.T) {
			in, out, group := "eosph-in-"+order.String(), "eosph-out-"+order.String(), "eosph-"+order.String()
			const n = 2000
			cl := groupCluster(t, 1, keeltest.Topic(in, 3), keeltest.Topic(out, 3))
			c := newClient(t, cl)
			ctx := testCtx(t, 2*time.Minute)
			want := eosInput(t, ctx, c, in, n, 11)
			var failed, calls atomic.Int64
			tr := transform(out)
			h := keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
				if err := tr(ctx, m); err != nil {
					return err
				}
				if c := calls.Add(1); (c == n/3 || c == 2*n/3) && failed.Add(1) <= 2 {
					return errors.New("injected handler failure")
				}
				return nil
			})
			m := startEOSMember(t, ctx, cl, "eosph-"+order.String(), group, in, h, eosParallel(order))
			waitCommitted(t, ctx, c, group, in)
			m.close(t)
			if failed.Load() != 2 {
				t.Fatalf("%d handler failures injected, want 2", failed.Load())
			}
			if calls.Load() <= n {
				t.Fatalf("%d handler calls for %d records: nothing was processed again after the aborts", calls.Load(), n)
			}
			t.Logf("%d handler calls for %d records", calls.Load(), n)
			checkEOSParallelResult(t, ctx, cl, c, order, group, in, out, 3, want)
		})
	}
}

// TestExactlyOnceParallelRevoke: a second member joins while the first
// processes its partitions in parallel, mid-transaction: the partitions
// that move are committed (offset and out-of-order ranges) before they
// are released, and the new owner continues without a duplicate.
func TestExactlyOnceParallelRevoke(t *testing.T) {
	for _, order := range eosParallelOrders {
		t.Run(order.String(), func(t *testing.T) {
			in, out, group := "eosprv-in-"+order.String(), "eosprv-out-"+order.String(), "eosprv-"+order.String()
			const n = 3000
			cl := groupCluster(t, 1, keeltest.Topic(in, 4), keeltest.Topic(out, 4))
			c := newClient(t, cl)
			ctx := testCtx(t, 2*time.Minute)
			want := eosInput(t, ctx, c, in, n, 13)
			var revoked, handled atomic.Int64
			tr := transform(out)
			slow := keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
				handled.Add(1)
				// Uneven work, so that records finish out of order.
				time.Sleep(time.Duration(m.Offset%5) * 200 * time.Microsecond)
				return tr(ctx, m)
			})
			onRevoked := keel.OnRevoked(func(tps []keel.TopicPartition) { revoked.Add(int64(len(tps))) })
			a := startEOSMember(t, ctx, cl, "eosprv-a-"+order.String(), group, in, slow, eosParallel(order), onRevoked)
			for handled.Load() < n/4 && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
			b := startEOSMember(t, ctx, cl, "eosprv-b-"+order.String(), group, in, slow, eosParallel(order))
			waitCommitted(t, ctx, c, group, in)
			a.close(t)
			b.close(t)
			if revoked.Load() == 0 {
				t.Fatalf("no partition moved to the second member")
			}
			t.Logf("%d partitions revoked from the first member; %d handler calls for %d records", revoked.Load(), handled.Load(), n)
			checkEOSParallelResult(t, ctx, cl, c, order, group, in, out, 4, want)
		})
	}
}

// TestExactlyOnceParallelCommitsDoneRanges: the transactional commit
// carries the records finished past the committed offset, so the next
// owner skips exactly them. Member A (KeyOrder) holds record 0 of key "s"
// until every other record but record 1 (also key "s", waiting behind it)
// is handled, and until Close began: Close's commit then has offset 1 and
// records 2..n-1 done, with their outputs in the transaction. Member B
// must handle record 1 only; had the ranges been left out of the
// TxnOffsetCommit, it would handle 1..n-1 again and every output of 2..n-1
// would be visible twice.
func TestExactlyOnceParallelCommitsDoneRanges(t *testing.T) {
	const in, out, group, n = "eospd-in", "eospd-out", "eospd", 60
	cl := groupCluster(t, 1, keeltest.Topic(in, 1), keeltest.Topic(out, 1))
	c := newClient(t, cl)
	ctx := testCtx(t, 2*time.Minute)
	src := newProducer(t, c)
	var inputs []*keel.Message
	var want []string
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("k%d", i)
		if i < 2 {
			k = "s"
		}
		v := fmt.Sprintf("%s-in-%d", k, i)
		inputs = append(inputs, &keel.Message{Topic: in, Key: []byte(k), Value: []byte(v)})
		want = append(want, "out:"+v)
	}
	if _, err := src.SendAll(ctx, inputs...); err != nil {
		t.Fatal(err)
	}

	tr := transform(out)
	var others atomic.Int64
	var g *keel.GroupConsumer
	gReady := make(chan struct{})
	holding := make(chan struct{})
	hA := keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		switch m.Offset {
		case 0:
			for others.Load() < n-2 && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			close(holding)
			<-gReady
			select {
			case <-g.Stopping():
			case <-ctx.Done():
			}
			// Close stops the lane right after Stopping closes: once it
			// did, record 1 is not started after this one returns.
			time.Sleep(100 * time.Millisecond)
		case 1:
			return errors.New("record 1 must wait behind record 0 until Close")
		default:
			defer others.Add(1)
		}
		return tr(ctx, m)
	})
	ca := newClient(t, cl)
	pa := newTxnProducer(t, ca, "eospd-a", keel.Linger(time.Millisecond))
	g, err := keel.NewGroupConsumer(ca, group, []string{in}, fastGroup(keel.ReadCommitted(),
		keel.ExactlyOnce(pa, keel.TxnEvery(time.Hour, 0)), keel.Parallel(keel.KeyOrder, 8, 0))...)
	if err != nil {
		t.Fatal(err)
	}
	close(gReady)
	runDone := make(chan error, 1)
	go func() { runDone <- g.Run(ctx, hA) }()
	select {
	case <-holding:
	case <-ctx.Done():
		t.Fatalf("member A never handled the records after record 1: %d of %d", others.Load(), n-2)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := g.Close(cctx); err != nil {
		t.Fatalf("Close of member A: %v", err)
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("Run of member A: %v", err)
	}
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	offs, err := adm.GroupOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if at := offs[keel.TopicPartition{Topic: in, Partition: 0}]; at != 1 {
		t.Fatalf("member A committed offset %d, want 1 (record 1 unprocessed, 2..%d done past it)", at, n-1)
	}

	var handledB atomic.Int64
	var handledBAt atomic.Int64
	hB := keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		handledB.Add(1)
		handledBAt.Store(m.Offset)
		return tr(ctx, m)
	})
	b := startEOSMember(t, ctx, cl, "eospd-b", group, in, hB, keel.Parallel(keel.KeyOrder, 8, 0))
	waitCommitted(t, ctx, c, group, in)
	b.close(t)
	if handledB.Load() != 1 || handledBAt.Load() != 1 {
		t.Errorf("member B handled %d records (last at offset %d), want only record 1: the records done past the committed offset were not skipped", handledB.Load(), handledBAt.Load())
	}
	checkEOSResult(t, ctx, cl, c, group, in, out, 1, want)
}
