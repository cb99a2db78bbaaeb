package integration

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// countingHook counts what the producer-side hooks see.
type countingHook struct {
	mu        sync.Mutex
	connects  int
	written   map[string]int
	read      map[string]int
	produced  int
	outcomes  int
	failed    int
	batches   int
	batchRecs int
	buffered  int64
}

func (h *countingHook) OnBrokerConnect(string) { h.mu.Lock(); h.connects++; h.mu.Unlock() }
func (h *countingHook) OnRequestWritten(r keel.RequestWritten) {
	h.mu.Lock()
	h.written[r.API]++
	h.mu.Unlock()
}
func (h *countingHook) OnResponseRead(r keel.ResponseRead) {
	h.mu.Lock()
	h.read[r.API]++
	h.mu.Unlock()
}
func (h *countingHook) OnProduce(context.Context, *keel.Message) {
	h.mu.Lock()
	h.produced++
	h.mu.Unlock()
}
func (h *countingHook) OnProduceRecord(d keel.Delivery) {
	h.mu.Lock()
	h.outcomes++
	if d.Err != nil {
		h.failed++
	}
	h.mu.Unlock()
}
func (h *countingHook) OnProduceBatch(b keel.ProduceBatch) {
	h.mu.Lock()
	h.batches++
	h.batchRecs += b.Records
	h.mu.Unlock()
}
func (h *countingHook) OnBuffered(_ string, n int, _ int64) {
	h.mu.Lock()
	h.buffered += int64(n)
	h.mu.Unlock()
}
func (h *countingHook) OnUnbuffered(_ string, n int, _ int64) {
	h.mu.Lock()
	h.buffered -= int64(n)
	h.mu.Unlock()
}

// TestHooksSeeProducerTraffic: with hooks installed, a scripted produce
// run is seen in full: every record entered, buffered and reported once,
// every batch written, one response read per request written (Produce,
// Metadata, ...), at least one connect; Stats agree with the counts.
func TestHooksSeeProducerTraffic(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 3))
	h := &countingHook{written: map[string]int{}, read: map[string]int{}}
	c := newClient(t, cl, keel.WithHooks(h))
	p := newProducer(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 500
	msgs := make([]*keel.Message, n)
	for i := range msgs {
		msgs[i] = &keel.Message{Topic: "t", Value: []byte("v")}
	}
	if _, err := p.SendAll(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.produced != n || h.outcomes != n || h.failed != 0 || h.buffered != 0 || h.batchRecs != n || h.connects < 1 {
		t.Fatalf("hooks saw produced %d outcomes %d failed %d buffered %d batch records %d connects %d", h.produced, h.outcomes, h.failed, h.buffered, h.batchRecs, h.connects)
	}
	if h.written["Produce"] != h.batches && h.written["Produce"] == 0 {
		t.Fatalf("produce requests written %d", h.written["Produce"])
	}
	for api, w := range h.written {
		if h.read[api] != w {
			t.Fatalf("%s: %d requests written, %d responses read", api, w, h.read[api])
		}
	}
	if st.Delivered != n || st.NotWritten != 0 || st.Batches != int64(h.batches) {
		t.Fatalf("stats %+v, hook batches %d", st, h.batches)
	}
}

// TestWithHooksRefusesNonHook: a value implementing no hook interface is
// a configuration error, not silently ignored.
func TestWithHooksRefusesNonHook(t *testing.T) {
	if _, err := keel.NewClient(keel.SeedBrokers("127.0.0.1:1"), keel.WithHooks(42)); err == nil {
		t.Fatal("WithHooks(42) accepted")
	}
}

// groupHook counts rebalances and commits.
type groupHook struct {
	mu                      sync.Mutex
	started, ended, commits int
	handled                 int
	committed               map[keel.TopicPartition]int64
}

func (h *groupHook) OnHandlerFinish(_ context.Context, f keel.HandlerFinish) {
	h.mu.Lock()
	if f.Err == nil && f.Topic == "g" {
		h.handled++
	}
	h.mu.Unlock()
}

func (h *groupHook) OnRebalanceStart(keel.RebalanceStart) { h.mu.Lock(); h.started++; h.mu.Unlock() }
func (h *groupHook) OnRebalance(r keel.Rebalance) {
	h.mu.Lock()
	if r.Err == nil {
		h.ended++
	}
	h.mu.Unlock()
}
func (h *groupHook) OnCommit(c keel.Commit) {
	h.mu.Lock()
	if c.Err == nil {
		h.commits++
		for tp, at := range c.Offsets {
			h.committed[tp] = at
		}
	}
	h.mu.Unlock()
}

// TestHooksSeeRebalanceAndCommit: one member joins (one rebalance, seen
// started and ended), processes every record (each handler call seen
// finished), and Close's commit is seen
// with the offsets that were committed. Under both group protocols (a
// KIP-848 reconciliation that assigns partitions is its rebalance).
func TestHooksSeeRebalanceAndCommit(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, proto []keel.GroupOption) { hooksSeeRebalanceAndCommit(t, proto) })
}

func hooksSeeRebalanceAndCommit(t *testing.T, proto []keel.GroupOption) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("g", 1))
	h := &groupHook{committed: map[keel.TopicPartition]int64{}}
	c := newClient(t, cl, keel.WithHooks(h))
	p := newProducer(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 50
	for i := 0; i < n; i++ {
		if _, err := p.Send(ctx, &keel.Message{Topic: "g", Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	g, err := keel.NewGroupConsumer(c, "hooks", []string{"g"}, with(proto, keel.ResetOffset(keel.ResetEarliest), keel.AutoCommitInterval(0))...)
	if err != nil {
		t.Fatal(err)
	}
	var seen sync.WaitGroup
	seen.Add(n)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- g.Run(rctx, keel.HandlerFunc(func(context.Context, *keel.Message) error { seen.Done(); return nil }))
	}()
	seen.Wait()
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	<-done
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started != 1 || h.ended != 1 {
		t.Fatalf("rebalances started %d ended %d, want 1 and 1", h.started, h.ended)
	}
	if h.handled != n {
		t.Fatalf("handler finishes seen %d, want %d", h.handled, n)
	}
	if h.commits < 1 || h.committed[keel.TopicPartition{Topic: "g", Partition: 0}] != n {
		t.Fatalf("commits %d, committed %v", h.commits, h.committed)
	}
}
