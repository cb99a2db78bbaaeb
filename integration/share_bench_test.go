package integration

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// BenchmarkShareConsume: one share group member takes b.N records of a
// one-partition topic (100-byte values, produced before the timer
// starts) from an in-process kfake broker and accepts each, then flushes
// the acceptances and leaves; keel (Run) beside franz-go's share consumer
// (kgo 1.22: PollFetches, Record.Ack, FlushAcks). Both ask for
// 500 records per fetch. kfake runs in the same process, so its CPU is in
// the figures, the same for both.
//
//	go test ./integration -run '^$' -bench BenchmarkShareConsume -benchtime 20000x -count 3 -cpu 2
func BenchmarkShareConsume(b *testing.B) {
	for _, impl := range []string{"keel", "franz-go"} {
		b.Run(impl, func(b *testing.B) {
			cl := keeltest.NewCluster(b, keeltest.Brokers(1), keeltest.Topic(shareTopic, 1))
			c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			p, err := keel.NewProducer(c)
			if err != nil {
				b.Fatal(err)
			}
			value := make([]byte, 100)
			msgs := make([]*keel.Message, b.N)
			for i := range msgs {
				msgs[i] = &keel.Message{Topic: shareTopic, Value: value}
			}
			if _, err := p.SendAll(ctx, msgs...); err != nil {
				b.Fatal(err)
			}
			p.Close(ctx)
			adm, _ := admin.New(c)
			if err := adm.AlterShareGroupOffsets(ctx, "bench", map[keel.TopicPartition]int64{{Topic: shareTopic, Partition: 0}: 0}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(100)
			b.ReportAllocs()
			b.ResetTimer()
			switch impl {
			case "keel":
				benchKeelShare(b, ctx, c, b.N)
			case "franz-go":
				benchFranzShare(b, ctx, cl.Addrs(), b.N)
			}
			b.StopTimer()
			offs, err := adm.ShareGroupOffsets(ctx, "bench", shareTopic)
			if o := offs[keel.TopicPartition{Topic: shareTopic, Partition: 0}]; err != nil || o.StartOffset != int64(b.N) {
				b.Fatalf("%s left the group at start offset %d of %d (%v)", impl, o.StartOffset, b.N, err)
			}
		})
	}
}

func benchKeelShare(b *testing.B, ctx context.Context, c *keel.Client, n int) {
	var handled atomic.Int64
	done := make(chan struct{})
	sc, err := keel.NewShareConsumer(c, "bench", []string{shareTopic}, keel.OnShareAcknowledged(func(r keel.ShareAckResult) {
		if r.Err != nil {
			b.Error(r.Err)
		}
	}))
	if err != nil {
		b.Fatal(err)
	}
	go sc.Run(ctx, keel.HandlerFunc(func(context.Context, *keel.Message) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	}))
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("%d of %d handled", handled.Load(), n)
	}
	// As FlushAcks for franz-go: the last acceptances at once, not with
	// a fetch that parks for want of records.
	if err := sc.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if err := sc.Close(ctx); err != nil {
		b.Fatal(err)
	}
}

func benchFranzShare(b *testing.B, ctx context.Context, addrs []string, n int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ShareGroup("bench"), kgo.ConsumeTopics(shareTopic))
	if err != nil {
		b.Fatal(err)
	}
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("%d of %d polled", got, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			r.Ack(kgo.AckAccept)
			got++
		})
	}
	if err := cl.FlushAcks(ctx); err != nil {
		b.Fatal(err)
	}
	cl.Close()
}
