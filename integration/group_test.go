package integration

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// processed counts how often each record id was handled.
type processed struct {
	mu     sync.Mutex
	counts map[int]int
	total  atomic.Int64
}

func newProcessed() *processed { return &processed{counts: make(map[int]int)} }

func (p *processed) add(m *keel.Message) {
	id, err := strconv.Atoi(string(m.Value))
	if err != nil {
		panic(err)
	}
	p.mu.Lock()
	p.counts[id]++
	p.mu.Unlock()
	p.total.Add(1)
}

// report counts ids never processed and extra processings.
func (p *processed) report(n int) (missing, dup int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range n {
		switch c := p.counts[i]; {
		case c == 0:
			missing++
		case c > 1:
			dup += c - 1
		}
	}
	return
}

func (p *processed) waitAll(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for {
		p.mu.Lock()
		have := len(p.counts)
		p.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-ctx.Done():
			var miss []int
			p.mu.Lock()
			for i := 0; i < n && len(miss) < 10; i++ {
				if p.counts[i] == 0 {
					miss = append(miss, i)
				}
			}
			p.mu.Unlock()
			t.Fatalf("only %d of %d records processed; missing ids include %v", have, n, miss)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func groupCluster(t *testing.T, partitions int32, opts ...keeltest.Option) *keeltest.Cluster {
	return startCluster(t, append([]keeltest.Option{keeltest.Brokers(3), keeltest.Topic("orders", partitions),
		keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute),
		// The consumer protocol's timings are the broker's: as fast as
		// fastGroup's for the classic one.
		keeltest.BrokerConfigs(map[string]string{
			"group.consumer.heartbeat.interval.ms": "200",
			"group.consumer.session.timeout.ms":    "6000",
		})}, opts...)...)
}

func fastGroup(extra ...keel.GroupOption) []keel.GroupOption {
	return append([]keel.GroupOption{
		keel.SessionTimeout(6 * time.Second), keel.HeartbeatInterval(200 * time.Millisecond),
		keel.RebalanceTimeout(20 * time.Second), keel.ResetOffset(keel.ResetEarliest),
		keel.AutoCommitInterval(200 * time.Millisecond), keel.FetchMaxWait(100 * time.Millisecond),
	}, extra...)
}

// member runs one group consumer in the background until stop is called,
// which closes it gracefully.
type member struct {
	g    *keel.GroupConsumer
	done chan error
}

func startMember(t *testing.T, c *keel.Client, group string, h keel.HandlerFunc, opts ...keel.GroupOption) *member {
	t.Helper()
	g, err := keel.NewGroupConsumer(c, group, []string{"orders"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{g: g, done: make(chan error, 1)}
	go func() { m.done <- g.Run(context.Background(), h) }()
	t.Cleanup(func() { m.stop(t) })
	return m
}

func (m *member) stop(t *testing.T) { closeAndWaitRun(t, m.g.Close, m.done) }

// closeAndWaitRun closes a consumer whose Run reports into done, and
// checks that Run returned cleanly; it may be called twice.
func closeAndWaitRun(t *testing.T, close func(context.Context) error, done chan error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	case <-ctx.Done():
		t.Error("Run did not return after Close")
	}
	done <- nil // a second stop finds Run already returned
}

func TestGroupConsumesEverythingOnceAndCommits(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, proto []keel.GroupOption) {
		cl := groupCluster(t, 6)
		c := newClient(t, cl)
		p := newProducer(t, c)
		ctx := testCtx(t, 60*time.Second)
		const n = 10_000
		if failed := produceIDs(t, ctx, p, "orders", n, func(i int) []byte { return []byte(fmt.Sprint(i % 50)) }); len(failed) > 0 {
			t.Fatal(failed[0].Err)
		}
		seen := newProcessed()
		var assigned sync.Map
		h := func(ctx context.Context, m *keel.Message) error { seen.add(m); return nil }
		m1 := startMember(t, c, "billing", h, fastGroup(with(proto, keel.OnAssigned(func(tps []keel.TopicPartition) {
			for _, tp := range tps {
				assigned.Store(tp, true)
			}
		}))...)...)
		m2 := startMember(t, c, "billing", h, fastGroup(proto...)...)
		seen.waitAll(t, ctx, n)
		if missing, dup := seen.report(n); missing != 0 || dup != 0 {
			t.Fatalf("missing %d, duplicated %d", missing, dup)
		}
		m1.stop(t)
		m2.stop(t)

		// A new member of the same group finds everything committed.
		again := newProcessed()
		m3 := startMember(t, c, "billing", func(ctx context.Context, m *keel.Message) error { again.add(m); return nil }, fastGroup(proto...)...)
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) && len(m3.g.Assigned()) < 6 {
			time.Sleep(20 * time.Millisecond)
		}
		if got := len(m3.g.Assigned()); got != 6 {
			t.Fatalf("the lone member got %d partitions", got)
		}
		time.Sleep(500 * time.Millisecond)
		if got := again.total.Load(); got != 0 {
			t.Fatalf("a second run of the group processed %d records again: commits were lost", got)
		}
	})
}
