package integration

// Transactions (issue 13): commits are visible to read_committed readers
// exactly once, aborts never; a newer producer with the same
// transactional id fences an older one (ErrFenced, its writes never
// visible); a producer that goes away mid-transaction has it aborted when
// the id starts again or its timeout passes. Every check counts records.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

func newTxnProducer(t *testing.T, c *keel.Client, id string, opts ...keel.ProducerOption) *keel.Producer {
	t.Helper()
	p, err := keel.NewProducer(c, append([]keel.ProducerOption{keel.TransactionalID(id), keel.Linger(time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Bounded: reports sent to Events() that nobody read would hold
		// Close until its ctx ends.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

// produceTxn produces values to topic inside the open transaction and
// returns the channel their reports go to.
func produceTxn(ctx context.Context, p *keel.Producer, topic string, values []string) chan keel.Delivery {
	ch := make(chan keel.Delivery, len(values))
	for _, v := range values {
		p.Produce(ctx, &keel.Message{Topic: topic, Key: []byte(v[:strings.IndexByte(v, '-')]), Value: []byte(v)}, ch)
	}
	return ch
}

func txnValues(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%d-%s-%d", i%5, prefix, i)
	}
	return out
}

// readAll reads topic's partitions from the start with a direct consumer
// until want records arrived and then quiet lasts 300ms (so that extra
// records would be seen), or ctx ends.
func readAll(t *testing.T, ctx context.Context, c *keel.Client, topic string, partitions int32, want int, committed bool) []*keel.Message {
	t.Helper()
	var opts []keel.ConsumerOption
	if committed {
		opts = append(opts, keel.ReadCommitted())
	}
	cons, err := keel.NewConsumer(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(context.Background())
	for p := int32(0); p < partitions; p++ {
		if err := cons.Assign(keel.TopicPartition{Topic: topic, Partition: p}, keel.AtEarliest()); err != nil {
			t.Fatal(err)
		}
	}
	var got []*keel.Message
	quietUntil := time.Time{}
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		msgs, _ := cons.Poll(pctx)
		cancel()
		got = append(got, msgs...)
		if len(got) >= want {
			if quietUntil.IsZero() {
				quietUntil = time.Now().Add(300 * time.Millisecond)
			}
			if time.Now().After(quietUntil) {
				break
			}
		}
	}
	return got
}

// checkExactly fails unless got holds each of want exactly once, in order
// per key, and nothing else; it says whether it passed.
func checkExactly(t *testing.T, who string, got []string, want []string) bool {
	t.Helper()
	wantSet := map[string]int{}
	for i, v := range want {
		wantSet[v] = i
	}
	seen := map[string]int{}
	lastByKey := map[string]int{}
	var unexpected, reordered int
	for _, v := range got {
		seen[v]++
		i, ok := wantSet[v]
		if !ok {
			unexpected++
			continue
		}
		k := v[:strings.IndexByte(v, '-')]
		if last, ok := lastByKey[k]; ok && last > i {
			reordered++
		}
		lastByKey[k] = i
	}
	var missing, dup int
	for _, v := range want {
		switch seen[v] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	if missing+dup+unexpected+reordered > 0 {
		t.Errorf("%s: %d records, want %d: %d missing, %d duplicated, %d not expected (aborted or fenced), %d out of order per key",
			who, len(got), len(want), missing, dup, unexpected, reordered)
		return false
	}
	return true
}

func messageValues(ms []*keel.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Value)
	}
	return out
}

func kcatValues(t *testing.T, ctx context.Context, kcat, addr, topic, isolation string) []string {
	t.Helper()
	out := runKcat(t, ctx, kcat, nil, "-C", "-b", addr, "-t", topic, "-o", "beginning", "-e", "-q",
		"-X", "isolation.level="+isolation, "-f", "%s\n")
	var vals []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			vals = append(vals, l)
		}
	}
	return vals
}

func waitDeliveries(t *testing.T, ch chan keel.Delivery, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if d := <-ch; d.Err != nil {
			t.Fatalf("record %d of the transaction: %v", i, d.Err)
		}
	}
}

