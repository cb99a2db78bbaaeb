package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// eosInput writes n keyed input records ("k<i%keys>-in-<i>") to topic and
// returns the outputs a transform must give ("out:" + the input).
func eosInput(t *testing.T, ctx context.Context, c *keel.Client, topic string, n, keys int) []string {
	t.Helper()
	src, err := keel.NewProducer(c)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	var inputs []*keel.Message
	want := make([]string, 0, n)
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("k%d", i%keys)
		v := fmt.Sprintf("%s-in-%d", k, i)
		inputs = append(inputs, &keel.Message{Topic: topic, Key: []byte(k), Value: []byte(v)})
		want = append(want, "out:"+v)
	}
	for len(inputs) > 0 {
		chunk := inputs[:min(len(inputs), 5000)]
		inputs = inputs[len(chunk):]
		if _, err := src.SendAll(ctx, chunk...); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

// transform is the handlers' work: one output per input, produced in the
// consumer's transaction.
func transform(out string) keel.HandlerFunc {
	return func(ctx context.Context, m *keel.Message) error {
		p := keel.TxnProducer(ctx)
		if p == nil {
			return errors.New("no transactional producer in the handler's ctx")
		}
		p.ProduceFunc(ctx, &keel.Message{Topic: out, Key: m.Key, Value: append([]byte("out:"), m.Value...)}, func(keel.Delivery) {})
		return nil
	}
}

// eosLog, when KEEL_EOS_LOG names a file, gets every EOS member client's
// log at debug level: what to read when an exactly-once test fails.
var eosLog = func() *slog.Logger {
	path := os.Getenv("KEEL_EOS_LOG")
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
}()

// eosMember is one ExactlyOnce group member with its own client and
// transactional producer (the same id across its incarnations, so a new
// one fences the one before).
type eosMember struct {
	c    *keel.Client
	p    *keel.Producer
	g    *keel.GroupConsumer
	stop context.CancelFunc
	done chan error
}

func startEOSMember(t *testing.T, ctx context.Context, cl *keeltest.Cluster, txnID, group, in string, h keel.Handler, extra ...keel.GroupOption) *eosMember {
	t.Helper()
	copts := []keel.ClientOption{keel.SeedBrokers(cl.Addrs()...)}
	if eosLog != nil {
		copts = append(copts, keel.Logger(eosLog.With("member", txnID, "incarnation", time.Now().Format("15:04:05.000"))))
	}
	c, err := keel.NewClient(copts...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := keel.NewProducer(c, keel.TransactionalID(txnID), keel.Linger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	opts := fastGroup(append([]keel.GroupOption{keel.ReadCommitted(), keel.ExactlyOnce(p, keel.TxnEvery(100*time.Millisecond, 500))}, extra...)...)
	g, err := keel.NewGroupConsumer(c, group, []string{in}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	m := &eosMember{c: c, p: p, g: g, stop: stop, done: make(chan error, 1)}
	go func() { m.done <- g.Run(rctx, h) }()
	return m
}

// close leaves the group cleanly: the open transaction is committed.
func (m *eosMember) close(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.g.Close(ctx); err != nil {
		t.Errorf("GroupConsumer.Close: %v", err)
	}
	m.stop()
	<-m.done
	m.p.Close(ctx)
	m.c.Close(ctx)
}

// kill ends the member without Close: no commit, no LeaveGroup; its
// client's connections close under it, so the group drops it after the
// session timeout and its open transaction is aborted when the same id
// starts again.
func (m *eosMember) kill() <-chan struct{} {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	m.c.Close(ctx) // connections first: nothing more reaches the brokers
	m.stop()
	gone := make(chan struct{})
	go func() { // the zombie ends: its last commit fails with ErrClosed against its closed client
		defer close(gone)
		defer cancel()
		<-m.done
		m.g.Close(ctx)
		m.p.Close(ctx)
	}()
	return gone
}

// checkEOSResult: a keel read_committed reader and kcat see every
// output exactly once, in order per key, and the group's committed
// offsets equal the input's end.
func checkEOSResult(t *testing.T, ctx context.Context, cl *keeltest.Cluster, c *keel.Client, group, in, out string, partitions int32, want []string) {
	t.Helper()
	// Bounded reads: a short read must leave time to ask kcat and to say
	// where the missing records are.
	rctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	got := readAll(t, rctx, c, out, partitions, len(want), true)
	cancel()
	if !checkExactly(t, "keel read_committed", messageValues(got), want) {
		explainMissing(t, ctx, c, out, partitions, got, want)
	}
	if kcat := kcatPath(t); kcat != "" {
		checkExactly(t, "kcat read_committed", kcatValues(t, ctx, kcat, cl.Addr(), out, "read_committed"), want)
	}
	checkCommittedAtEnd(t, ctx, c, group, in)
}

// explainMissing logs where the outputs missing from a read_committed
// read are when read uncommitted: not written at all, or written in a
// transaction that was aborted or is still open.
func explainMissing(t *testing.T, ctx context.Context, c *keel.Client, out string, partitions int32, committed []*keel.Message, want []string) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	all := readAll(t, rctx, c, out, partitions, len(want)*2, false)
	seen := map[string]bool{}
	for _, m := range committed {
		seen[string(m.Value)] = true
	}
	where := map[string][]string{}
	for _, m := range all {
		where[string(m.Value)] = append(where[string(m.Value)], fmt.Sprintf("%d@%d", m.Partition, m.Offset))
	}
	shown := 0
	for _, v := range want {
		if seen[v] || shown >= 20 {
			continue
		}
		shown++
		t.Logf("missing %q: read uncommitted at partition@offset %v", v, where[v])
	}
	last := map[int32]int64{}
	for _, m := range all {
		last[m.Partition] = max(last[m.Partition], m.Offset)
	}
	lastCommitted := map[int32]int64{}
	for _, m := range committed {
		lastCommitted[m.Partition] = max(lastCommitted[m.Partition], m.Offset)
	}
	t.Logf("last offset per partition read uncommitted %v, read committed %v (%d records uncommitted)", last, lastCommitted, len(all))
}

// checkCommittedAtEnd checks that group's committed offsets equal the end
// of every partition of in: nothing left to process, nothing committed
// past what exists.
func checkCommittedAtEnd(t *testing.T, ctx context.Context, c *keel.Client, group, in string) {
	t.Helper()
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	offs, err := adm.GroupOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.EndOffsets(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for tp, end := range ends {
		if offs[tp] != end {
			t.Errorf("%v: group committed %d, input ends at %d", tp, offs[tp], end)
		}
	}
}

// waitCommitted waits until the group's committed offsets reach the
// input's end.
func waitCommitted(t *testing.T, ctx context.Context, c *keel.Client, group, in string) {
	t.Helper()
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.EndOffsets(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for {
		offs, err := adm.GroupOffsets(ctx, group)
		if err == nil {
			done := true
			for tp, end := range ends {
				if offs[tp] != end {
					done = false
				}
			}
			if done {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the group never committed the input's end: %v (last %v)", ctx.Err(), offs)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestExactlyOnceRunOptions: ExactlyOnce refuses what it does not
// support, at construction, with errors that say so.
func TestExactlyOnceRunOptions(t *testing.T) {
	cl := startCluster(t, keeltest.Topic("eos-opt", 1))
	c := newClient(t, cl)
	plain := newProducer(t, c)
	txn := newTxnProducer(t, c, "eos-opt")
	for name, opts := range map[string][]keel.GroupOption{
		"nil producer":   {keel.ExactlyOnce(nil)},
		"not txn":        {keel.ExactlyOnce(plain)},
		"on error":       {keel.ExactlyOnce(txn), keel.OnHandlerError(func(*keel.Message, error) keel.HandlerAction { return keel.SkipMessage })},
		"interval":       {keel.ExactlyOnce(txn, keel.TxnEvery(0, 10))},
		"negative count": {keel.ExactlyOnce(txn, keel.TxnEvery(time.Second, -1))},
	} {
		if _, err := keel.NewGroupConsumer(c, "g", []string{"eos-opt"}, opts...); !errors.Is(err, keel.ErrInvalidConfig) {
			t.Errorf("%s: got %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := keel.NewGroupPoller(c, "g", []string{"eos-opt"}, keel.ExactlyOnce(txn)); !errors.Is(err, keel.ErrInvalidConfig) {
		t.Errorf("poller: got %v, want ErrInvalidConfig", err)
	}
}

// TestExactlyOnceRunHandlerError: a handler fails once in the middle of a
// transaction that already holds outputs of other records: the
// transaction aborts, the partitions go back to their committed offsets,
// and every output is still visible exactly once.
func TestExactlyOnceRunHandlerError(t *testing.T) {
	const in, out, group, n = "eosh-in", "eosh-out", "eosh", 2000
	cl := groupCluster(t, 1, keeltest.Topic(in, 3), keeltest.Topic(out, 3))
	c := newClient(t, cl)
	ctx := testCtx(t, 2*time.Minute)
	want := eosInput(t, ctx, c, in, n, 11)
	var failed, calls atomic.Int64
	tr := transform(out)
	h := keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		if err := tr(ctx, m); err != nil {
			return err
		}
		if calls.Add(1) == n/2 && failed.Add(1) == 1 {
			return errors.New("injected handler failure")
		}
		return nil
	})
	m := startEOSMember(t, ctx, cl, "eosh-1", group, in, h)
	waitCommitted(t, ctx, c, group, in)
	m.close(t)
	if failed.Load() != 1 {
		t.Fatalf("the handler failure was not injected")
	}
	if calls.Load() <= n {
		t.Fatalf("%d handler calls for %d records: nothing was processed again after the abort", calls.Load(), n)
	}
	t.Logf("%d handler calls for %d records", calls.Load(), n)
	checkEOSResult(t, ctx, cl, c, group, in, out, 3, want)
}

// TestExactlyOnceRunRevoke: a second member joins while the first is in
// the middle of a transaction (handlers are slowed so it is): the
// partitions that move are committed before they are released, and the
// new owner continues after them without a duplicate.
func TestExactlyOnceRunRevoke(t *testing.T) {
	const in, out, group, n = "eosr-in", "eosr-out", "eosr", 3000
	cl := groupCluster(t, 1, keeltest.Topic(in, 4), keeltest.Topic(out, 4))
	c := newClient(t, cl)
	ctx := testCtx(t, 2*time.Minute)
	want := eosInput(t, ctx, c, in, n, 13)
	var revoked atomic.Int64
	var handled atomic.Int64
	tr := transform(out)
	slow := keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		handled.Add(1)
		time.Sleep(200 * time.Microsecond)
		return tr(ctx, m)
	})
	onRevoked := keel.OnRevoked(func(tps []keel.TopicPartition) { revoked.Add(int64(len(tps))) })
	a := startEOSMember(t, ctx, cl, "eosr-a", group, in, slow, onRevoked)
	for handled.Load() < n/4 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	b := startEOSMember(t, ctx, cl, "eosr-b", group, in, slow)
	waitCommitted(t, ctx, c, group, in)
	a.close(t)
	b.close(t)
	if revoked.Load() == 0 {
		t.Fatalf("no partition moved to the second member")
	}
	t.Logf("%d partitions revoked from the first member; %d handler calls for %d records", revoked.Load(), handled.Load(), n)
	checkEOSResult(t, ctx, cl, c, group, in, out, 4, want)
}

// TestExactlyOnceRunUnderFaults: a 3-member ExactlyOnce group transforms
// keyed input into an output topic while members are killed without
// Close and rejoin (same transactional id: the new incarnation fences the
// old and aborts its open transaction), ~5 % of produce requests fail and
// connections drop. Read committed, keel and kcat see every input's
// output exactly once, in order per key, and the group's committed
// offsets equal the input's end. KEEL_EOS=full runs 100k records
// (default 3k).
func TestExactlyOnceRunUnderFaults(t *testing.T) {
	const in, out, group = "eosf-in", "eosf-out", "eosf"
	n := 3_000
	if os.Getenv("KEEL_EOS") == "full" {
		n = 100_000
	}
	cl := groupCluster(t, 1, keeltest.Topic(in, 6), keeltest.Topic(out, 6))
	c := newClient(t, cl)
	ctx := testCtx(t, 4*time.Minute)
	want := eosInput(t, ctx, c, in, n, 17)

	var handled atomic.Int64
	tr := transform(out)
	h := keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		handled.Add(1)
		if eosLog != nil {
			eosLog.Info("handling", "in", fmt.Sprintf("%d@%d", m.Partition, m.Offset), "value", string(m.Value))
		}
		time.Sleep(300 * time.Microsecond) // so that the kills land mid-stream
		return tr(ctx, m)
	})
	var mu sync.Mutex
	members := make([]*eosMember, 3)
	for i := range members {
		members[i] = startEOSMember(t, ctx, cl, fmt.Sprintf("eosf-%d", i), group, in, h)
	}
	// ~5 % of produce requests fail with a retriable error; connections
	// drop now and then.
	var faultMu sync.Mutex
	rng := rand.New(rand.NewPCG(13, 447))
	fh := cl.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: out, Err: kerr.NotLeaderForPartition, Count: -1, When: func(kmsg.Request) bool {
		faultMu.Lock()
		defer faultMu.Unlock()
		return rng.IntN(20) == 0
	}})
	kills := 0
	var zombies []<-chan struct{}
	for step := 0; ctx.Err() == nil; step++ {
		if handled.Load() >= int64(n) && kills >= 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
		if kills < 3 && handled.Load() > int64(n*(kills+1)/5) {
			i := kills % 3
			mu.Lock()
			zombies = append(zombies, members[i].kill())
			members[i] = startEOSMember(t, ctx, cl, fmt.Sprintf("eosf-%d", i), group, in, h)
			mu.Unlock()
			kills++
			cl.DropConnections(kmsg.Produce, 2)
			t.Logf("killed and restarted member %d after %d handler calls", i, handled.Load())
		}
	}
	fh.Remove()
	waitCommitted(t, ctx, c, group, in)
	for _, z := range zombies {
		<-z
	}
	for _, m := range members {
		m.close(t)
	}
	t.Logf("%d handler calls for %d records, %d kills", handled.Load(), n, kills)
	checkEOSResult(t, ctx, cl, c, group, in, out, 6, want)
}
