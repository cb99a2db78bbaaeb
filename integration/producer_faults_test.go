package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// The kinds of fault produceUnderFaults injects, by number.
const (
	faultNotLeader      = iota // NOT_LEADER_OR_FOLLOWER: not written
	faultTimedOut              // REQUEST_TIMED_OUT, answered after the append: written
	faultNotEnoughAfter        // NOT_ENOUGH_REPLICAS_AFTER_APPEND: written
	faultDrop                  // the connection closes: the request not written, the answers before it on the connection lost
	faultLeaderMove            // a partition's leader moves
	faultOutOfOrder            // OUT_OF_ORDER_SEQUENCE_NUMBER: the producer moves to a new epoch
	faultUnknownPID            // UNKNOWN_PRODUCER_ID: the producer moves to a new epoch
	faultKinds
)

var allFaults = []int{faultNotLeader, faultTimedOut, faultNotEnoughAfter, faultDrop, faultLeaderMove, faultOutOfOrder, faultUnknownPID}

// 200k records while produce requests fail in every way a broker can make
// them fail: with idempotence and acks=all nothing may be lost, duplicated
// or reordered.
//
// Records may end with their outcome unknown, and no record count bounds
// them: an outcome is unknowable only where a batch whose last attempt
// may have been written (faultTimedOut, faultNotEnoughAfter, faultDrop)
// meets a move to a new epoch before it is settled (it must not be resent
// under new numbers). That happens three ways here: the epoch fault hits
// the batch itself, or a batch before it in its partition, or another
// partition moves the producer on and kfake, which keeps one epoch per
// producer id where Kafka keeps one per partition, refuses the batch's
// old epoch (INVALID_PRODUCER_EPOCH). How many records that strands
// depends on how large the batches were, which the machine's load decides
// (with one build on one machine: from none to 187k of the 200k records,
// in at most 56 batches).
// So the bound here is on batches, by the faults that can make them
// maybe-written, and the two tests below prove that neither ingredient
// alone leaves any outcome unknown.
func TestProduceUnderFaultsExactlyOnceInOrder(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	run := produceUnderFaults(t, n, allFaults)
	rep := run.rep
	if rep.Lost+rep.Duplicated+rep.Reordered != 0 || rep.Found != n-rep.Unknown+rep.UnknownWritten {
		t.Fatal(rep)
	}
	// A FailRequests fault fails 2 requests, each with at most one batch
	// of each of the 6 partitions; a dropped connection takes the request
	// it drops and those answered before it on the connection, at most
	// MaxInFlight (5) requests of 6 batches. (A produce request timing out
	// under load leaves batches maybe written too; the bound has room.)
	bound := 2*6*(run.injected[faultTimedOut]+run.injected[faultNotEnoughAfter]) + 5*6*run.injected[faultDrop]
	if run.unknownBatches > bound {
		t.Fatalf("%d batches ended with their outcome unknown, more than the %d the maybe-written faults injected can explain", run.unknownBatches, bound)
	}
}

// Faults that leave attempts maybe written, but no epoch move: every such
// batch is resent under its own numbers and the broker's duplicate check
// settles it, so no outcome may end unknown and nothing is bumped.
func TestProduceUnderMaybeWrittenFaultsNoOutcomeUnknown(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	run := produceUnderFaults(t, n, []int{faultNotLeader, faultTimedOut, faultNotEnoughAfter, faultDrop, faultLeaderMove})
	if rep := run.rep; rep.Lost+rep.Duplicated+rep.Reordered+rep.Unknown != 0 || rep.Found != n {
		t.Fatal(rep)
	}
	if run.bumps != 0 {
		t.Fatalf("%d epoch bumps without a sequence fault: %v", run.bumps, run.bumpReasons)
	}
}

// Epoch moves, but no attempt left maybe written: every batch in flight at
// a move was answered, so no outcome may end unknown. A produce request
// that times out would leave one maybe written, so the request timeout is
// long here: this test is about the faults it injects.
func TestProduceUnderEpochBumpsNoOutcomeUnknown(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	run := produceUnderFaults(t, n, []int{faultNotLeader, faultLeaderMove, faultOutOfOrder, faultUnknownPID}, keel.ProduceRequestTimeout(30*time.Second))
	if rep := run.rep; rep.Lost+rep.Duplicated+rep.Reordered+rep.Unknown != 0 || rep.Found != n {
		t.Fatal(rep)
	}
	if run.bumps == 0 {
		t.Fatal("no epoch bump: the sequence faults did not reach the producer")
	}
}

