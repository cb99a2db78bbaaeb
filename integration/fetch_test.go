package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/fetch"
	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/internal/topicpart"
	"github.com/keel-go/keel/keeltest"
)

// newFetcher makes a Fetcher with its own pool and metadata for cl, closed
// when the test ends.
func newFetcher(t *testing.T, cl *keeltest.Cluster, cfg fetch.Config) *fetch.Fetcher {
	t.Helper()
	pool := conn.NewPool(connConfig(), conn.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}, 0)
	m := meta.New(meta.Config{
		Seeds:               cl.Addrs(),
		MaxAge:              time.Minute,
		MinRefreshInterval:  20 * time.Millisecond,
		UnknownTopicRetries: 3,
		Backoff:             conn.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
	}, pool)
	if cfg.RetryBackoff.Min == 0 {
		cfg.RetryBackoff = conn.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	}
	f := fetch.New(cfg, pool, m)
	t.Cleanup(func() {
		f.Close()
		m.Close()
		pool.Close()
	})
	return f
}

// consumed collects polled records per partition and fails the test on a
// partition error unless the test expects one.
type consumed map[int32][]fetch.Record

func (c consumed) total() int {
	n := 0
	for _, rs := range c {
		n += len(rs)
	}
	return n
}

// pollUntil polls into got until done says so.
func pollUntil(t *testing.T, ctx context.Context, f *fetch.Fetcher, got consumed, done func() bool) {
	t.Helper()
	for !done() {
		fs, err := f.Poll(ctx, 1000)
		if err != nil {
			t.Fatalf("Poll: %v (have %d records)", err, got.total())
		}
		for _, fe := range fs {
			if fe.Err != nil {
				t.Fatalf("%v: %v", fe.TP, fe.Err)
			}
			got[fe.TP.Partition] = append(got[fe.TP.Partition], fe.Records...)
		}
	}
}

// pollNothing fails if Poll returns records or an error within d (a
// Fetch that only moves a position past markers is no data).
func pollNothing(t *testing.T, f *fetch.Fetcher, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		fs, err := f.Poll(ctx, 0)
		if err != nil {
			return
		}
		for _, fe := range fs {
			if len(fe.Records) > 0 || fe.Err != nil {
				t.Fatalf("Poll returned %d fetches, want none; %v (err %v, %d records)", len(fs), fe.TP, fe.Err, len(fe.Records))
			}
		}
	}
}

func assignAll(f *fetch.Fetcher, topic string, n int, start fetch.Offset) {
	for p := range n {
		f.Assign(topicpart.TP{Topic: topic, Partition: int32(p)}, start)
	}
}

// sameAsStored compares what the fetcher returned with what readTopic read
// raw: every record, in order, byte for byte.
func sameAsStored(t *testing.T, got consumed, stored map[int32][]record.Record) {
	t.Helper()
	for _, p := range sortedPartitions(stored) {
		want := stored[p]
		if len(got[p]) != len(want) {
			t.Fatalf("partition %d: %d records, want %d", p, len(got[p]), len(want))
		}
		for i, w := range want {
			g := got[p][i]
			if g.Offset != w.Offset || g.Timestamp != w.Timestamp || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) ||
				(g.Key == nil) != (w.Key == nil) || len(g.Headers) != len(w.Headers) {
				t.Fatalf("partition %d record %d: got offset %d %q=%q ts %d, want offset %d %q=%q ts %d",
					p, i, g.Offset, g.Key, g.Value, g.Timestamp, w.Offset, w.Key, w.Value, w.Timestamp)
			}
			for h := range w.Headers {
				if g.Headers[h].Key != w.Headers[h].Key || !bytes.Equal(g.Headers[h].Value, w.Headers[h].Value) {
					t.Fatalf("partition %d record %d header %d differs", p, i, h)
				}
			}
			if g.LeaderEpoch < 0 {
				t.Fatalf("partition %d record %d: leader epoch %d", p, i, g.LeaderEpoch)
			}
		}
	}
}

