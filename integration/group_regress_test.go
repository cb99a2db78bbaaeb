package integration

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
)

func sendRange(t *testing.T, ctx context.Context, p *keel.Producer, from, to int) {
	t.Helper()
	var msgs []*keel.Message
	for i := from; i < to; i++ {
		msgs = append(msgs, &keel.Message{Topic: "orders", Value: []byte(strconv.Itoa(i))})
	}
	if _, err := p.SendAll(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// An OffsetFetch that fails at assignment must not start the partition by
// the reset policy (latest would skip committed-but-unprocessed records).
func TestGroupRegressionOffsetFetchFailureLosesRecords(t *testing.T) {
	cl := groupCluster(t, 1)
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	sendRange(t, ctx, p, 0, 100)
	seen := newProcessed()
	h := func(ctx context.Context, m *keel.Message) error { seen.add(m); return nil }
	m1 := startMember(t, c, "g", h, fastGroup()...)
	seen.waitAll(t, ctx, 100)
	m1.stop(t)
	sendRange(t, ctx, p, 100, 200)           // committed offset is 100; these are unprocessed
	cl.FailRequests(kmsg.OffsetFetch, -1, 1) // one UNKNOWN_SERVER_ERROR
	startMember(t, c, "g", h, fastGroup(keel.ResetOffset(keel.ResetLatest))...)
	time.Sleep(2 * time.Second)
	sendRange(t, ctx, p, 200, 300)
	seen.waitAll(t, ctx, 300)
	missing, dup := seen.report(300)
	t.Logf("missing=%d dup=%d", missing, dup)
	if missing > 0 {
		t.Errorf("%d records never processed after one OffsetFetch error", missing)
	}
}

// Run's ctx ends while a handler ignores its ctx: Run still returns.
func TestGroupRegressionRunCtxStuckHandler(t *testing.T) {
	cl := groupCluster(t, 1)
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	sendRange(t, ctx, p, 0, 1)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	g, err := keel.NewGroupConsumer(c, "g", []string{"orders"}, fastGroup()...)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- g.Run(rctx, keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
			started <- struct{}{}
			<-release
			return nil
		}))
	}()
	<-started
	cancel()
	select {
	case <-done:
		close(release)
	case <-time.After(5 * time.Second):
		t.Errorf("Run did not return 5s after its ctx was cancelled (handler stuck)")
		close(release)
		<-done
	}
	cctx, c2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer c2()
	g.Close(cctx)
}

// Close while the member waits for committed offsets at assignment: no
// worker starts after Close, and no member goroutine outlives it.
func TestGroupRegressionCloseDuringAssignLeaksWorker(t *testing.T) {
	cl := groupCluster(t, 1)
	c := newClient(t, cl)
	hold := cl.HoldRequests(kmsg.OffsetFetch)
	g, err := keel.NewGroupConsumer(c, "g", []string{"orders"}, fastGroup()...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- g.Run(context.Background(), keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error { return nil }))
	}()
	wctx := testCtx(t, 20*time.Second)
	if err := hold.Wait(wctx, 1); err != nil {
		t.Fatal(err)
	}
	cctx, c2 := context.WithTimeout(context.Background(), time.Second)
	defer c2()
	t0 := time.Now()
	err = g.Close(cctx)
	t.Logf("Close returned after %v: %v", time.Since(t0), err)
	<-done
	hold.Resume()
	time.Sleep(2 * time.Second)
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	s := string(buf[:n])
	if strings.Contains(s, "keel.(*worker).run") {
		t.Errorf("a worker goroutine runs after Close returned")
	}
	if strings.Contains(s, "group.(*Member).Run") {
		t.Errorf("member goroutine runs after Close returned")
	}
}

// An eager assignor revokes everything before rejoining; a handler slower
// than the session timeout must not get the member expired meanwhile
// (heartbeats go on during the revoke), or its commit fails and records
// are processed twice.
func TestGroupRegressionEagerRevokeKeepsHeartbeating(t *testing.T) {
	cl := groupCluster(t, 1)
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	sendRange(t, ctx, p, 0, 20)
	seen := newProcessed()
	var slow atomic.Bool
	inSlow := make(chan struct{}, 1)
	h := func(ctx context.Context, m *keel.Message) error {
		if m.Offset == 5 && slow.CompareAndSwap(false, true) {
			inSlow <- struct{}{}
			time.Sleep(4 * time.Second) // ignores ctx; longer than the 2s session timeout
		}
		seen.add(m)
		return nil
	}
	opts := fastGroup(keel.Assignors("range"), keel.SessionTimeout(2*time.Second), keel.HeartbeatInterval(200*time.Millisecond), keel.AutoCommitInterval(0))
	startMember(t, c, "g", h, opts...)
	<-inSlow
	startMember(t, c, "g", h, opts...)
	seen.waitAll(t, ctx, 20)
	time.Sleep(time.Second)
	if missing, dup := seen.report(20); missing != 0 || dup != 0 {
		t.Errorf("missing %d, duplicated %d after an eager revoke with a slow handler", missing, dup)
	}
}

// Run may be called again after it returned (issue 14; it used to be
// single-shot, leaving the member's partitions idle until Close): the next
// Run continues every partition after its last processed record — nothing
// lost, nothing processed twice, although the first Run's lanes had
// records fetched beyond that — and a Run while another runs is refused.
func TestGroupRunAgainAfterReturn(t *testing.T) {
	cl := groupCluster(t, 2)
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	const n = 2000
	sendRange(t, ctx, p, 0, n)
	g, err := keel.NewGroupConsumer(c, "g", []string{"orders"}, fastGroup()...)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	seen := newProcessed()
	var handled atomic.Int64
	rctx, cancel := context.WithCancel(ctx)
	h := keel.HandlerFunc(func(hctx context.Context, m *keel.Message) error {
		if handled.Add(1) == 500 {
			cancel() // ends the first Run with records queued in its lanes
		}
		if hctx.Err() != nil {
			return hctx.Err() // left unprocessed
		}
		seen.add(m)
		return nil
	})
	if err := g.Run(rctx, h); err != context.Canceled {
		t.Fatalf("first Run: %v", err)
	}
	first := seen.total.Load()
	if first == 0 || first >= n {
		t.Fatalf("the first Run processed %d of %d records", first, n)
	}
	second := make(chan error, 1)
	rctx2, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	go func() { second <- g.Run(rctx2, h) }()
	seen.waitAll(t, ctx, n)
	if err := g.Run(ctx, h); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("a Run beside a running one: %v, want an error saying it is already running", err)
	}
	cancel2()
	if err := <-second; err != context.Canceled {
		t.Errorf("second Run: %v", err)
	}
	if missing, dup := seen.report(n); missing != 0 || dup != 0 {
		t.Fatalf("across two Runs: missing %d, duplicated %d (first Run processed %d)", missing, dup, first)
	}
	t.Logf("first Run processed %d records, the second the other %d", first, n-first)
}