// The same faults without idempotence must show duplicates: proof that the
// faults hit records after they were written and that the checker sees it.
func TestProduceUnderFaultsWithoutIdempotenceDuplicates(t *testing.T) {
	// Sequence errors concern idempotent producers only.
	run := produceUnderFaults(t, 50_000, []int{faultNotLeader, faultTimedOut, faultNotEnoughAfter, faultDrop, faultLeaderMove}, keel.Idempotence(false))
	rep := run.rep
	if rep.Lost != 0 {
		t.Fatalf("records lost even though every delivery succeeded: %v", rep)
	}
	if rep.Duplicated == 0 {
		t.Fatalf("no duplicates without idempotence: the faults did not exercise retries of written batches (%v)", rep)
	}
}

// faultRun is what produceUnderFaults saw.
type faultRun struct {
	rep            checkReport
	unknownBatches int             // batches failed with their outcome unknown
	injected       [faultKinds]int // faults injected, by kind
	bumps          int             // epoch bumps
	bumpReasons    map[string]int
}

// produceUnderFaults produces n ids while injecting the given kinds of
// fault in turn, and checks what the topic holds. The only failure it
// accepts is an outcome unknown that keel explains (a batch that may have
// been written and could not be resent under its own numbers); the caller
// decides how many of those its faults allow.
func produceUnderFaults(t *testing.T, n int, kinds []int, opts ...keel.ProducerOption) faultRun {
	const topic = "faulty"
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topic(topic, 6))
	bumps := &bumpLog{}
	c := newClient(t, cl, keel.MetadataMinRefreshInterval(10*time.Millisecond), keel.Logger(slog.New(bumps)))
	p := newProducer(t, c, append([]keel.ProducerOption{keel.RetryBackoff(5*time.Millisecond, 50*time.Millisecond),
		keel.DeliveryTimeout(time.Minute), keel.ProduceRequestTimeout(5 * time.Second)}, opts...)...)
	ctx := testCtx(t, 4*time.Minute)

	var run faultRun
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		tick := time.NewTicker(20 * time.Millisecond)
		ticks := 0
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			kind := kinds[ticks%len(kinds)] // every kind in turn, so short runs see them all
			ticks++
			switch kind {
			case faultNotLeader:
				cl.FailRequests(kmsg.Produce, 6, 2, keeltest.OnTopic(topic))
			case faultTimedOut:
				cl.FailRequests(kmsg.Produce, 7, 2, keeltest.OnTopic(topic))
			case faultNotEnoughAfter:
				cl.FailRequests(kmsg.Produce, 20, 2, keeltest.OnTopic(topic))
			case faultDrop:
				cl.DropConnections(kmsg.Produce, 1)
			case faultLeaderMove:
				part := rng.Int32N(6)
				ids := cl.NodeIDs()
				cl.MoveLeader(topic, part, ids[rng.IntN(len(ids))])
			case faultOutOfOrder:
				cl.FailRequests(kmsg.Produce, 45, 1, keeltest.OnTopic(topic))
			case faultUnknownPID:
				cl.FailRequests(kmsg.Produce, 59, 1, keeltest.OnTopic(topic))
			}
			run.injected[kind]++ // read after wg.Wait
		}
	}()
	// Faults stop once every record is produced: injecting them forever
	// would starve the last retries, which no real cluster does.
	failed := produceIDsThen(t, ctx, p, topic, n, func(i int) []byte { return []byte(fmt.Sprint(i % 1000)) }, 2*time.Second, func() {
		// Keep faulting a little past the last Produce so that the tail
		// of the run is retried too, and every kind gets its turn.
		time.Sleep(150 * time.Millisecond)
		close(stop)
		wg.Wait()
	})
	maybe := map[int]bool{}
	byCause := map[error]int16{} // keel fails a batch's records with one error: one entry per batch
	for _, d := range failed {
		id, err := strconv.Atoi(string(d.Message.Value))
		var pe *keel.ProduceError
		if !errors.Is(d.Err, keel.ErrOutcomeUnknown) || !errors.As(d.Err, &pe) || err != nil {
			t.Fatalf("%d deliveries failed; one not as outcome unknown: %v", len(failed), d.Err)
		}
		if msg := pe.Err.Error(); !strings.Contains(msg, "not resending, to avoid a duplicate") && !strings.Contains(msg, "may never have been written") {
			t.Fatalf("a delivery failed with its outcome unknown for a reason the faults cannot explain: %v", d.Err)
		}
		if _, seen := byCause[pe.Err]; !seen && len(byCause) < 5 {
			t.Logf("outcome unknown, e.g.: %v", d.Err)
		}
		byCause[pe.Err] = firstCode(pe.Err)
		maybe[id] = true
	}
	run.unknownBatches = len(byCause)
	run.bumps, run.bumpReasons = bumps.count(), bumps.reasons()
	byCode := map[int16]int{}
	for _, code := range byCause {
		byCode[code]++
	}
	t.Logf("outcome unknown: %d records in %d batches, by the batch's last error code %v; epoch bumps %d: %v", len(maybe), run.unknownBatches, byCode, run.bumps, run.bumpReasons)
	t.Logf("faults injected (0 NOT_LEADER, 1 TIMED_OUT after append, 2 NOT_ENOUGH_REPLICAS_AFTER_APPEND, 3 dropped connection, 4 leader move, 5 OUT_OF_ORDER_SEQUENCE, 6 UNKNOWN_PRODUCER_ID): %v", run.injected)
	for _, kind := range kinds {
		if run.injected[kind] == 0 {
			t.Errorf("fault kind %d never injected: the run was too short to prove anything", kind)
		}
	}
	run.rep = checkExactlyOnceMaybe(readTopic(t, cl, topic), n, maybe)
	t.Log(run.rep)
	return run
}

