package otel_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
	kotel "github.com/keel-go/keel/plugin/otel"
)

// BenchmarkProduceHooks produces 100-byte records through one producer
// with no hooks, with the plugin on OpenTelemetry's no-op providers (the
// default until a program installs an SDK), with metrics only (SDK meter,
// NoTracing), and with the SDK for both (every span sampled, batched to
// an exporter that drops them), against one cluster in one run, so the
// sub-benchmarks' ns/op give the plugin's cost. One op is one record,
// reported (b.N records, then Flush).
//
//	go test -run '^$' -bench BenchmarkProduceHooks -count 6 ./plugin/otel/
func BenchmarkProduceHooks(b *testing.B) {
	cl := keeltest.NewCluster(b, keeltest.Topic("bench", 6))
	for _, tc := range []struct {
		name   string
		plugin func(b *testing.B) *kotel.Plugin
	}{
		{"none", nil},
		{"otel-noop", func(b *testing.B) *kotel.Plugin { return mustNew(b) }},
		{"otel-metrics", func(b *testing.B) *kotel.Plugin {
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			b.Cleanup(func() { mp.Shutdown(context.Background()) })
			return mustNew(b, kotel.MeterProvider(mp), kotel.NoTracing())
		}},
		{"otel-sdk", func(b *testing.B) *kotel.Plugin {
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() {
				mp.Shutdown(context.Background())
				tp.Shutdown(context.Background())
			})
			return mustNew(b, kotel.MeterProvider(mp), kotel.TracerProvider(tp))
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			opts := []keel.ClientOption{keel.SeedBrokers(cl.Addrs()...)}
			if tc.plugin != nil {
				opts = append(opts, keel.WithHooks(tc.plugin(b)))
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
			b.ReportAllocs()
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

func mustNew(b *testing.B, opts ...kotel.Option) *kotel.Plugin {
	p, err := kotel.New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	return p
}
