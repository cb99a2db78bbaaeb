package integration

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// In Run mode a handler may pause its own partition (the retry package
// does while a record waits): the worker's flow control, which resumes a
// partition once its queue drains, must not undo that pause, and Resume
// must bring the partition back.
func TestRetryGroupPauseHoldsInRunMode(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("orders", 1), keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	const n = 5000
	value := make([]byte, 1000) // ~1000 records per 1 MiB fetch: the queue fills, flow control pauses and resumes
	ch := make(chan keel.Delivery, n)
	for range n {
		p.Produce(ctx, &keel.Message{Topic: "orders", Value: value}, ch)
	}
	for range n {
		if d := <-ch; d.Err != nil {
			t.Fatal(d.Err)
		}
	}
	tp := keel.TopicPartition{Topic: "orders", Partition: 0}
	var handled atomic.Int64
	var g *keel.GroupConsumer
	var once sync.Once
	ready := make(chan struct{})
	h := func(ctx context.Context, m *keel.Message) error {
		<-ready
		once.Do(func() {
			// Let the queue fill first, so that flow control pauses the
			// partition too and would resume it once the queue drains.
			time.Sleep(2 * time.Second)
			g.Pause(tp)
		})
		handled.Add(1)
		return nil
	}
	var err error
	g, err = keel.NewGroupConsumer(c, "pauser", []string{"orders"}, fastGroup()...)
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	done := make(chan error, 1)
	go func() { done <- g.Run(context.Background(), keel.HandlerFunc(h)) }()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		g.Close(cctx)
		<-done
	}()
	// Wait until handling stalls: what was fetched before the pause is
	// handled, then nothing more arrives.
	var last int64 = -1
	for {
		time.Sleep(time.Second)
		now := handled.Load()
		if now == last && now > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("handling never stalled")
		}
		last = now
	}
	stalled := handled.Load()
	t.Logf("paused after the first record: %d of %d handled before handling stalled", stalled, n)
	if stalled >= n {
		t.Fatal("every record was handled while the partition was paused: flow control resumed it")
	}
	g.Resume(tp)
	retryWaitFor(t, ctx, "every record after Resume", func() bool { return handled.Load() == n })
}