// A partition whose leader stops answering: its records fail with a
// delivery timeout within the timeout plus a little, nothing hangs, the
// other partitions deliver, and Close returns.
func TestProduceToSilentBrokerTimesOut(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(2), keeltest.Topic("t", 2))
	leader0 := cl.Leader("t", 0)
	if cl.Leader("t", 1) == leader0 {
		other := cl.NodeIDs()[0]
		if other == leader0 {
			other = cl.NodeIDs()[1]
		}
		if err := cl.MoveLeader("t", 1, other); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient(t, cl, keel.RequestTimeout(time.Second))
	const timeout = 3 * time.Second
	p := newProducer(t, c, keel.ManualPartitioner(), keel.DeliveryTimeout(timeout), keel.ProduceRequestTimeout(time.Second))
	ctx := testCtx(t, 30*time.Second)
	// Warm up both partitions so the silence hits established connections.
	for part := range int32(2) {
		if _, err := p.Send(ctx, &keel.Message{Topic: "t", Partition: part, Value: []byte("warm")}); err != nil {
			t.Fatal(err)
		}
	}
	resume := cl.StopAnswering(kmsg.Produce, leader0)
	defer resume()

	ch := make(chan keel.Delivery, 100)
	start := time.Now()
	for i := range 50 {
		p.Produce(ctx, &keel.Message{Topic: "t", Partition: int32(i % 2), Value: []byte("x")}, ch)
	}
	var ok, timedOut int
	for range 50 {
		select {
		case d := <-ch:
			switch {
			case d.Err == nil && d.Partition == 1:
				ok++
			case d.Partition == 0 && errors.Is(d.Err, keel.ErrDeliveryTimeout):
				timedOut++
				if took := time.Since(start); took > timeout+2*time.Second {
					t.Errorf("delivery timeout reported after %v (timeout %v)", took, timeout)
				}
				if d.Outcome() != keel.OutcomeUnknown && d.Outcome() != keel.NotWritten {
					t.Errorf("outcome %v", d.Outcome())
				}
			default:
				t.Errorf("unexpected delivery: partition %d err %v", d.Partition, d.Err)
			}
		case <-ctx.Done():
			t.Fatalf("deliveries hung: ok=%d timedOut=%d", ok, timedOut)
		}
	}
	if ok != 25 || timedOut != 25 {
		t.Fatalf("ok=%d timedOut=%d, want 25 each", ok, timedOut)
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closeStart := time.Now()
	p.Close(closeCtx)
	if took := time.Since(closeStart); took > 5*time.Second {
		t.Fatalf("Close took %v", took)
	}
}

// One record over the size limit among good ones: only it fails, with a
// clear error, and it is never sent.
func TestTooLargeRecordFailsAlone(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.MaxBatchBytes(64<<10))
	ctx := testCtx(t, 20*time.Second)
	msgs := []*keel.Message{
		{Topic: "t", Value: []byte("a")},
		{Topic: "t", Value: make([]byte, 100<<10)},
		{Topic: "t", Value: []byte("b")},
	}
	ds, err := p.SendAll(ctx, msgs...)
	if err == nil {
		t.Fatal("no error for the large record")
	}
	if ds[0].Err != nil || ds[2].Err != nil {
		t.Fatalf("good records failed: %v / %v", ds[0].Err, ds[2].Err)
	}
	big := ds[1].Err
	if !errors.Is(big, keel.ErrMessageTooLarge) || !errors.Is(big, keel.ErrNotWritten) {
		t.Fatalf("large record: want ErrMessageTooLarge + ErrNotWritten, got %v", big)
	}
	if !strings.Contains(big.Error(), "MaxBatchBytes") {
		t.Errorf("error does not say what to change: %v", big)
	}
	if hw := cl.HighWatermark("t", 0); hw != 2 {
		t.Fatalf("high watermark %d, want the 2 good records", hw)
	}
}

