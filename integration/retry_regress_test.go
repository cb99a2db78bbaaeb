package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
	"github.com/keel-go/keel/retry"
)

// retrySignalLog closes a channel the first time a log message contains
// a phrase; the rest of the log is dropped.
type retrySignalLog struct {
	phrase string
	once   *sync.Once
	seen   chan struct{}
}

func (l retrySignalLog) Enabled(context.Context, slog.Level) bool { return true }
func (l retrySignalLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, l.phrase) {
		l.once.Do(func() { close(l.seen) })
	}
	return nil
}
func (l retrySignalLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l retrySignalLog) WithGroup(string) slog.Handler      { return l }

// The policy closed while its consumer still runs (Policy.Close before
// GroupConsumer.Close, against the advice but easy to do): the record
// waiting out its retry-after used to come back to the worker as a handler
// failure, so with OnHandlerError(SkipMessage) it was marked, committed
// and never handled again. It must stay uncommitted, and the next member
// must handle it.
func TestRetryPolicyClosedBeforeConsumerLosesNothing(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topics(1, "orders", "orders.retry.1", "orders.dlt"),
		keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	c := newClient(t, cl)
	prod := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	retryProduceIDs(t, ctx, prod, "orders", 1, nil)

	const tier = 8 * time.Second
	ledger := newRetryLedger()
	h := func(ctx context.Context, m *keel.Message) error {
		id, info := ledger.saw(m)
		if info.Attempt == 1 {
			return fmt.Errorf("first attempt of %d fails", id)
		}
		ledger.succeeded(id)
		return nil
	}
	waiting := retrySignalLog{phrase: "waits until its retry-after", once: new(sync.Once), seen: make(chan struct{})}
	p, err := retry.NewPolicy(c, "g", []string{"orders"}, retry.Tiers(tier), retry.MaxAttempts(2), retry.Logger(slog.New(waiting)))
	if err != nil {
		t.Fatal(err)
	}
	skip := keel.OnHandlerError(func(*keel.Message, error) keel.HandlerAction { return keel.SkipMessage })
	g, err := keel.NewGroupConsumer(c, "g", p.Topics(), append(fastGroup(skip), p.GroupConsumerOptions()...)...)
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- g.Run(context.Background(), p.Wrap(g, keel.HandlerFunc(h))) }()
	closed := false
	closeGroup := func() {
		if closed {
			return
		}
		closed = true
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := g.Close(cctx); err != nil {
			t.Errorf("GroupConsumer.Close: %v", err)
		}
		<-runDone
	}
	defer closeGroup()

	select {
	case <-waiting.seen:
	case <-ctx.Done():
		t.Fatal("the retry record never started waiting")
	}
	if err := p.Close(ctx); err != nil { // the wrong order: the consumer still runs
		t.Fatal(err)
	}
	time.Sleep(time.Second) // five commit intervals
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	retryTP := keel.TopicPartition{Topic: "orders.retry.1", Partition: 0}
	committed, err := adm.GroupOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := committed[retryTP]; ok && got != 0 {
		t.Fatalf("the waiting retry record was committed (offset %d) when the policy closed: it is lost", got)
	}
	closeGroup()
	if committed, err = adm.GroupOffsets(ctx, "g"); err != nil {
		t.Fatal(err)
	} else if got, ok := committed[retryTP]; ok && got != 0 {
		t.Fatalf("the waiting retry record was committed (offset %d) by Close", got)
	}

	// The next member handles it, after its retry-after.
	startRetryMember(t, c, "g", []string{"orders"}, h, retry.Tiers(tier), retry.MaxAttempts(2), retry.GroupOptions(fastGroup()...))
	retryWaitFor(t, ctx, "the next member to handle the retry", func() bool { return ledger.successCount() == 1 })
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	if len(ledger.early) > 0 {
		t.Fatalf("handled early: %v", ledger.early)
	}
}

// Replay calls OnReplay (and Filter) from the workers of several
// partitions; a callback written as the loop body it looks like — a map,
// a counter, a writer — must not race. They are called one at a time.
func TestRetryReplayCallbacksOneAtATime(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topics(4, "orders", "orders.dlt"))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	const n = 40
	for i := range n {
		m := &keel.Message{Topic: "orders.dlt", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i)),
			Headers: []keel.Header{{Key: retry.HeaderOriginalTopic, Value: []byte("orders")}}}
		if _, err := p.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var inside, overlaps atomic.Int32
	busy := func() {
		if inside.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(10 * time.Millisecond)
		inside.Add(-1)
	}
	seen := map[string]bool{} // deliberately unguarded, as a user would write it
	res, err := retry.Replay(ctx, c, retry.ReplayOptions{DLT: "orders.dlt", Group: "replay-callbacks",
		Filter:   func(*keel.Message) bool { busy(); return true },
		OnReplay: func(from *keel.Message, _ keel.Delivery) { busy(); seen[string(from.Value)] = true }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != n || len(seen) != n {
		t.Fatalf("replayed %d, OnReplay saw %d; want %d", res.Replayed, len(seen), n)
	}
	if k := overlaps.Load(); k > 0 {
		t.Fatalf("callbacks ran concurrently %d times", k)
	}
}

// Two replays with the same group started together both pass the "group
// is idle" check, join, and split the partitions: each then waited for
// ever for the partitions the other one held, since a replay finishes
// only once every partition reached its end. One of them must step back
// (ErrReplayBusy, its progress committed) so that the other finishes;
// neither may hang, and no record may be replayed twice.
func TestRetryConcurrentReplaysDoNotHang(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topics(4, "orders", "orders.dlt"),
		keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 90*time.Second)
	const n = 80
	for i := range n {
		m := &keel.Message{Topic: "orders.dlt", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i)),
			Headers: []keel.Header{{Key: retry.HeaderOriginalTopic, Value: []byte("orders")}}}
		if _, err := p.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// Slow copies keep both replays busy while the group rebalances.
	slow := func(*keel.Message, keel.Delivery) { time.Sleep(50 * time.Millisecond) }
	rctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	type outcome struct {
		res retry.ReplayResult
		err error
	}
	out := make(chan outcome, 2)
	var start sync.WaitGroup
	start.Add(1)
	for range 2 {
		go func() {
			start.Wait()
			res, err := retry.Replay(rctx, c, retry.ReplayOptions{DLT: "orders.dlt", OnReplay: slow,
				GroupOptions: []keel.GroupOption{keel.HeartbeatInterval(100 * time.Millisecond)}})
			out <- outcome{res, err}
		}()
	}
	start.Done()
	total, busy := 0, 0
	for range 2 {
		o := <-out
		switch {
		case o.err == nil:
		case errors.Is(o.err, retry.ErrReplayBusy):
			busy++
		default:
			t.Fatalf("replay: %+v, %v", o.res, o.err)
		}
		t.Logf("replay: %+v, err %v", o.res, o.err)
		total += o.res.Replayed
	}
	if rctx.Err() != nil {
		t.Fatal("the replays hung until their ctx ended")
	}
	// One that stepped back left the rest for a later run.
	if busy > 0 {
		res, err := retry.Replay(ctx, c, retry.ReplayOptions{DLT: "orders.dlt"})
		if err != nil {
			t.Fatal(err)
		}
		total += res.Replayed
	}
	if total != n {
		t.Fatalf("%d records replayed in all, want %d (each once)", total, n)
	}
	if got := retryHWMSum(cl, "orders"); got != n {
		t.Fatalf("orders holds %d copies, want %d", got, n)
	}
}
