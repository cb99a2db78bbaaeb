package integration

import (
	"context"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// BenchmarkProduce100B measures the whole produce path (partitioning,
// batching, encoding, the request, the answer, the report) against an
// in-process cluster; b.N records of 100 bytes.
//
//	go test -run XXX -bench Produce -benchmem ./integration
func BenchmarkProduce100B(b *testing.B) {
	cl := keeltest.NewCluster(b, keeltest.Brokers(1), keeltest.Topic("bench", 6))
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addr()))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	p, err := keel.NewProducer(c)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	value := make([]byte, 100)
	msgs := make([]keel.Message, 1024)
	for i := range msgs {
		msgs[i] = keel.Message{Topic: "bench", Value: value}
	}
	if _, err := p.Send(ctx, &msgs[0]); err != nil {
		b.Fatal(err)
	}
	ch := make(chan keel.Delivery, 4096)
	done := make(chan int)
	go func() {
		failed := 0
		for range b.N {
			if d := <-ch; d.Err != nil {
				failed++
			}
		}
		done <- failed
	}()
	b.SetBytes(100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p.Produce(ctx, &msgs[i%len(msgs)], ch)
	}
	select {
	case failed := <-done:
		if failed > 0 {
			b.Fatalf("%d records failed", failed)
		}
	case <-time.After(5 * time.Minute):
		b.Fatal("deliveries did not arrive")
	}
}