// produceMixed writes n records to topic with every codec (n/5 each), with
// keys, headers and compressible values. Values start with the record id.
func produceMixed(t *testing.T, ctx context.Context, c *keel.Client, topic string, n int) {
	t.Helper()
	codecs := []keel.Codec{keel.NoCompression, keel.Gzip, keel.Snappy, keel.LZ4, keel.Zstd}
	per := n / len(codecs)
	ch := make(chan keel.Delivery, 4096)
	for ci, codec := range codecs {
		p := newProducer(t, c, keel.Compression(codec, 0), keel.Linger(5*time.Millisecond))
		for i := ci * per; i < (ci+1)*per; i++ {
			m := &keel.Message{Topic: topic, Key: []byte("key-" + strconv.Itoa(i%97)),
				Value: fmt.Appendf(nil, "%d %s", i, bytes.Repeat([]byte{byte('a' + i%26)}, 40+i%60))}
			if i%7 == 0 {
				m.Headers = []keel.Header{{Key: "h", Value: []byte(strconv.Itoa(i))}, {Key: "null", Value: nil}}
			}
			p.Produce(ctx, m, ch)
		}
	}
	for range per * len(codecs) {
		select {
		case d := <-ch:
			if d.Err != nil {
				t.Fatalf("produce: %v", d.Err)
			}
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

// countFetches observes Fetch requests: all of them, and the incremental
// ones (a session epoch above 0).
func countFetches(cl *keeltest.Cluster) (all, incremental *atomic.Int64) {
	all, incremental = new(atomic.Int64), new(atomic.Int64)
	cl.Control(kmsg.Fetch, func(r kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		all.Add(1)
		if r.(*kmsg.FetchRequest).SessionEpoch > 0 {
			incremental.Add(1)
		}
		return nil, nil, false
	})
	return all, incremental
}

// 50k records in 6 partitions over 3 brokers, written with every codec,
// come back complete, in order and byte for byte, through fetch sessions.
func TestFetchEverythingMixedCodecs(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topic("all", 6))
	c := newClient(t, cl)
	ctx := testCtx(t, 50*time.Second)
	const n = 50000
	produceMixed(t, ctx, c, "all", n)
	stored := readTopic(t, cl, "all")

	all, incremental := countFetches(cl)
	f := newFetcher(t, cl, fetch.Config{PartitionMaxBytes: 128 << 10, MaxWait: 100 * time.Millisecond})
	assignAll(f, "all", 6, fetch.Earliest)
	got := consumed{}
	pollUntil(t, ctx, f, got, func() bool { return got.total() >= n })
	sameAsStored(t, got, stored)
	pollNothing(t, f, 200*time.Millisecond)
	for p := range int32(6) {
		pos, ok := f.Position(topicpart.TP{Topic: "all", Partition: p})
		if want := cl.HighWatermark("all", p); !ok || pos.At != want {
			t.Fatalf("partition %d: position %v %v, want %d", p, pos, ok, want)
		}
	}
	if incremental.Load() == 0 {
		t.Fatalf("%d fetch requests, none incremental: sessions not used", all.Load())
	}
	if b := f.Buffered(); b != 0 {
		t.Fatalf("%d bytes still counted as buffered", b)
	}
}

// produceTo writes values v0..v(n-1) (prefixed) to one partition.
func produceTo(t *testing.T, ctx context.Context, p *keel.Producer, topic string, partition int32, prefix string, n int, ts func(i int) time.Time) {
	t.Helper()
	for i := range n {
		m := &keel.Message{Topic: topic, Partition: partition, Value: []byte(prefix + strconv.Itoa(i))}
		if ts != nil {
			m.Timestamp = ts(i)
		}
		if _, err := p.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
}

func waitPosition(t *testing.T, ctx context.Context, f *fetch.Fetcher, tp topicpart.TP) fetch.Offset {
	t.Helper()
	for {
		if pos, ok := f.Position(tp); ok {
			return pos
		}
		select {
		case <-ctx.Done():
			t.Fatalf("position of %v never resolved", tp)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestFetchLatestAndAtTime(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(2), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.ManualPartitioner())
	ctx := testCtx(t, 30*time.Second)
	base := time.UnixMilli(1_700_000_000_000)
	produceTo(t, ctx, p, "t", 0, "old-", 100, func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) })
	tp := topicpart.TP{Topic: "t", Partition: 0}

	latest := newFetcher(t, cl, fetch.Config{MaxWait: 50 * time.Millisecond})
	latest.Assign(tp, fetch.Latest)
	if pos := waitPosition(t, ctx, latest, tp); pos.At != 100 {
		t.Fatalf("Latest resolved to %d, want 100", pos.At)
	}
	pollNothing(t, latest, 100*time.Millisecond)
	produceTo(t, ctx, p, "t", 0, "new-", 5, nil)
	got := consumed{}
	pollUntil(t, ctx, latest, got, func() bool { return got.total() >= 5 })
	for i, r := range got[0] {
		if r.Offset != int64(100+i) || string(r.Value) != "new-"+strconv.Itoa(i) {
			t.Fatalf("record %d: offset %d value %q", i, r.Offset, r.Value)
		}
	}

	at := newFetcher(t, cl, fetch.Config{MaxWait: 50 * time.Millisecond})
	at.AssignAtTime(tp, base.Add(50*time.Second))
	got = consumed{}
	pollUntil(t, ctx, at, got, func() bool { return got.total() >= 55 })
	if first := got[0][0]; first.Offset != 50 || string(first.Value) != "old-50" {
		t.Fatalf("AssignAtTime started at %d %q, want 50", first.Offset, first.Value)
	}
	// A time after every record starts at the end.
	at.AssignAtTime(tp, time.Now().Add(24*time.Hour))
	if pos := waitPosition(t, ctx, at, tp); pos.At != 105 {
		t.Fatalf("time past the end resolved to %d, want 105", pos.At)
	}
}

func TestFetchPauseResumeSeek(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 2))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.ManualPartitioner())
	ctx := testCtx(t, 30*time.Second)
	produceTo(t, ctx, p, "t", 0, "a", 50, nil)
	produceTo(t, ctx, p, "t", 1, "b", 50, nil)
	p0, p1 := topicpart.TP{Topic: "t", Partition: 0}, topicpart.TP{Topic: "t", Partition: 1}

	f := newFetcher(t, cl, fetch.Config{MaxWait: 50 * time.Millisecond})
	f.Pause(p0) // no effect: not assigned yet
	f.Assign(p0, fetch.Earliest)
	f.Assign(p1, fetch.Earliest)
	f.Pause(p0)
	got := consumed{}
	pollUntil(t, ctx, f, got, func() bool { return len(got[1]) >= 50 })
	produceTo(t, ctx, p, "t", 1, "b-more", 10, nil)
	pollUntil(t, ctx, f, got, func() bool { return len(got[1]) >= 60 })
	if len(got[0]) != 0 {
		t.Fatalf("paused partition returned %d records", len(got[0]))
	}
	if pos, _ := f.Position(p0); pos.At != 0 {
		t.Fatalf("paused partition moved to %d", pos.At)
	}

	f.Resume(p0)
	pollUntil(t, ctx, f, got, func() bool { return len(got[0]) >= 50 })
	if got[0][0].Offset != 0 || got[0][49].Offset != 49 || len(got[0]) != 50 {
		t.Fatalf("after resume: %d records from %d", len(got[0]), got[0][0].Offset)
	}

	// Seek back: exactly the records from there, nothing stale.
	f.Seek(p0, fetch.At(20))
	got = consumed{}
	pollUntil(t, ctx, f, got, func() bool { return len(got[0]) >= 30 })
	for i, r := range got[0] {
		if r.Offset != int64(20+i) || string(r.Value) != "a"+strconv.Itoa(20+i) {
			t.Fatalf("after seek, record %d is offset %d %q", i, r.Offset, r.Value)
		}
	}
	f.Unassign(p0, p1)
	pollNothing(t, f, 100*time.Millisecond)
}

