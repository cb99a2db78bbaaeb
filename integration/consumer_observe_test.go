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
	"github.com/twmb/franz-go/pkg/kmsg"
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
		if s.HandlerCalls != int64(total) || s.HandlerErrors != 0 || s.Lag != 0 || s.Rebalances < 1 || s.Commits < 1 {
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
	cons.Pause(tp)
	s := cons.Stats()
	if len(s.Partitions) != 1 || s.Partitions[0].HighWatermark != 30 || s.Partitions[0].Committed != -1 || !s.Partitions[0].Paused {
		t.Fatalf("Stats = %+v, want hwm 30, committed -1, paused", s)
	}
}

// TestConsumerStallPartition: a Consumer that assigned a partition with
// records and never polls it reports one StallPartition (no group) in
// its Events(), naming where it stands and its lag.
func TestConsumerStallPartition(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("cstall", 1))
	h := newStallHook()
	c := newClient(t, cl, keel.WithHooks(h), keel.StallAfter(500*time.Millisecond))
	ctx := testCtx(t, 60*time.Second)
	produceSpread(t, ctx, c, "cstall", []int{6})
	cons, err := keel.NewConsumer(c)
	if err != nil {
		t.Fatal(err)
	}
	stalls := collectStalls(cons.Events())
	if err := cons.Assign(keel.TopicPartition{Topic: "cstall", Partition: 0}, keel.AtOffset(2)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.seen:
	case <-ctx.Done():
		t.Fatal("no stall for a partition never polled")
	}
	time.Sleep(time.Second) // room for a second report, if there were one
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
	fromEvents, fromHook := <-stalls, h.all()
	if len(fromEvents) != 1 || len(fromHook) != 1 {
		t.Fatalf("stalls in Events() %+v, to the hook %+v; want one each", fromEvents, fromHook)
	}
	if st := fromEvents[0]; st.Kind != keel.StallPartition || st.Group != "" || st.Offset != 2 || st.Lag != 4 {
		t.Fatalf("stall = %+v, want cstall/0 at offset 2 with lag 4, no group", st)
	}
}

// stallHook keeps every Stall the library reported.
type stallHook struct {
	mu     sync.Mutex
	stalls []keel.Stall
	seen   chan struct{} // closed at the first
}

func newStallHook() *stallHook { return &stallHook{seen: make(chan struct{})} }

func (h *stallHook) OnStall(s keel.Stall) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stalls = append(h.stalls, s)
	if len(h.stalls) == 1 {
		close(h.seen)
	}
}

func (h *stallHook) all() []keel.Stall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]keel.Stall(nil), h.stalls...)
}

// collectStalls reads events until the channel closes (Close) and returns
// the stalls among them.
func collectStalls(events <-chan keel.Event) <-chan []keel.Stall {
	out := make(chan []keel.Stall, 1)
	go func() {
		var got []keel.Stall
		for ev := range events {
			if s, ok := ev.(keel.Stall); ok {
				got = append(got, s)
			}
		}
		out <- got
	}()
	return out
}

// TestStallHandlerReportedOnce: with StallAfter(500ms), a handler that
// runs 2 s on one record is reported exactly once, in Events() and to the
// StallHook, naming its partition and offset and a duration of at least
// StallAfter; Stats mark the partition stalled while it runs. A fast
// handler on the same setup produces no stall at all.
func TestStallHandlerReportedOnce(t *testing.T) {
	for _, slow := range []bool{true, false} {
		name := "fast"
		if slow {
			name = "slow"
		}
		t.Run(name, func(t *testing.T) {
			cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("stall", 1))
			h := newStallHook()
			c := newClient(t, cl, keel.WithHooks(h), keel.StallAfter(500*time.Millisecond))
			ctx := testCtx(t, 60*time.Second)
			n := 1
			if !slow {
				n = 50
			}
			produceSpread(t, ctx, c, "stall", []int{n})
			g, err := keel.NewGroupConsumer(c, "stall-g", []string{"stall"}, keel.ResetOffset(keel.ResetEarliest))
			if err != nil {
				t.Fatal(err)
			}
			stalls := collectStalls(g.Events())
			checked := make(chan struct{})
			var handled sync.WaitGroup
			handled.Add(n)
			rctx, stop := context.WithCancel(ctx)
			defer stop()
			done := make(chan error, 1)
			go func() {
				done <- g.Run(rctx, keel.HandlerFunc(func(hctx context.Context, m *keel.Message) error {
					defer handled.Done()
					if !slow {
						return nil
					}
					// 2 s at least, and until the test looked at Stats
					// during the stall.
					select {
					case <-time.After(2 * time.Second):
					case <-hctx.Done():
						return hctx.Err()
					}
					select {
					case <-checked:
					case <-hctx.Done():
						return hctx.Err()
					}
					return nil
				}))
			}()
			if slow {
				select {
				case <-h.seen:
				case <-ctx.Done():
					t.Fatal("no stall reported for a 2 s handler with StallAfter(500ms)")
				}
				s := g.Stats()
				if len(s.Partitions) != 1 || !s.Partitions[0].Stalled {
					t.Errorf("Stats during the stall: %+v, want the partition stalled", s.Partitions)
				}
				close(checked)
			}
			handled.Wait()
			// handled.Done runs inside the call: the last may not have
			// returned yet.
			waitFor(t, ctx, "every call to return", func() bool { return g.Stats().HandlerCalls == int64(n) })
			if s := g.Stats(); s.HandlerCalls != int64(n) || (slow && s.HandlerTime < time.Second) {
				// The 2 s call is sampled every 100 ms: at most a tick short.
				t.Errorf("Stats after the handler: %d calls, %v in handlers; want %d calls (and >= 1s when slow)", s.HandlerCalls, s.HandlerTime, n)
			}
			// Give a second report, if there were one, time to come:
			// three stall ticks past the end of the handler.
			time.Sleep(time.Second)
			if err := g.Close(ctx); err != nil {
				t.Fatal(err)
			}
			stop()
			<-done
			fromEvents := <-stalls
			fromHook := h.all()
			want := 0
			if slow {
				want = 1
			}
			if len(fromEvents) != want || len(fromHook) != want {
				t.Fatalf("stalls in Events() %+v, to the hook %+v; want %d each", fromEvents, fromHook, want)
			}
			if !slow {
				return
			}
			for _, st := range []keel.Stall{fromEvents[0], fromHook[0]} {
				if st.Kind != keel.StallHandler || st.Group != "stall-g" || st.Topic != "stall" || st.Partition != 0 || st.Offset != 0 || st.For < 500*time.Millisecond || st.Lag != 1 {
					t.Fatalf("stall = %+v (%v), want handler on stall/0 at offset 0 for >= 500ms with lag 1", st, st)
				}
			}
		})
	}
}