// TestTxnCommitAndAbortVisibility: two committed transactions around an
// aborted one. keel and kcat reading read_committed see exactly the
// committed records, once each, in order per key; read_uncommitted they
// see the aborted ones too.
func TestTxnCommitAndAbortVisibility(t *testing.T) {
	const topic = "txn-vis"
	cl := startCluster(t, keeltest.Brokers(2), keeltest.Topic(topic, 3))
	c := newClient(t, cl)
	ctx := testCtx(t, 60*time.Second)
	p := newTxnProducer(t, c, "vis")

	first, aborted, last := txnValues("c1", 300), txnValues("ab", 200), txnValues("c2", 300)
	for _, step := range []struct {
		vals   []string
		commit bool
	}{{first, true}, {aborted, false}, {last, true}} {
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		ch := produceTxn(ctx, p, topic, step.vals)
		if step.commit {
			if err := p.CommitTxn(ctx); err != nil {
				t.Fatalf("CommitTxn: %v", err)
			}
			waitDeliveries(t, ch, len(step.vals)) // reports kept per record
			continue
		}
		if err := p.Flush(ctx); err != nil { // written, then aborted
			t.Fatal(err)
		}
		if err := p.AbortTxn(ctx); err != nil {
			t.Fatalf("AbortTxn: %v", err)
		}
	}
	committed := append(append([]string{}, first...), last...)
	all := append(append(append([]string{}, first...), aborted...), last...)

	checkExactly(t, "keel read_committed", messageValues(readAll(t, ctx, c, topic, 3, len(committed), true)), committed)
	checkExactly(t, "keel read_uncommitted", messageValues(readAll(t, ctx, c, topic, 3, len(all), false)), all)

	kcat := kcatPath(t)
	checkExactly(t, "kcat read_committed", kcatValues(t, ctx, kcat, cl.Addr(), topic, "read_committed"), committed)
	checkExactly(t, "kcat read_uncommitted", kcatValues(t, ctx, kcat, cl.Addr(), topic, "read_uncommitted"), all)
}

// TestTxnZombieFenced: A stalls mid-transaction with records written; B
// starts with the same transactional id and commits. A's records are
// never visible to read_committed readers and A gets ErrFenced, then
// refuses further work.
func TestTxnZombieFenced(t *testing.T) {
	const topic = "txn-zombie"
	cl := startCluster(t, keeltest.Topic(topic, 2))
	ctx := testCtx(t, 60*time.Second)
	ca, cb := newClient(t, cl), newClient(t, cl)
	a := newTxnProducer(t, ca, "zombie")
	if err := a.BeginTxn(); err != nil {
		t.Fatal(err)
	}
	zombie := txnValues("zombie", 100)
	waitDeliveries(t, produceTxn(ctx, a, topic, zombie), len(zombie)) // written, open

	b := newTxnProducer(t, cb, "zombie")
	good := txnValues("good", 100)
	if err := b.InTxn(ctx, func(ctx context.Context) error {
		produceTxn(ctx, b, topic, good)
		return nil
	}); err != nil {
		t.Fatalf("B's transaction: %v", err)
	}

	// A wakes up: more records and its commit are refused as fenced.
	late := produceTxn(ctx, a, topic, txnValues("late", 10))
	err := a.CommitTxn(ctx)
	if !errors.Is(err, keel.ErrFenced) {
		t.Fatalf("A's CommitTxn: %v, want ErrFenced", err)
	}
	for i := 0; i < 10; i++ {
		if d := <-late; d.Err == nil {
			t.Fatalf("A's late record %q delivered", d.Message.Value)
		}
	}
	if err := a.BeginTxn(); !errors.Is(err, keel.ErrFenced) {
		t.Fatalf("A's BeginTxn after fencing: %v, want ErrFenced", err)
	}
	checkExactly(t, "keel read_committed", messageValues(readAll(t, ctx, ca, topic, 2, len(good), true)), good)
}

