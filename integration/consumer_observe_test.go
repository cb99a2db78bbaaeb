package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// lagHook keeps the last Lag the library told it per partition.
type lagHook struct {
	mu   sync.Mutex
	last map[keel.TopicPartition]keel.Lag
}

func (h *lagHook) OnLag(l keel.Lag) {
	h.mu.Lock()
	h.last[l.TopicPartition] = l
	h.mu.Unlock()
}

func (h *lagHook) get(tp keel.TopicPartition) (keel.Lag, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.last[tp]
	return l, ok
}

// produceSpread writes per[i] records to partition i of topic and
// returns each partition's end offset.
func produceSpread(t *testing.T, ctx context.Context, c *keel.Client, topic string, per []int) map[keel.TopicPartition]int64 {
	t.Helper()
	p := newProducer(t, c, keel.ManualPartitioner())
	ends := map[keel.TopicPartition]int64{}
	for part, n := range per {
		for i := range n {
			d, err := p.Send(ctx, &keel.Message{Topic: topic, Partition: int32(part), Value: []byte(fmt.Sprint(i))})
			if err != nil {
				t.Fatal(err)
			}
			ends[keel.TopicPartition{Topic: topic, Partition: d.Partition}] = d.Offset + 1
		}
	}
	return ends
}

// waitLag waits until ok holds for the hook's last Lag of every
// partition of ends, and fails with what it saw when ctx ends.
func waitLag(t *testing.T, ctx context.Context, h *lagHook, ends map[keel.TopicPartition]int64, ok func(tp keel.TopicPartition, l keel.Lag) bool) {
	t.Helper()
	for {
		all := true
		for tp := range ends {
			if l, seen := h.get(tp); !seen || !ok(tp, l) {
				all = false
			}
		}
		if all {
			return
		}
		select {
		case <-ctx.Done():
			h.mu.Lock()
			defer h.mu.Unlock()
			t.Fatalf("lag hook never matched; last seen %+v (ends %v)", h.last, ends)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// adminLagOf returns admin.Lag's rows of group by partition once every
// partition of ends has a committed offset.
func adminLagOf(t *testing.T, ctx context.Context, a *admin.Admin, group string, ends map[keel.TopicPartition]int64) map[keel.TopicPartition]admin.PartitionLag {
	t.Helper()
	for {
		rows, err := a.Lag(ctx, group)
		out := map[keel.TopicPartition]admin.PartitionLag{}
		for _, r := range rows {
			out[keel.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r
		}
		done := err == nil
		for tp := range ends {
			if r, ok := out[tp]; !ok || r.NoCommit {
				done = false
			}
		}
		if done {
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("admin.Lag of %q: rows %+v, err %v", group, rows, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestLagHookMatchesAdminLagPoll: a GroupPoller marks the first 5 records
// of each partition and commits; the LagHook's CommittedLag then equals
// what admin.Lag computes (end - 5), its Lag is the same (the processed
// position is the marked one), and Stats agree number for number.
func TestLagHookMatchesAdminLagPoll(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("lagpoll", 3))
	h := &lagHook{last: map[keel.TopicPartition]keel.Lag{}}
	c := newClient(t, cl, keel.WithHooks(h))
	ctx := testCtx(t, 60*time.Second)
	ends := produceSpread(t, ctx, c, "lagpoll", []int{12, 7, 20})
	total := 12 + 7 + 20
	g, err := keel.NewGroupPoller(c, "lagpoll-g", []string{"lagpoll"}, keel.ResetOffset(keel.ResetEarliest), keel.AutoCommitInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	got := 0
	for got < total {
		msgs, err := g.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += len(msgs)
		for _, m := range msgs {
			if m.Offset < 5 {
				if err := g.MarkProcessed(m); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := g.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rows := adminLagOf(t, ctx, newAdmin(t, c), "lagpoll-g", ends)
	for tp, end := range ends {
		if rows[tp].Lag != end-5 || rows[tp].Committed != 5 {
			t.Fatalf("admin lag of %v = %+v, want committed 5, lag %d", tp, rows[tp], end-5)
		}
	}
	waitLag(t, ctx, h, ends, func(tp keel.TopicPartition, l keel.Lag) bool {
		return l.CommittedLag == rows[tp].Lag && l.Lag == rows[tp].Lag && l.HighWatermark == ends[tp] &&
			l.Committed == 5 && l.Position == 5 && l.Group == "lagpoll-g"
	})
	s := g.Stats()
	if len(s.Partitions) != 3 {
		t.Fatalf("Stats partitions %+v", s.Partitions)
	}
	var sum int64
	for _, p := range s.Partitions {
		end := ends[p.TopicPartition]
		if p.HighWatermark != end || p.Position != 5 || p.Committed != 5 || p.Lag != end-5 || p.CommittedLag != end-5 || p.FetchState != "fetching" {
			t.Fatalf("Stats of %v = %+v, want hwm %d, position and committed 5", p.TopicPartition, p, end)
		}
		sum += p.Lag
	}
	if s.Lag != sum || s.Group != "lagpoll-g" || s.Rebalances < 1 || s.Commits != 1 || s.CommitErrors != 0 || s.Generation < 1 || s.MemberID == "" {
		t.Fatalf("Stats = %+v (lag sum %d)", s, sum)
	}
}

// TestLagHookMatchesAdminLagRun: a GroupConsumer handles every record and
// commits; the LagHook then says lag 0 at the end offset, as admin.Lag
// does, and Stats count the handler calls and the commit.
func TestLagHookMatchesAdminLagRun(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, proto []keel.GroupOption) {
		cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("lagrun", 3))
		h := &lagHook{last: map[keel.TopicPartition]keel.Lag{}}
		c := newClient(t, cl, keel.WithHooks(h))
		ctx := testCtx(t, 60*time.Second)
		ends := produceSpread(t, ctx, c, "lagrun", []int{9, 15, 4})
		total := 9 + 15 + 4
		g, err := keel.NewGroupConsumer(c, "lagrun-g", []string{"lagrun"}, with(proto, keel.ResetOffset(keel.ResetEarliest), keel.AutoCommitInterval(0))...)
		if err != nil {
			t.Fatal(err)
		}
		var handled sync.WaitGroup
		handled.Add(total)
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- g.Run(rctx, keel.HandlerFunc(func(context.Context, *keel.Message) error { handled.Done(); return nil }))
		}()
		defer func() {
			g.Close(context.Background())
			stop()
			<-done
		}()
		handled.Wait()
		// The last handler call returned, but its mark may come just
		// after: commit until every partition's position is its end.
		for {
			if err := g.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			s := g.Stats()
			at := 0
			for _, p := range s.Partitions {
				if p.Committed == ends[p.TopicPartition] {
					at++
				}
			}
			if at == len(ends) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("commits never reached the ends %v: %+v", ends, s)
			case <-time.After(20 * time.Millisecond):
			}
		}
		rows := adminLagOf(t, ctx, newAdmin(t, c), "lagrun-g", ends)
		for tp, end := range ends {
			if rows[tp].Lag != 0 || rows[tp].Committed != end {
				t.Fatalf("admin lag of %v = %+v, want committed %d, lag 0", tp, rows[tp], end)
			}
		}
		waitLag(t, ctx, h, ends, func(tp keel.TopicPartition, l keel.Lag) bool {
			return l.CommittedLag == rows[tp].Lag && l.Lag == 0 && l.HighWatermark == ends[tp] && l.Committed == ends[tp] && l.Position == ends[tp]
		})
		s := g.Stats()
		if s.HandlerCalls != int64(total) || s.HandlerErrors != 0 || s.HandlerTime <= 0 || s.Lag != 0 || s.Rebalances < 1 || s.Commits < 1 {
			t.Fatalf("Stats = %+v, want %d handler calls and lag 0", s, total)
		}
		for _, p := range s.Partitions {
			if end := ends[p.TopicPartition]; p.HighWatermark != end || p.Position != end || p.Lag != 0 || p.CommittedLag != 0 || p.Stalled {
				t.Fatalf("Stats of %v = %+v, want hwm, position and committed %d", p.TopicPartition, p, end)
			}
		}
	})
}

// TestLagHookConsumer: a Consumer without a group reports lag from where
// Poll stands (committed unknown): reading half of a partition leaves lag
// end - half.
func TestLagHookConsumer(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("lagdirect", 1))
	h := &lagHook{last: map[keel.TopicPartition]keel.Lag{}}
	c := newClient(t, cl, keel.WithHooks(h))
	ctx := testCtx(t, 60*time.Second)
	ends := produceSpread(t, ctx, c, "lagdirect", []int{30})
	cons, err := keel.NewConsumer(c)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(context.Background())
	tp := keel.TopicPartition{Topic: "lagdirect", Partition: 0}
	if err := cons.Assign(tp, keel.AtOffset(0)); err != nil {
		t.Fatal(err)
	}
	got := 0
	for got < 30 {
		msgs, err := cons.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got += len(msgs)
	}
	waitLag(t, ctx, h, ends, func(_ keel.TopicPartition, l keel.Lag) bool {
		return l.Group == "" && l.HighWatermark == 30 && l.Position == 30 && l.Lag == 0 && l.Committed == -1 && l.CommittedLag == -1
	})
	if err := cons.Seek(tp, keel.AtOffset(10)); err != nil {
		t.Fatal(err)
	}
	waitLag(t, ctx, h, ends, func(_ keel.TopicPartition, l keel.Lag) bool { return l.Position == 10 && l.Lag == 20 })
	s := cons.Stats()
	if len(s.Partitions) != 1 || s.Partitions[0].HighWatermark != 30 || s.Partitions[0].Committed != -1 {
		t.Fatalf("Stats = %+v", s)
	}
}
