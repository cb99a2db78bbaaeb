package integration

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/testhook"
	"github.com/keel-go/keel/keeltest"
)

// An ExactlyOnce commit while the member is between generations (expelled
// or rejoining: generation -1, no member id) must abort. Brokers take a
// TxnOffsetCommit with generation -1 and no member id as an unfenced
// commit (the form from before KIP-447), so sending it would commit
// offsets of partitions another member may own by then; kfake accepts it,
// so without the refusal this test sees the commit succeed. Back in a
// generation, the rewound records are processed again and commit, and the
// outputs are exact.
func TestExactlyOnceCommitRefusedWithoutGeneration(t *testing.T) {
	const in, out, group, n = "eos-gen-in", "eos-gen-out", "eos-gen", 10
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic(in, 1), keeltest.Topic(out, 1))
	var mu sync.Mutex
	var txnCommitGens []int32
	cl.Control(kmsg.TxnOffsetCommit, func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		mu.Lock()
		txnCommitGens = append(txnCommitGens, req.(*kmsg.TxnOffsetCommitRequest).Generation)
		mu.Unlock()
		return nil, nil, false
	})
	ctx := testCtx(t, 2*time.Minute)
	c := newClient(t, cl)
	want := eosInput(t, ctx, c, in, n, 1)

	var noGeneration atomic.Bool
	hook := func(m testhook.Membership) testhook.Membership {
		if m.Group == group && noGeneration.Load() {
			m.Generation, m.MemberID = -1, ""
		}
		return m
	}
	testhook.EOSMembership.Store(&hook)
	t.Cleanup(func() { testhook.EOSMembership.Store(nil) })

	p := newProducer(t, c, keel.TransactionalID(group))
	g, err := keel.NewGroupConsumer(c, group, []string{in}, fastGroup(keel.ReadCommitted(),
		keel.ExactlyOnce(p, keel.TxnEvery(time.Hour, 0)))...)
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	produce := transform(out)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- g.Run(rctx, keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
			err := produce(ctx, m)
			handled.Add(1)
			return err
		}))
	}()
	t.Cleanup(func() {
		stop()
		<-done
		g.Close(context.Background())
	})
	waitHandled := func(want int64) {
		t.Helper()
		for handled.Load() < want {
			select {
			case <-ctx.Done():
				t.Fatalf("%d records handled, want %d", handled.Load(), want)
			case err := <-done:
				t.Fatalf("Run ended: %v", err)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	waitHandled(n)
	noGeneration.Store(true)
	err = g.Commit(ctx)
	if !errors.Is(err, errs.ErrIllegalGeneration) {
		t.Fatalf("Commit without a generation: %v, want an error matching ILLEGAL_GENERATION", err)
	}
	mu.Lock()
	for _, gen := range txnCommitGens {
		if gen < 0 {
			t.Errorf("a TxnOffsetCommit reached the broker with generation %d", gen)
		}
	}
	mu.Unlock()

	// Back in a generation: the aborted records come again and commit.
	noGeneration.Store(false)
	waitHandled(2 * n)
	if err := g.Commit(ctx); err != nil {
		t.Fatalf("Commit back in a generation: %v", err)
	}
	checkEOSResult(t, ctx, cl, c, group, in, out, 1, want)
}
