package main

// Transactions, keel beside franz-go (issue 13), in one `go test -bench`
// run so that the two share the machine's state:
//
//	cd bench && go test -run '^$' -bench 'TxnProduce|ConsumeTransformProduce' -benchtime 10x -count 3 .
//
// BenchmarkTxnProduce: one op is one transaction of txnRecords 100-byte
// records over 6 partitions: begin, produce them all (reports by
// callback), commit (keel CommitTxn; franz-go Flush then EndTransaction,
// which is what CommitTxn does). rec/s is the records' rate over whole
// transactions; commit-ms is the time from the last produce call to the
// commit's return (the flush of what was still buffered, the waits for
// every report, and EndTxn). A first transaction, unmeasured, sets up the
// producer id and connections.
//
// BenchmarkConsumeTransformProduce: one op is a fresh group reading
// ctpRecords input records from the start and writing one output per input
// in transactions of at most txnRecords records that also carry the
// input offsets (keel: GroupConsumer.Run with ExactlyOnce, TxnEvery(100ms,
// 10k); franz-go: GroupTransactSession, PollRecords(10k) per transaction),
// until every input is handled and the last transaction committed. rec/s
// is inputs per second, including each op's group join and producer id.
//
// The broker is kfake in the benchmark's process (the cross-client
// harness runs it in a child process; this one shares the CPU with it,
// the same way for both clients).

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/keel-go/keel"
)

const (
	txnRecords = 10_000
	ctpRecords = 100_000
	txnValue   = 100
)

func txnCluster(b *testing.B, topics ...string) *kfake.Cluster {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(benchSettings.Partitions), topics...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

// txnReport adds the per-op figures.
func txnReport(b *testing.B, records int, elapsed, commits time.Duration) {
	b.ReportMetric(float64(records*b.N)/elapsed.Seconds(), "rec/s")
	if commits > 0 {
		b.ReportMetric(float64(commits.Milliseconds())/float64(b.N), "commit-ms")
	}
}

func BenchmarkTxnProduce(b *testing.B) {
	value := make([]byte, txnValue)
	b.Run("keel", func(b *testing.B) {
		cl := txnCluster(b, "txn")
		ctx := benchCtx(b)
		c, err := keel.NewClient(keel.SeedBrokers(cl.ListenAddrs()...))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		p, err := keel.NewProducer(c, keel.TransactionalID("bench-keel"), keel.Linger(benchSettings.Linger), keel.MaxBatchBytes(benchSettings.MaxBatchBytes))
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close(ctx)
		var failed atomic.Int64
		report := func(d keel.Delivery) {
			if d.Err != nil {
				failed.Add(1)
			}
		}
		msgs := make([]keel.Message, txnRecords)
		for i := range msgs {
			msgs[i] = keel.Message{Topic: "txn", Key: []byte(strconv.Itoa(i)), Value: value}
		}
		// Warm-up: the producer id (InitProducerId) and the
		// connections are set up by a first, unmeasured transaction.
		if err := p.InTxn(ctx, func(ctx context.Context) error {
			p.ProduceFunc(ctx, &keel.Message{Topic: "txn", Value: value}, report)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		var commits time.Duration
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			if err := p.BeginTxn(); err != nil {
				b.Fatal(err)
			}
			for i := range msgs {
				m := msgs[i] // the producer owns what it is given
				p.ProduceFunc(ctx, &m, report)
			}
			t0 := time.Now()
			if err := p.CommitTxn(ctx); err != nil {
				b.Fatal(err)
			}
			commits += time.Since(t0)
		}
		txnReport(b, txnRecords, time.Since(start), commits)
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d records failed", n)
		}
	})
	b.Run("franz-go", func(b *testing.B) {
		cl := txnCluster(b, "txn")
		ctx := benchCtx(b)
		fc, err := kgo.NewClient(kgo.SeedBrokers(cl.ListenAddrs()...), kgo.TransactionalID("bench-franz"),
			kgo.ProducerLinger(benchSettings.Linger), kgo.ProducerBatchMaxBytes(int32(benchSettings.MaxBatchBytes)), kgo.DefaultProduceTopic("txn"))
		if err != nil {
			b.Fatal(err)
		}
		defer fc.Close()
		var failed atomic.Int64
		promise := func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		}
		keys := make([][]byte, txnRecords)
		for i := range keys {
			keys[i] = []byte(strconv.Itoa(i))
		}
		if err := fc.BeginTransaction(); err != nil { // warm-up, as for keel
			b.Fatal(err)
		}
		if err := fc.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		if err := fc.EndTransaction(ctx, kgo.TryCommit); err != nil {
			b.Fatal(err)
		}
		var commits time.Duration
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			if err := fc.BeginTransaction(); err != nil {
				b.Fatal(err)
			}
			for i := range keys {
				fc.Produce(ctx, &kgo.Record{Key: keys[i], Value: value}, promise)
			}
			t0 := time.Now()
			if err := fc.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			if err := fc.EndTransaction(ctx, kgo.TryCommit); err != nil {
				b.Fatal(err)
			}
			commits += time.Since(t0)
		}
		txnReport(b, txnRecords, time.Since(start), commits)
		if n := failed.Load(); n > 0 {
			b.Fatalf("%d records failed", n)
		}
	})
}

