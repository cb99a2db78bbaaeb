package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// BenchmarkGroupParallel is issue 14's benchmark: a handler taking 10 ms
// (a database call, say) over 6 partitions and 1,000 keys, processed by
// the sequential Run (one record per partition at a time) and by Run with
// Parallel(KeyOrder, 64, 0). It reports records/s of each and, as
// x-sequential, their ratio (the target is at least 40x; 64 in flight per
// partition bound it at 64x), with order per key checked by the checker in
// the same run: no two records of a key at once, offsets of a key
// increasing.
//
//	go test -run '^$' -bench GroupParallel -benchtime 1x ./integration
func BenchmarkGroupParallel(b *testing.B) {
	const seqRecords, parRecords = 3_000, 150_000
	cl := keeltest.NewCluster(b, keeltest.Brokers(1), keeltest.Topic("par", 6), keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	p, err := keel.NewProducer(c)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ch := make(chan keel.Delivery, 4096)
	go func() {
		for i := range parRecords {
			p.Produce(ctx, &keel.Message{Topic: "par", Key: []byte(fmt.Sprint("k", i%1000)), Value: []byte(fmt.Sprint(i))}, ch)
		}
	}()
	for range parRecords {
		if d := <-ch; d.Err != nil {
			b.Fatal(d.Err)
		}
	}
	p.Close(ctx)

	var seqRate, parRate float64
	b.Run("sequential", func(b *testing.B) {
		seqRate = benchGroupRate(b, ctx, c, "bench-seq", seqRecords)
	})
	b.Run("key-ordered-64", func(b *testing.B) {
		parRate = benchGroupRate(b, ctx, c, "bench-par", parRecords, keel.Parallel(keel.KeyOrder, 64, 0))
		if seqRate > 0 {
			b.ReportMetric(parRate/seqRate, "x-sequential")
		}
	})
}

// benchGroupRate consumes the first n records of "par" in group with a
// 10 ms handler and returns records/s from the first record started to the
// n-th finished; the checker must find order per key kept.
func benchGroupRate(b *testing.B, ctx context.Context, c *keel.Client, group string, n int, opts ...keel.GroupOption) float64 {
	g, err := keel.NewGroupConsumer(c, group, []string{"par"}, append([]keel.GroupOption{keel.ResetOffset(keel.ResetEarliest),
		keel.HeartbeatInterval(200 * time.Millisecond), keel.FetchMaxWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	ledger := newKeyLedger()
	var once sync.Once
	var start time.Time
	reached := make(chan time.Time, 1)
	runDone := make(chan error, 1)
	go func() {
		runDone <- g.Run(ctx, keel.HandlerFunc(func(hctx context.Context, m *keel.Message) error {
			once.Do(func() { start = time.Now() })
			ev := ledger.begin(group, m)
			time.Sleep(10 * time.Millisecond)
			if ledger.end(ev, true) == int64(n) {
				reached <- time.Now()
			}
			return nil
		}))
	}()
	var end time.Time
	select {
	case end = <-reached:
	case <-ctx.Done():
		b.Fatalf("%s: %d of %d records in time", group, ledger.finished.Load(), n)
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g.Close(cctx)
	<-runDone
	ledger.mu.Lock()
	overlaps, reorders := len(ledger.overlaps), len(ledger.reorders)
	ledger.mu.Unlock()
	if overlaps+reorders > 0 {
		b.Fatalf("%s: order per key broken: %d overlaps, %d reorders", group, overlaps, reorders)
	}
	rate := float64(n) / end.Sub(start).Seconds()
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(float64(overlaps+reorders), "order-violations")
	return rate
}
