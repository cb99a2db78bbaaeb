package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// The consumer side of the tour.
const (
	demoHandleTime = 20 * time.Millisecond   // each order's handling
	demoSlowTime   = 2500 * time.Millisecond // the one slow order's
	demoSlowOffset = 10
)

// demoSlowTP is the partition with the slow order: the highest-numbered
// one, because the sticky assignor trims a member over its quota from the
// top (it keeps its lowest partitions), so this is one that moves when
// the third member joins, however the first two split the six.
var demoSlowTP = keel.TopicPartition{Topic: demoTopic, Partition: demoPartitions - 1}

// demoConsumed is what sections 3 and 4 consumed.
type demoConsumed struct {
	unique, duplicates int
	spans              map[int32][]demoSpan
}

// demoSpan is a run of offsets of one partition processed by one member.
type demoSpan struct {
	member   string
	from, to int64
}

// processedBy lists who processed a partition: "member-2 0–10, member-3 11–97".
func (c *demoConsumed) processedBy(part int32) string {
	var parts []string
	for _, s := range c.spans[part] {
		parts = append(parts, fmt.Sprintf("%s %d–%d", s.member, s.from, s.to))
	}
	if len(parts) == 0 {
		return "nobody (empty)"
	}
	return strings.Join(parts, ", ")
}

// demoGroup runs the members of the tour's group and keeps count of what
// their handlers processed.
type demoGroup struct {
	ctx     context.Context // the tour's: bounds the slow handler too
	o       *demoOut
	cluster *keeltest.Cluster
	gate    chan struct{} // closed when the first two members have settled

	slowOnce    sync.Once
	slowStarted chan struct{}

	mu         sync.Mutex
	counts     map[keel.TopicPartition]map[int64]int
	unique     int
	duplicates int
	spans      map[int32][]demoSpan
	newcomer   string // whose first record per partition is shown
	firstShown map[keel.TopicPartition]bool
	members    []*demoMember
}

type demoMember struct {
	name   string
	client *keel.Client
	g      *keel.GroupConsumer
	done   chan error // Run's result
}

// demoConsume shows sections 3 and 4.
func demoConsume(ctx context.Context, o *demoOut, cluster *keeltest.Cluster, produced *demoProduced) (*demoConsumed, error) {
	dg := &demoGroup{
		ctx: ctx, o: o, cluster: cluster,
		gate:        make(chan struct{}),
		slowStarted: make(chan struct{}),
		counts:      make(map[keel.TopicPartition]map[int64]int),
		spans:       make(map[int32][]demoSpan),
		firstShown:  make(map[keel.TopicPartition]bool),
	}
	defer dg.closeAll() // on early return; the normal path closes first

	o.heading("3. A consumer group %q of two members", demoGroupID)
	o.say("GroupConsumer.Run gives each assigned partition its own worker; a handler")
	o.say("takes %v per order. OnAssigned/OnRevoked are printed as they are called.", demoHandleTime)
	o.say("The assignor is cooperative-sticky, keel's default.")
	o.line("")
	o.restart()
	m1, err := dg.start(ctx, "member-1")
	if err != nil {
		return nil, err
	}
	m2, err := dg.start(ctx, "member-2")
	if err != nil {
		return nil, err
	}
	// Handlers wait at the gate until the two have split the partitions,
	// so the tour starts from a settled group.
	if err := demoWait(ctx, "the first two members to share the partitions", func() bool {
		a, b := len(m1.g.Assigned()), len(m2.g.Assigned())
		return a+b == demoPartitions && a > 0 && b > 0 && a-b <= 1 && b-a <= 1
	}); err != nil {
		return nil, err
	}
	o.say("settled: member-1 has %s; member-2 has %s", demoTPs(m1.g.Assigned()), demoTPs(m2.g.Assigned()))
	close(dg.gate)

	o.heading("4. member-3 joins mid-stream; a slow handler finishes before its partition moves")
	o.say("The order at offset %d of %s/%d takes %v. member-3 joins while it runs. Only", demoSlowOffset, demoSlowTP.Topic, demoSlowTP.Partition, demoSlowTime)
	o.say("the partitions that move are revoked; the others never stop. The revoked")
	o.say("handler's ctx is cancelled (cause ErrRevoked), and keel waits for it to")
	o.say("return and commits before the partition goes to member-3. Moved partitions")
	o.say("reach member-3 in one follow-up rebalance, once every revoking member is done.")
	o.line("")
	o.restart()
	select {
	case <-dg.slowStarted:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the slow order to start: %w", ctx.Err())
	}
	dg.mu.Lock()
	dg.newcomer = "member-3"
	dg.mu.Unlock()
	o.at("member-3", "joins the group")
	m3, err := dg.start(ctx, "member-3")
	if err != nil {
		return nil, err
	}
	if err := demoWait(ctx, "every order to be processed", func() bool {
		dg.mu.Lock()
		done := dg.unique >= produced.delivered
		dg.mu.Unlock()
		return done && len(m3.g.Assigned()) > 0
	}); err != nil {
		return nil, err
	}
	o.at("", "all %d orders processed; closing the members (each commits, then leaves)", produced.delivered)
	if err := dg.closeAll(); err != nil {
		return nil, err
	}

	dg.mu.Lock()
	defer dg.mu.Unlock()
	return &demoConsumed{unique: dg.unique, duplicates: dg.duplicates, spans: dg.spans}, nil
}