// Nobody reads the deliveries channel nor Events(): Flush and Close still
// return within their ctx, and Close says how many reports went unread.
func TestUnreadChannelsDoNotBlockFlushOrClose(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 2))
	c := newClient(t, cl)
	p, err := keel.NewProducer(c, keel.EventsBuffer(1), keel.MaxBufferedRecords(100_000))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Second)
	unread := make(chan keel.Delivery) // unbuffered, never read
	for i := range 500 {
		p.Produce(ctx, &keel.Message{Topic: "t", Value: []byte(fmt.Sprint(i))}, unread)
		p.Produce(ctx, &keel.Message{Topic: "t", Value: []byte(fmt.Sprint(i))}, nil) // to Events(), never read
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Flush(fctx); err != nil {
		t.Fatalf("Flush with unread channels: %v", err)
	}
	if hw := cl.HighWatermark("t", 0) + cl.HighWatermark("t", 1); hw != 1000 {
		t.Fatalf("%d records stored, want 1000", hw)
	}
	cctx, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	start := time.Now()
	err = p.Close(cctx)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v with a 500ms ctx", took)
	}
	if err == nil || !strings.Contains(err.Error(), "never read") {
		t.Fatalf("Close should report the unread reports, got %v", err)
	}
	// Events() is closed after Close.
	for range p.Events() {
	}
}

// firstCode returns the Kafka error code nearest the top of err's chain
// (keel.ErrorCode stops at the outermost keel error, often a wrapper
// saying what keel did, with code 0).
func firstCode(err error) int16 {
	for ; err != nil; err = errors.Unwrap(err) {
		if code := keel.ErrorCode(err); code != 0 {
			return code
		}
	}
	return 0
}

// bumpLog is a slog handler counting the producer's epoch bumps by reason.
type bumpLog struct {
	mu  sync.Mutex
	why map[string]int
}

func (b *bumpLog) Enabled(context.Context, slog.Level) bool { return true }
func (b *bumpLog) WithAttrs([]slog.Attr) slog.Handler       { return b }
func (b *bumpLog) WithGroup(string) slog.Handler            { return b }
func (b *bumpLog) Handle(_ context.Context, r slog.Record) error {
	_, why, ok := strings.Cut(r.Message, "bumping producer epoch to ")
	if !ok {
		return nil
	}
	if _, rest, ok := strings.Cut(why, ": "); ok {
		why = rest
	}
	// The partition in the reason does not matter here.
	if i := strings.Index(why, "/"); i >= 0 {
		if j := strings.IndexByte(why[i:], ' '); j >= 0 {
			why = why[:i] + why[i+j:]
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.why == nil {
		b.why = map[string]int{}
	}
	b.why[why]++
	return nil
}

func (b *bumpLog) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.why {
		n += c
	}
	return n
}

func (b *bumpLog) reasons() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.why)
}