// TestTxnAbandonedAborted: a producer goes away mid-transaction without
// ending it (closed with the transaction open, as a process exit leaves
// it). Read_committed readers are held at its first record until the same
// id starts again (which aborts it) or, for another id, until the
// transaction timeout passes; then they proceed, without its records.
func TestTxnAbandonedAborted(t *testing.T) {
	const topic = "txn-abandon"
	cl := startCluster(t, keeltest.Topic(topic, 1))
	ctx := testCtx(t, 90*time.Second)
	c := newClient(t, cl)

	abandon := func(id string, timeout time.Duration, prefix string) []string {
		cx := newClient(t, cl)
		p, err := keel.NewProducer(cx, keel.TransactionalID(id), keel.TransactionTimeout(timeout))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		vals := txnValues(prefix, 50)
		waitDeliveries(t, produceTxn(ctx, p, topic, vals), len(vals))
		p.Close(ctx) // no CommitTxn or AbortTxn: the coordinator still has it open
		return vals
	}

	// 1. The same id restarts: its InitProducerId aborts the open one.
	abandon("restart", time.Minute, "gone1")
	p := newTxnProducer(t, c, "restart")
	after := txnValues("after", 50)
	if err := p.InTxn(ctx, func(ctx context.Context) error { produceTxn(ctx, p, topic, after); return nil }); err != nil {
		t.Fatal(err)
	}
	checkExactly(t, "after restart", messageValues(readAll(t, ctx, c, topic, 1, len(after), true)), after)

	// 2. Nobody restarts it: the 2s timeout aborts it, and a commit of
	// another id behind it becomes readable.
	start := time.Now()
	abandon("timeout", 2*time.Second, "gone2")
	q := newTxnProducer(t, c, "other")
	later := txnValues("later", 50)
	if err := q.InTxn(ctx, func(ctx context.Context) error { produceTxn(ctx, q, topic, later); return nil }); err != nil {
		t.Fatal(err)
	}
	want := append(append([]string{}, after...), later...)
	checkExactly(t, "after timeout", messageValues(readAll(t, ctx, c, topic, 1, len(want), true)), want)
	t.Logf("read_committed proceeded %v after the abandoned transaction began (timeout 2s)", time.Since(start).Round(10*time.Millisecond))
}

// TestTxnCommitFailsWhenARecordFailed: a record that cannot be delivered
// (too large for the topic) makes CommitTxn refuse with ErrTxnMustAbort,
// and after AbortTxn the producer goes on with a clean transaction.
func TestTxnCommitFailsWhenARecordFailed(t *testing.T) {
	const topic = "txn-fail"
	cl := startCluster(t, keeltest.Topic(topic, 1))
	c := newClient(t, cl)
	ctx := testCtx(t, 60*time.Second)
	p := newTxnProducer(t, c, "fail")
	if err := p.BeginTxn(); err != nil {
		t.Fatal(err)
	}
	produceTxn(ctx, p, topic, txnValues("doomed", 10))
	p.ProduceFunc(ctx, &keel.Message{Topic: "no-such-topic-" + strings.Repeat("x", 300), Value: []byte("x")}, func(keel.Delivery) {})
	err := p.CommitTxn(ctx)
	if !errors.Is(err, keel.ErrTxnMustAbort) {
		t.Fatalf("CommitTxn with a failed record: %v, want ErrTxnMustAbort", err)
	}
	if err := p.AbortTxn(ctx); err != nil {
		t.Fatal(err)
	}
	ok := txnValues("ok", 20)
	if err := p.InTxn(ctx, func(ctx context.Context) error { produceTxn(ctx, p, topic, ok); return nil }); err != nil {
		t.Fatal(err)
	}
	checkExactly(t, "read_committed", messageValues(readAll(t, ctx, c, topic, 1, len(ok), true)), ok)
	if err := p.CommitTxn(ctx); !errors.Is(err, keel.ErrTxnNotOpen) {
		t.Fatalf("CommitTxn with none open: %v, want ErrTxnNotOpen", err)
	}
}

// TestTxnAbortAfterClientClosedEndsWithErrClosed: a transactional
// producer whose client was closed under it (a process shutting down out
// of order, a killed member in the exactly-once tests) must not retry its
// EndTxn until the caller's deadline: the client is gone, the answer is
// ErrClosed. Before the fix the coordinator call treated the closed
// pool's error as a connection failure worth retrying and ended only with
// the ctx (DeadlineExceeded).
func TestTxnAbortAfterClientClosedEndsWithErrClosed(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("closed-txn", 1))
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	p := newTxnProducer(t, c, "closed-under-txn")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.BeginTxn(); err != nil {
		t.Fatal(err)
	}
	waitDeliveries(t, produceTxn(ctx, p, "closed-txn", txnValues("a", 3)), 3)
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	err = p.AbortTxn(ctx)
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AbortTxn after the client closed retried until its ctx ended: %v", err)
	}
	if !errors.Is(err, keel.ErrClosed) {
		t.Fatalf("AbortTxn after the client closed: %v, want ErrClosed (and not the ctx's end)", err)
	}
}