// start makes a member with its own client, as if it were its own process,
// and runs it.
func (dg *demoGroup) start(ctx context.Context, name string) (*demoMember, error) {
	client, err := keel.NewClient(keel.SeedBrokers(dg.cluster.Addr()), keel.ClientID(name))
	if err != nil {
		return nil, err
	}
	m := &demoMember{name: name, client: client, done: make(chan error, 1)}
	g, err := keel.NewGroupConsumer(client, demoGroupID, []string{demoTopic},
		keel.SessionTimeout(6*time.Second), keel.HeartbeatInterval(200*time.Millisecond),
		keel.RebalanceTimeout(15*time.Second), keel.ResetOffset(keel.ResetEarliest),
		keel.AutoCommitInterval(500*time.Millisecond), keel.FetchMaxWait(100*time.Millisecond),
		keel.OnAssigned(func(tps []keel.TopicPartition) { dg.o.at(name, "OnAssigned  %s", demoTPs(tps)) }),
		keel.OnRevoked(func(tps []keel.TopicPartition) { dg.revoked(m, tps) }),
		keel.OnLost(func(tps []keel.TopicPartition) { dg.o.at(name, "OnLost      %s (not committed)", demoTPs(tps)) }),
	)
	if err != nil {
		demoCloseClient(client)
		return nil, err
	}
	m.g = g
	dg.mu.Lock()
	dg.members = append(dg.members, m)
	dg.mu.Unlock()
	go func() { m.done <- g.Run(ctx, dg.handler(name)) }()
	return m, nil
}

// revoked prints an OnRevoked call: what went, what the member keeps, and
// for the slow partition the offset committed before it was released.
func (dg *demoGroup) revoked(m *demoMember, tps []keel.TopicPartition) {
	if len(tps) == 0 {
		return
	}
	line := "OnRevoked   " + demoTPs(tps)
	if slices.Contains(tps, demoSlowTP) {
		line += fmt.Sprintf(" — handler returned, committed offset %s, partition released", dg.committed(demoSlowTP))
	}
	if kept := m.g.Assigned(); len(kept) > 0 {
		line += "; keeps " + demoTPs(kept)
	}
	dg.o.at(m.name, "%s", line)
}

// committed reads the group's committed offset of tp from the broker.
func (dg *demoGroup) committed(tp keel.TopicPartition) string {
	if off, ok := demoGroupOffsets(dg.ctx, dg.cluster)[tp.Partition]; ok && tp.Topic == demoTopic {
		return fmt.Sprint(off)
	}
	return "none"
}

