package prometheus_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
	kprom "github.com/keel-go/keel/plugin/prometheus"
)

// TestScrapeCountsHandlerStall: a handler held on one record past
// StallAfter shows up as exactly one keel_stalls_total{kind="handler"}
// in a scrape, while it is still running (the library's StallHook).
func TestScrapeCountsHandlerStall(t *testing.T) {
	cl := keeltest.NewCluster(t, keeltest.Brokers(1), keeltest.Topic("slow", 1))
	reg := prometheus.NewRegistry()
	m, err := kprom.New(kprom.Registerer(reg))
	if err != nil {
		t.Fatal(err)
	}
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...), keel.WithHooks(m), keel.StallAfter(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx := testCtx(t, 60*time.Second)
	produce(t, ctx, c, "slow", []int{1})
	g, err := keel.NewGroupConsumer(c, "slow-g", []string{"slow"}, keel.ResetOffset(keel.ResetEarliest))
	if err != nil {
		t.Fatal(err)
	}
	const series = `keel_stalls_total{kind="handler",topic="slow"}`
	counted := make(chan float64, 1)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- g.Run(rctx, keel.HandlerFunc(func(hctx context.Context, _ *keel.Message) error {
			// Held until the scrape shows the stall (or the test's ctx ends).
			for {
				if v, ok := sample(scrape(t, reg), series); ok && v > 0 {
					counted <- v
					return nil
				}
				select {
				case <-hctx.Done():
					return hctx.Err()
				case <-time.After(50 * time.Millisecond):
				}
			}
		}))
	}()
	var v float64
	select {
	case v = <-counted:
	case <-ctx.Done():
		t.Fatalf("%s never appeared; scrape:\n%s", series, grep(scrape(t, reg), "keel_stalls"))
	}
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	<-done
	if v != 1 {
		t.Fatalf("%s = %v while the handler ran, want 1", series, v)
	}
	if after, _ := sample(scrape(t, reg), series); after != 1 {
		t.Fatalf("%s = %v after Close, want 1", series, after)
	}
}