// Leaders move twice while a fetcher reads 6 partitions, and a fetch
// session is rejected on the way: nothing lost, nothing twice.
func TestFetchFollowsLeaderMoves(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topic("moving", 6))
	c := newClient(t, cl)
	ctx := testCtx(t, 50*time.Second)
	const n = 20000
	if failed := produceIDs(t, ctx, newProducer(t, c), "moving", n, func(i int) []byte { return []byte(strconv.Itoa(i % 101)) }); len(failed) > 0 {
		t.Fatalf("%d deliveries failed: %v", len(failed), failed[0].Err)
	}
	stored := readTopic(t, cl, "moving")

	// A small budget keeps the fetcher from reading ahead of the poller,
	// so that most of the data is fetched after each move.
	f := newFetcher(t, cl, fetch.Config{PartitionMaxBytes: 4 << 10, MaxBytes: 16 << 10, MaxBufferedBytes: 16 << 10, MaxWait: 50 * time.Millisecond})
	assignAll(f, "moving", 6, fetch.Earliest)
	fetches, _ := countFetches(cl)
	got := consumed{}
	move := func() {
		for p := range int32(6) {
			next := (cl.Leader("moving", p) + 1) % 3
			if err := cl.MoveLeader("moving", p, next); err != nil {
				t.Fatal(err)
			}
		}
	}
	pollUntil(t, ctx, f, got, func() bool { return got.total() >= n/3 })
	move()
	cl.FailRequests(kmsg.Fetch, 71, 2, keeltest.AtTopLevel())
	pollUntil(t, ctx, f, got, func() bool { return got.total() >= 2*n/3 })
	move()
	cl.FailRequests(kmsg.Fetch, 70, 1, keeltest.AtTopLevel())
	before := fetches.Load()
	pollUntil(t, ctx, f, got, func() bool { return got.total() >= n })
	if fetches.Load()-before < 5 {
		t.Fatalf("only %d fetches after the last move: the data was read before it", fetches.Load()-before)
	}
	sameAsStored(t, got, stored)
	pollNothing(t, f, 200*time.Millisecond)

	asStored := make(map[int32][]record.Record)
	for p, rs := range got {
		for _, r := range rs {
			asStored[p] = append(asStored[p], r.Record)
		}
	}
	if rep := checkExactlyOnce(asStored, n); rep.Lost+rep.Duplicated+rep.Reordered != 0 {
		t.Fatal(rep)
	}
}