// TestStallPartitionReportedOnce: a GroupPoller that polls records and
// marks none leaves its partition's position still with lag: one
// StallPartition naming the position (0) and the lag. Marking everything
// ends it; nothing more is reported.
func TestStallPartitionReportedOnce(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("pstall", 1))
	h := newStallHook()
	c := newClient(t, cl, keel.WithHooks(h), keel.StallAfter(500*time.Millisecond))
	ctx := testCtx(t, 60*time.Second)
	produceSpread(t, ctx, c, "pstall", []int{8})
	g, err := keel.NewGroupPoller(c, "pstall-g", []string{"pstall"}, keel.ResetOffset(keel.ResetEarliest))
	if err != nil {
		t.Fatal(err)
	}
	stalls := collectStalls(g.Events())
	var msgs []*keel.Message
	for len(msgs) < 8 {
		got, err := g.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, got...)
	}
	select {
	case <-h.seen:
	case <-ctx.Done():
		t.Fatal("no stall reported for a partition whose records are never marked")
	}
	if err := g.MarkProcessed(msgs...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	fromEvents, fromHook := <-stalls, h.all()
	if len(fromEvents) != 1 || len(fromHook) != 1 {
		t.Fatalf("stalls in Events() %+v, to the hook %+v; want one each", fromEvents, fromHook)
	}
	if st := fromHook[0]; st.Kind != keel.StallPartition || st.Offset != 0 || st.Lag != 8 || st.For < 500*time.Millisecond || st.Partition != 0 {
		t.Fatalf("stall = %+v, want partition pstall/0 at offset 0 with lag 8", st)
	}
}

// rebalanceLists keeps the partition lists of every Rebalance told.
type rebalanceLists struct {
	mu                      sync.Mutex
	rebalances              int
	assigned, revoked, lost []keel.TopicPartition
}

func (h *rebalanceLists) OnRebalanceStart(keel.RebalanceStart) {}
func (h *rebalanceLists) OnRebalance(r keel.Rebalance) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rebalances++
	h.assigned = append(h.assigned, r.Assigned...)
	h.revoked = append(h.revoked, r.Revoked...)
	h.lost = append(h.lost, r.Lost...)
}

// owns returns what the lists say the member owns now (assigned minus
// revoked and lost), and whether they are consistent: nothing assigned
// twice without leaving in between, nothing leaving that was not owned.
func (h *rebalanceLists) owns() (map[keel.TopicPartition]bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Order within the lists is by rebalance; replaying all assigned
	// then all removed is enough here, where each partition moves at
	// most once each way.
	own := map[keel.TopicPartition]int{}
	for _, tp := range h.assigned {
		own[tp]++
	}
	for _, tp := range append(append([]keel.TopicPartition{}, h.revoked...), h.lost...) {
		own[tp]--
	}
	out := map[keel.TopicPartition]bool{}
	for tp, n := range own {
		switch {
		case n == 1:
			out[tp] = true
		case n != 0:
			return nil, fmt.Errorf("%v assigned-minus-removed %d times (assigned %v, revoked %v, lost %v)", tp, n, h.assigned, h.revoked, h.lost)
		}
	}
	return out, nil
}

