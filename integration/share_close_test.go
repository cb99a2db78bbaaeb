package integration

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
)

// TestShareCloseFinishesHandlersAcksAndLeaves: Close waits for a running
// handler, sends its acceptance, leaves the group with member epoch -1,
// and Run returns nil; no goroutine is left (the leak check).
func TestShareCloseFinishesHandlersAcksAndLeaves(t *testing.T) {
	cl := shareCluster(t, 30*time.Second)
	c := newClient(t, cl)
	ctx := testCtx(t, 30*time.Second)
	adm := startShareGroupAtBeginning(t, ctx, c, "g")
	var leftWith atomic.Value // member id of a heartbeat with epoch -1
	cl.Control(kmsg.ShareGroupHeartbeat, func(req kmsg.Request) (kmsg.Response, error, bool) {
		if r := req.(*kmsg.ShareGroupHeartbeatRequest); r.MemberEpoch == -1 {
			leftWith.Store(r.MemberID)
		}
		return nil, nil, false
	})
	l := newShareLedger()
	entered, release := make(chan struct{}), make(chan struct{})
	m := startShareMember(t, cl, "m", "g", l, func(ctx context.Context, _ *keel.Message) error {
		close(entered)
		<-release // finishes only when told to, whatever Close does
		return nil
	}, keel.ShareMaxRecords(1))
	produceIDs(t, ctx, newProducer(t, c), shareTopic, 1, nil)
	<-entered

	var closed atomic.Bool
	closeErr := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		closeErr <- m.sc.Close(cctx)
		closed.Store(true)
	}()
	// Close must be waiting for the handler; give it a moment to show
	// that it does not return without it (it cannot fail spuriously).
	time.Sleep(200 * time.Millisecond)
	if closed.Load() {
		t.Fatal("Close returned while a handler was still running")
	}
	close(release)
	if err := <-closeErr; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-m.done; err != nil {
		t.Errorf("Run after Close: %v", err)
	}
	m.sc = nil // closed
	if id, _ := leftWith.Load().(string); id == "" {
		t.Error("no ShareGroupHeartbeat with member epoch -1: the member did not leave")
	}
	l.mu.Lock()
	if l.accepted[0] != 1 {
		t.Errorf("the record finished during Close was accepted %d times; want once", l.accepted[0])
	}
	l.mu.Unlock()
	waitDone(t, ctx, adm, "g", 1)
	ds, err := adm.DescribeShareGroups(ctx, "g")
	if err != nil || ds[0].State != "Empty" {
		t.Errorf("after Close the group is %+v (%v); want Empty", ds, err)
	}
}

// TestShareCloseDeadlineCancelsHandlers: a handler still running when
// Close's ctx ends has its ctx cancelled with ErrConsumerClosed, Close
// says so, and the record goes to another member (delivery count 2).
func TestShareCloseDeadlineCancelsHandlers(t *testing.T) {
	cl := shareCluster(t, 30*time.Second) // far longer than the test
	c := newClient(t, cl)
	ctx := testCtx(t, 30*time.Second)
	startShareGroupAtBeginning(t, ctx, c, "g")
	l := newShareLedger()
	entered := make(chan struct{})
	cause := make(chan error, 1)
	m := startShareMember(t, cl, "slow", "g", l, func(ctx context.Context, _ *keel.Message) error {
		close(entered)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	}, keel.ShareMaxRecords(1))
	produceIDs(t, ctx, newProducer(t, c), shareTopic, 1, nil)
	<-entered
	cctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := m.sc.Close(cctx); err == nil {
		t.Error("Close returned nil although a handler outlived its ctx")
	}
	if err := <-cause; !errors.Is(err, keel.ErrConsumerClosed) {
		t.Errorf("the handler's ctx ended with %v, want ErrConsumerClosed", err)
	}
	<-m.done
	m.sc = nil

	other := startShareMember(t, cl, "other", "g", l, func(context.Context, *keel.Message) error { return nil })
	other.waitAssigned(t, ctx)
	l.waitFor(t, ctx, "the record accepted by the other member", func() bool { return l.accepted[0] == 1 })
	l.mu.Lock()
	defer l.mu.Unlock()
	if ds := l.handled[0]; len(ds) != 2 || ds[1] != (delivery{"other", 2}) {
		t.Errorf("the record was handled as %v; want by the slow member, then by the other with delivery count 2", ds)
	}
}

// TestShareRunReturnsWhenCtxEnds: Run returns ctx's error when its ctx
// ends, the handler's ctx ends with it, and what the member fetched is
// given back at once (another member gets it without waiting for locks).
func TestShareRunReturnsWhenCtxEnds(t *testing.T) {
	cl := shareCluster(t, 30*time.Second)
	c := newClient(t, cl)
	ctx := testCtx(t, 30*time.Second)
	startShareGroupAtBeginning(t, ctx, c, "g")
	l := newShareLedger()
	sc, err := keel.NewShareConsumer(newClient(t, cl), "g", []string{shareTopic}, keel.OnShareAcknowledged(l.acked), keel.ShareMaxRecords(10))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(context.Background())
	produceIDs(t, ctx, newProducer(t, c), shareTopic, 10, nil)
	rctx, stop := context.WithCancel(ctx)
	entered := make(chan struct{}, 10)
	runErr := make(chan error, 1)
	go func() {
		runErr <- sc.Run(rctx, keel.HandlerFunc(func(hctx context.Context, m *keel.Message) error {
			l.handle("first", m)
			entered <- struct{}{}
			<-hctx.Done()
			return hctx.Err()
		}))
	}()
	<-entered
	stop()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
	other := startShareMember(t, cl, "other", "g", l, func(context.Context, *keel.Message) error { return nil })
	other.waitAssigned(t, ctx)
	l.waitFor(t, ctx, "all records accepted by the other member", func() bool { return len(l.accepted) == 10 })
}