func TestFetchOffsetOutOfRange(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	ctx := testCtx(t, 30*time.Second)
	produceTo(t, ctx, newProducer(t, c, keel.ManualPartitioner()), "t", 0, "v", 20, nil)
	tp := topicpart.TP{Topic: "t", Partition: 0}

	none := newFetcher(t, cl, fetch.Config{Reset: fetch.ResetNone, MaxWait: 50 * time.Millisecond})
	none.Assign(tp, fetch.At(120))
	fs, err := none.Poll(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || !errors.Is(fs[0].Err, errs.ErrOffsetOutOfRange) || len(fs[0].Records) != 0 {
		t.Fatalf("want one out-of-range error, got %+v", fs)
	}
	if !bytes.Contains([]byte(fs[0].Err.Error()), []byte("120")) {
		t.Errorf("error does not say which offset: %v", fs[0].Err)
	}
	pollNothing(t, none, 200*time.Millisecond) // reported once, partition stopped
	none.Seek(tp, fetch.At(15))
	got := consumed{}
	pollUntil(t, ctx, none, got, func() bool { return got.total() >= 5 })
	if got[0][0].Offset != 15 {
		t.Fatalf("after seek: offset %d", got[0][0].Offset)
	}

	earliest := newFetcher(t, cl, fetch.Config{Reset: fetch.ResetEarliest, MaxWait: 50 * time.Millisecond})
	earliest.Assign(tp, fetch.At(120))
	got = consumed{}
	pollUntil(t, ctx, earliest, got, func() bool { return got.total() >= 20 })
	if got[0][0].Offset != 0 || len(got[0]) != 20 {
		t.Fatalf("reset earliest: %d records from %d", len(got[0]), got[0][0].Offset)
	}

	latest := newFetcher(t, cl, fetch.Config{Reset: fetch.ResetLatest, MaxWait: 50 * time.Millisecond})
	latest.Assign(tp, fetch.At(120))
	for {
		if pos, ok := latest.Position(tp); ok && pos.At == 20 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("reset latest never moved the position to 20")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A batch with a flipped byte is reported as corrupt after the records
// before it, and nothing after it is returned until the caller seeks.
func TestFetchCorruptBatch(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	ctx := testCtx(t, 30*time.Second)
	produceTo(t, ctx, newProducer(t, c, keel.ManualPartitioner()), "t", 0, "v", 10, nil)

	batch := func(base int64, from, n int, corrupt bool) []byte {
		b := record.NewBatchBuilder(record.Compression{Codec: record.CodecLZ4})
		for i := from; i < from+n; i++ {
			b.Append(&record.Record{Value: []byte("fake" + strconv.Itoa(i)), Timestamp: 1})
		}
		out, err := b.Finish(nil, record.NoProducer)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			out[i] = byte(base >> (56 - 8*i))
		}
		if corrupt {
			out[len(out)-2] ^= 0x10
		}
		return out
	}
	var answered atomic.Bool
	cl.Control(kmsg.Fetch, func(r kmsg.Request) (kmsg.Response, error, bool) {
		req := r.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.HighWatermark, sp.LastStableOffset = 10, 10
				sp.RecordBatches = append(batch(0, 0, 5, false), batch(5, 5, 5, true)...)
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		answered.Store(true)
		return resp, nil, true // session id 0: no session made
	})

	f := newFetcher(t, cl, fetch.Config{MaxWait: 50 * time.Millisecond})
	tp := topicpart.TP{Topic: "t", Partition: 0}
	f.Assign(tp, fetch.At(0))
	var recs []fetch.Record
	var ferr error
	for ferr == nil {
		fs, err := f.Poll(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, fe := range fs {
			recs = append(recs, fe.Records...)
			ferr = fe.Err
		}
	}
	if !answered.Load() {
		t.Fatal("the corrupt answer was never served")
	}
	if !errors.Is(ferr, errs.ErrCorruptMessage) || !errors.Is(ferr, record.ErrCorrupt) {
		t.Fatalf("error %v, want corrupt message", ferr)
	}
	if len(recs) != 5 || string(recs[4].Value) != "fake4" {
		t.Fatalf("%d records before the error", len(recs))
	}
	if pos, _ := f.Position(tp); pos.At != 5 {
		t.Fatalf("position %d, want the corrupt batch at 5", pos.At)
	}
	pollNothing(t, f, 200*time.Millisecond)

	// Seeking past the bad batch reads real data from the broker again.
	f.Seek(tp, fetch.At(5))
	got := consumed{}
	pollUntil(t, ctx, f, got, func() bool { return got.total() >= 5 })
	if string(got[0][0].Value) != "v5" {
		t.Fatalf("after seek: %q", got[0][0].Value)
	}
}

// One aborted and one committed transaction around plain records:
// read_committed returns only committed data, read_uncommitted everything
// but the control records, and both end past the markers.
func TestFetchReadCommitted(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("txn", 1))
	ctx := testCtx(t, 30*time.Second)
	kc, err := kgo.NewClient(kgo.SeedBrokers(cl.Addrs()...), kgo.TransactionalID("fetch-test"), kgo.DefaultProduceTopic("txn"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	txn := func(prefix string, n int, commit bool) {
		if err := kc.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := kc.ProduceSync(ctx, &kgo.Record{Value: []byte(prefix + strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := kc.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	plain, err := kgo.NewClient(kgo.SeedBrokers(cl.Addrs()...), kgo.DefaultProduceTopic("txn"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	txn("aborted-", 5, false)
	if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("plain-0")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txn("committed-", 5, true)
	hwm := cl.HighWatermark("txn", 0) // 5 + marker + 1 + 5 + marker = 13
	tp := topicpart.TP{Topic: "txn", Partition: 0}

	read := func(readCommitted bool, want int) []string {
		f := newFetcher(t, cl, fetch.Config{ReadCommitted: readCommitted, MaxWait: 50 * time.Millisecond})
		f.Assign(tp, fetch.Earliest)
		got := consumed{}
		pollUntil(t, ctx, f, got, func() bool { return got.total() >= want })
		pollNothing(t, f, 200*time.Millisecond)
		if pos, _ := f.Position(tp); pos.At != hwm {
			t.Fatalf("read_committed=%v: position %d, want %d (past the markers)", readCommitted, pos.At, hwm)
		}
		var vals []string
		for _, r := range got[0] {
			vals = append(vals, string(r.Value))
		}
		return vals
	}
	committed := read(true, 6)
	if want := []string{"plain-0", "committed-0", "committed-1", "committed-2", "committed-3", "committed-4"}; !slices.Equal(committed, want) {
		t.Fatalf("read_committed got %q, want %q", committed, want)
	}
	all := read(false, 11)
	if len(all) != 11 || all[0] != "aborted-0" || all[5] != "plain-0" || all[10] != "committed-4" {
		t.Fatalf("read_uncommitted got %q", all)
	}
}

// With a small budget and nobody polling, buffered data stays within the
// budget plus one response; polling then gets everything.
func TestFetchMemoryBudget(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("big", 3))
	c := newClient(t, cl)
	ctx := testCtx(t, 40*time.Second)
	const n = 3000 // about 3 MB of values
	// Uncompressed and in small batches: the broker's byte limits then
	// measure what the budget counts, and the one batch a broker returns
	// past its limit is small.
	const batch = 16 << 10
	p := newProducer(t, c, keel.Compression(keel.NoCompression, 0), keel.MaxBatchBytes(batch))
	ch := make(chan keel.Delivery, n)
	for i := range n {
		p.Produce(ctx, &keel.Message{Topic: "big", Key: []byte(strconv.Itoa(i)), Value: bytes.Repeat([]byte{'x'}, 1000)}, ch)
	}
	for range n {
		if d := <-ch; d.Err != nil {
			t.Fatal(d.Err)
		}
	}

	const budget, maxBytes = 64 << 10, 32 << 10
	all, _ := countFetches(cl)
	f := newFetcher(t, cl, fetch.Config{MaxBufferedBytes: budget, MaxBytes: maxBytes, PartitionMaxBytes: 16 << 10, MaxWait: 50 * time.Millisecond})
	assignAll(f, "big", 3, fetch.Earliest)
	// Let the fetcher fill the budget; nobody polls.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if b := f.Buffered(); b > budget+maxBytes+batch {
			t.Fatalf("buffered %d bytes with a budget of %d", b, budget)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if f.Buffered() < budget {
		t.Fatalf("only %d bytes buffered: the budget was not used", f.Buffered())
	}
	stalled := all.Load()
	time.Sleep(200 * time.Millisecond)
	if more := all.Load() - stalled; more != 0 {
		t.Fatalf("%d fetches sent while the budget was full", more)
	}

	got := consumed{}
	for got.total() < n {
		fs, err := f.Poll(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, fe := range fs {
			got[fe.TP.Partition] = append(got[fe.TP.Partition], fe.Records...)
		}
		if b := f.Buffered(); b > budget+maxBytes+batch {
			t.Fatalf("buffered %d bytes with a budget of %d", b, budget)
		}
	}
	if got.total() != n {
		t.Fatalf("%d records, want %d", got.total(), n)
	}
}
