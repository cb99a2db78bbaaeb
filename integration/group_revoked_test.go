package integration

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
)

// Issue 18, bug 10: OnRevoked fired for a partition whose handler never
// returned, although it promises to come after the handlers returned. A
// handler that ignores its ctx past the rebalance timeout no longer holds
// the rebalance (its partition goes to the new member), but OnRevoked for
// that partition comes only once the handler returns — and after it, not
// before.
func TestGroupOnRevokedWaitsForStuckHandler(t *testing.T) {
	cl := groupCluster(t, 2)
	c := newClient(t, cl)
	p := newProducer(t, c, keel.ManualPartitioner())
	ctx := testCtx(t, 2*time.Minute)
	for part := range int32(2) {
		if _, err := p.Send(ctx, &keel.Message{Topic: "orders", Partition: part, Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	returned := map[int32]time.Time{} // when each partition's stuck handler returned
	revokedAt := map[int32]time.Time{}
	release := map[int32]chan struct{}{0: make(chan struct{}), 1: make(chan struct{})}
	var once [2]sync.Once
	free := func(p int32) { once[p].Do(func() { close(release[p]) }) }
	stuck := make(chan int32, 2)
	opts := fastGroup(keel.RebalanceTimeout(3*time.Second), keel.OnRevoked(func(tps []keel.TopicPartition) {
		mu.Lock()
		defer mu.Unlock()
		for _, tp := range tps {
			revokedAt[tp.Partition] = time.Now()
		}
	}))
	a := startMember(t, c, "stuck", func(hctx context.Context, m *keel.Message) error {
		stuck <- m.Partition
		<-release[m.Partition] // ignores hctx on purpose
		mu.Lock()
		returned[m.Partition] = time.Now()
		mu.Unlock()
		return nil
	}, opts...)
	// Registered after startMember's, so it runs first: a failing test
	// still lets the handlers return before the member is closed.
	t.Cleanup(func() { free(0); free(1) })
	<-stuck
	<-stuck // both partitions' handlers are stuck now
	b := startMember(t, c, "stuck", func(context.Context, *keel.Message) error { return nil }, fastGroup()...)
	waitFor(t, ctx, "the new member to get a partition", func() bool { return len(b.g.Assigned()) == 1 })
	moved := b.g.Assigned()[0].Partition
	mu.Lock()
	_, early := revokedAt[moved]
	mu.Unlock()
	if early {
		t.Fatalf("OnRevoked for partition %d came while its handler was still running", moved)
	}
	free(moved)
	waitFor(t, ctx, "OnRevoked after the handler returned", func() bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := revokedAt[moved]
		return ok
	})
	mu.Lock()
	if revokedAt[moved].Before(returned[moved]) {
		t.Errorf("OnRevoked for partition %d came %v before its handler returned", moved, returned[moved].Sub(revokedAt[moved]))
	}
	if got := slices.Collect(func(yield func(int32) bool) {
		for p := range revokedAt {
			if !yield(p) {
				return
			}
		}
	}); len(got) != 1 {
		t.Errorf("OnRevoked for partitions %v, want only %d", got, moved)
	}
	mu.Unlock()
	free(1 - moved)
	a.stop(t)
}
