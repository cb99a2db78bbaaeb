package integration

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// TestExactlyOnceCloseCommitsTheLastTransaction: Close right after the
// last handler returned commits the open transaction. The handlers'
// outputs are still buffered then (a long linger), produced with the
// handlers' ctx, which Close cancels once they returned: cancelled before
// being sent, they failed the final commit, which aborted, so a clean
// Close left its last transaction to be processed again.
func TestExactlyOnceCloseCommitsTheLastTransaction(t *testing.T) {
	const in, out, n = "eos-close-in", "eos-close-out", 300
	cl := startCluster(t, keeltest.Topic(in, 3), keeltest.Topic(out, 3))
	c := newClient(t, cl)
	ctx := testCtx(t, 60*time.Second)
	want := eosInput(t, ctx, c, in, n, 7)
	p := newTxnProducer(t, c, "eos-close", keel.Linger(500*time.Millisecond))
	g, err := keel.NewGroupConsumer(c, "eos-close", []string{in},
		fastGroup(keel.ReadCommitted(), keel.ExactlyOnce(p, keel.TxnEvery(time.Minute, 0)))...)
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	all := make(chan struct{})
	fwd := transform(out)
	done := make(chan error, 1)
	go func() {
		done <- g.Run(ctx, keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
			err := fwd(ctx, m)
			if handled.Add(1) == n {
				close(all)
			}
			return err
		}))
	}()
	select {
	case <-all:
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	}
	if err := g.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-done
	checkCommittedAtEnd(t, ctx, c, "eos-close", in)
	checkExactly(t, "read_committed outputs", messageValues(readAll(t, ctx, c, out, 3, len(want), true)), want)
}