// handler processes one order: a short wait, or the slow order's long one.
func (dg *demoGroup) handler(name string) keel.HandlerFunc {
	return func(ctx context.Context, m *keel.Message) error {
		select {
		case <-dg.gate:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		tp := keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}
		dg.showFirst(name, tp, m.Offset)
		slow := false
		if tp == demoSlowTP && m.Offset == demoSlowOffset {
			dg.slowOnce.Do(func() { slow = true })
		}
		if slow {
			if err := dg.slowOrder(ctx, name, m); err != nil {
				return err
			}
		} else {
			t := time.NewTimer(demoHandleTime)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				// Revoked or closing: the order stays unprocessed and
				// uncommitted, for whoever owns the partition next.
				return context.Cause(ctx)
			}
		}
		dg.processed(name, tp, m.Offset)
		return nil
	}
}

// slowOrder is a handler that must finish what it started: it notices
// its ctx being cancelled, says so, and completes the order anyway.
func (dg *demoGroup) slowOrder(ctx context.Context, name string, m *keel.Message) error {
	where := fmt.Sprintf("%s/%d", m.Topic, m.Partition)
	dg.o.at(name, "handler on %s starts offset %d, which takes %v", where, m.Offset, demoSlowTime)
	close(dg.slowStarted)
	done := time.NewTimer(demoSlowTime)
	defer done.Stop()
	select {
	case <-ctx.Done():
		dg.o.at(name, "handler on %s: ctx cancelled (%v); still running… it finishes the order first", where, context.Cause(ctx))
		select {
		case <-done.C:
		case <-dg.ctx.Done():
			return dg.ctx.Err()
		}
	case <-done.C:
	case <-dg.ctx.Done():
		return dg.ctx.Err()
	}
	dg.o.at(name, "handler on %s finished offset %d", where, m.Offset)
	return nil
}

// showFirst prints the newcomer's first record of each partition it got,
// and where the previous owner stopped.
func (dg *demoGroup) showFirst(name string, tp keel.TopicPartition, offset int64) {
	dg.mu.Lock()
	if name != dg.newcomer || dg.firstShown[tp] {
		dg.mu.Unlock()
		return
	}
	dg.firstShown[tp] = true
	before := "nobody processed it before"
	if spans := dg.spans[tp.Partition]; len(spans) > 0 {
		last := spans[len(spans)-1]
		before = fmt.Sprintf("%s processed up to %d", last.member, last.to)
	}
	dg.mu.Unlock()
	dg.o.at(name, "first order on %s/%d: offset %d (%s)", tp.Topic, tp.Partition, offset, before)
}

// processed counts a handled order and extends the partition's spans.
func (dg *demoGroup) processed(name string, tp keel.TopicPartition, offset int64) {
	dg.mu.Lock()
	defer dg.mu.Unlock()
	seen := dg.counts[tp]
	if seen == nil {
		seen = make(map[int64]int)
		dg.counts[tp] = seen
	}
	seen[offset]++
	if seen[offset] == 1 {
		dg.unique++
	} else {
		dg.duplicates++
	}
	spans := dg.spans[tp.Partition]
	if n := len(spans); n > 0 && spans[n-1].member == name && offset == spans[n-1].to+1 {
		spans[n-1].to = offset
		return
	}
	dg.spans[tp.Partition] = append(spans, demoSpan{member: name, from: offset, to: offset})
}

// closeAll closes every member at once (each commits what it processed
// and leaves) and their clients. Callbacks stop printing: the rebalances
// of leaving members are not part of the tour.
func (dg *demoGroup) closeAll() error {
	dg.o.silence()
	dg.mu.Lock()
	members := dg.members
	dg.members = nil
	dg.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			if err := m.g.Close(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", m.name, err)
			}
			select {
			case err := <-m.done:
				if err != nil && !errors.Is(err, context.Canceled) && errs[i] == nil {
					errs[i] = fmt.Errorf("%s: %w", m.name, err)
				}
			case <-ctx.Done():
				errs[i] = fmt.Errorf("%s: Run did not return after Close", m.name)
			}
			demoCloseClient(m.client)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// demoWait polls cond until it holds or ctx ends.
func demoWait(ctx context.Context, what string, cond func() bool) error {
	for !cond() {
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
	return nil
}

// demoTPs prints partitions as "orders/0 orders/2".
func demoTPs(tps []keel.TopicPartition) string {
	s := make([]string, len(tps))
	for i, tp := range tps {
		s[i] = fmt.Sprintf("%s/%d", tp.Topic, tp.Partition)
	}
	return strings.Join(s, " ")
}
