package prometheus_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
	kprom "github.com/keel-go/keel/plugin/prometheus"
)

// BenchmarkProduceHooks produces 100-byte records through one producer
// with no hooks and with the Prometheus plugin installed, against one
// cluster in one run, so the two sub-benchmarks' ns/op give the plugin's
// cost. One op is one record, reported (b.N records, then Flush).
//
//	go test -run '^$' -bench BenchmarkProduceHooks -count 6 ./plugin/prometheus/
func BenchmarkProduceHooks(b *testing.B) {
	cl := keeltest.NewCluster(b, keeltest.Topic("bench", 6))
	for _, tc := range []struct {
		name  string
		hooks bool
	}{{"none", false}, {"prometheus", true}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			opts := []keel.ClientOption{keel.SeedBrokers(cl.Addrs()...)}
			if tc.hooks {
				m, err := kprom.New(kprom.Registerer(prometheus.NewRegistry()))
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, keel.WithHooks(m))
			}
			c, err := keel.NewClient(opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(ctx)
			p, err := keel.NewProducer(c, keel.Linger(5*time.Millisecond))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(ctx)
			value := make([]byte, 100)
			var failed atomic.Int64
			report := func(d keel.Delivery) {
				if d.Err != nil {
					failed.Add(1)
				}
			}
			// Warm up: metadata and connections before the clock runs.
			if _, err := p.Send(ctx, &keel.Message{Topic: "bench", Value: value}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			for range b.N {
				p.ProduceFunc(ctx, &keel.Message{Topic: "bench", Value: value}, report)
			}
			if err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d records failed", n)
			}
		})
	}
}