func sameSet(a map[keel.TopicPartition]bool, b []keel.TopicPartition) bool {
	if len(a) != len(b) {
		return false
	}
	for _, tp := range b {
		if !a[tp] {
			return false
		}
	}
	return true
}

// TestRebalanceHookLists: the Rebalance hook's Assigned and Revoked lists
// follow the partitions. A joins alone (assigned all four); B joins (A's
// lists revoke what B's lists assign, and each member's lists add up to
// what it owns); B leaves (A is assigned them back). Under both
// protocols.
func TestRebalanceHookLists(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, proto []keel.GroupOption) {
		cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("rbl", 4))
		ctx := testCtx(t, 90*time.Second)
		member := func(h *rebalanceLists) (*keel.GroupConsumer, func()) {
			c := newClient(t, cl, keel.WithHooks(h))
			g, err := keel.NewGroupConsumer(c, "rbl-g", []string{"rbl"}, with(proto, keel.ResetOffset(keel.ResetEarliest))...)
			if err != nil {
				t.Fatal(err)
			}
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- g.Run(rctx, keel.HandlerFunc(func(context.Context, *keel.Message) error { return nil }))
			}()
			return g, func() {
				if err := g.Close(ctx); err != nil {
					t.Error(err)
				}
				stop()
				<-done
			}
		}
		// settled waits until each member's lists say it owns what
		// Assigned says, with the sizes wanted.
		settled := func(what string, gs []*keel.GroupConsumer, hs []*rebalanceLists, sizes []int) {
			t.Helper()
			for {
				ok := true
				var state []string
				for i, g := range gs {
					own, err := hs[i].owns()
					if err != nil {
						t.Fatal(err)
					}
					as := g.Assigned()
					state = append(state, fmt.Sprintf("member %d: Assigned %v, lists %v", i, as, own))
					if len(as) != sizes[i] || !sameSet(own, as) {
						ok = false
					}
				}
				if ok {
					return
				}
				select {
				case <-ctx.Done():
					t.Fatalf("%s: never settled: %v", what, state)
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
		ha, hb := &rebalanceLists{}, &rebalanceLists{}
		a, closeA := member(ha)
		defer closeA()
		settled("A alone", []*keel.GroupConsumer{a}, []*rebalanceLists{ha}, []int{4})
		b, closeB := member(hb)
		settled("A and B", []*keel.GroupConsumer{a, b}, []*rebalanceLists{ha, hb}, []int{2, 2})
		ha.mu.Lock()
		revoked := append([]keel.TopicPartition(nil), ha.revoked...)
		ha.mu.Unlock()
		if len(revoked) != 2 || !sameSet(map[keel.TopicPartition]bool{revoked[0]: true, revoked[1]: true}, b.Assigned()) {
			t.Fatalf("A revoked %v, B owns %v", revoked, b.Assigned())
		}
		closeB()
		settled("A after B left", []*keel.GroupConsumer{a}, []*rebalanceLists{ha}, []int{4})
		if s := a.Stats(); s.Rebalances < 3 || s.LastRebalance <= 0 {
			t.Fatalf("A's Stats after three rebalances: %+v", s)
		}
	})
}

// TestRebalanceHookListsLost: a member fenced by its coordinator
// (ILLEGAL_GENERATION to a classic heartbeat, FENCED_MEMBER_EPOCH to a
// KIP-848 one) loses its partitions and gets them back: the Rebalance
// that follows lists them Lost, and Assigned again. Under both protocols.
func TestRebalanceHookListsLost(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, proto []keel.GroupOption) {
		cl := groupCluster(t, 4)
		ctx := testCtx(t, 90*time.Second)
		h := &rebalanceLists{}
		m := startMember(t, newClient(t, cl, keel.WithHooks(h)), "rbl-lost", func(context.Context, *keel.Message) error { return nil }, fastGroup(proto...)...)
		waitFor(t, ctx, "the four partitions", func() bool { return len(m.g.Assigned()) == 4 })
		if len(proto) > 0 {
			cl.FailRequests(kmsg.ConsumerGroupHeartbeat, 110 /* FENCED_MEMBER_EPOCH */, 1, keeltest.OnGroup("rbl-lost"))
		} else {
			cl.FailRequests(kmsg.Heartbeat, 22 /* ILLEGAL_GENERATION */, 1, keeltest.OnGroup("rbl-lost"))
		}
		waitFor(t, ctx, "the partitions lost and assigned again", func() bool {
			own, err := h.owns()
			if err != nil {
				t.Fatal(err)
			}
			h.mu.Lock()
			lost := len(h.lost)
			h.mu.Unlock()
			return lost == 4 && len(own) == 4 && sameSet(own, m.g.Assigned())
		})
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.assigned) != 8 || len(h.revoked) != 0 {
			t.Fatalf("assigned %v, revoked %v, lost %v: want the four assigned twice, lost once, none revoked", h.assigned, h.revoked, h.lost)
		}
	})
}