// prefillInput writes ctpRecords keyed records to "in" (not
// transactionally: the benchmark measures the pipeline, not the input).
func prefillInput(b *testing.B, ctx context.Context, cl *kfake.Cluster) {
	b.Helper()
	fc, err := kgo.NewClient(kgo.SeedBrokers(cl.ListenAddrs()...), kgo.DefaultProduceTopic("in"))
	if err != nil {
		b.Fatal(err)
	}
	defer fc.Close()
	value := make([]byte, txnValue)
	for i := range ctpRecords {
		fc.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i % 1000)), Value: value}, nil)
	}
	if err := fc.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkConsumeTransformProduce(b *testing.B) {
	b.Run("keel", func(b *testing.B) {
		cl := txnCluster(b, "in", "out")
		ctx := benchCtx(b)
		prefillInput(b, ctx, cl)
		b.ResetTimer()
		start := time.Now()
		for n := range b.N {
			keelCTP(b, ctx, cl, fmt.Sprintf("keel-ctp-%d", n))
		}
		txnReport(b, ctpRecords, time.Since(start), 0)
	})
	b.Run("franz-go", func(b *testing.B) {
		cl := txnCluster(b, "in", "out")
		ctx := benchCtx(b)
		prefillInput(b, ctx, cl)
		b.ResetTimer()
		start := time.Now()
		for n := range b.N {
			franzCTP(b, ctx, cl, fmt.Sprintf("franz-ctp-%d", n))
		}
		txnReport(b, ctpRecords, time.Since(start), 0)
	})
}

// keelCTP runs one exactly-once group over the whole input.
func keelCTP(b *testing.B, ctx context.Context, cl *kfake.Cluster, group string) {
	c, err := keel.NewClient(keel.SeedBrokers(cl.ListenAddrs()...))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	p, err := keel.NewProducer(c, keel.TransactionalID(group), keel.Linger(benchSettings.Linger), keel.MaxBatchBytes(benchSettings.MaxBatchBytes))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	g, err := keel.NewGroupConsumer(c, group, []string{"in"}, keel.ReadCommitted(), keel.ResetOffset(keel.ResetEarliest),
		keel.ExactlyOnce(p, keel.TxnEvery(100*time.Millisecond, txnRecords)))
	if err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	all := make(chan struct{})
	report := func(keel.Delivery) {}
	h := keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		keel.TxnProducer(ctx).ProduceFunc(ctx, &keel.Message{Topic: "out", Key: m.Key, Value: m.Value}, report)
		if handled.Add(1) == ctpRecords {
			close(all)
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, h) }()
	select {
	case <-all:
	case err := <-done:
		b.Fatalf("Run ended early: %v", err)
	}
	if err := g.Close(ctx); err != nil { // commits the last transaction
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// franzCTP is franz-go's documented exactly-once loop over the whole input.
func franzCTP(b *testing.B, ctx context.Context, cl *kfake.Cluster, group string) {
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(cl.ListenAddrs()...), kgo.TransactionalID(group), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics("in"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RequireStableFetchOffsets(), kgo.ProducerLinger(benchSettings.Linger), kgo.ProducerBatchMaxBytes(int32(benchSettings.MaxBatchBytes)),
	)
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	handled := 0
	for handled < ctpRecords {
		fs := sess.PollRecords(ctx, txnRecords)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			b.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Topic: "out", Key: r.Key, Value: r.Value}, nil)
			handled++
		})
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			b.Fatal(err)
		}
		if !committed {
			b.Fatal("franz-go transaction aborted")
		}
	}
}
