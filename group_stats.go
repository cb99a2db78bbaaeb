package keel

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-go/keel/internal/fetch"
	"github.com/keel-go/keel/internal/topicpart"
)

// memberCounters are a group member's Stats counters.
type memberCounters struct {
	rebalances    atomic.Int64
	lastRebalance atomic.Int64 // nanoseconds
	commits       atomic.Int64
	commitErrors  atomic.Int64
	handlerErrors atomic.Int64
}

// rebalanceTally collects the partitions that changed hands on this member
// between two ends of a rebalance, for the Rebalance hook's lists: the
// assign, revoke and lost callbacks run inside a rebalance (or, lost,
// before the one that follows), so what they add is the rebalance's.
type rebalanceTally struct {
	mu                      sync.Mutex
	assigned, revoked, lost []TopicPartition
}

func (t *rebalanceTally) add(list *[]TopicPartition, tps []TopicPartition) {
	t.mu.Lock()
	*list = append(*list, tps...)
	t.mu.Unlock()
}

// take returns and forgets what was collected, each list sorted.
func (t *rebalanceTally) take() (assigned, revoked, lost []TopicPartition) {
	t.mu.Lock()
	assigned, revoked, lost = t.assigned, t.revoked, t.lost
	t.assigned, t.revoked, t.lost = nil, nil, nil
	t.mu.Unlock()
	topicpart.Sort(assigned)
	topicpart.Sort(revoked)
	topicpart.Sort(lost)
	return assigned, revoked, lost
}

// handle calls h for m on the Run path, shown in the goroutine's watch
// slot (handler stalls, handler calls and time of Stats) and told to the
// handler hooks. No clock read unless a handler hook is installed
// (BenchmarkHandlerCall).
func (c *memberCore) handle(slot *handlerSlot, h Handler, ctx context.Context, m *Message) error {
	slot.begin(m.Offset)
	var err error
	if hk := c.handlerHooks; hk == nil {
		err = callHandler(h, ctx, m)
	} else {
		err = c.observedHandler(hk, h, ctx, m)
	}
	slot.end()
	if err != nil {
		c.counters.handlerErrors.Add(1)
	}
	return err
}

// noteHandedOutLocked remembers where processing started, once, when the
// start was symbolic (see firstAt). Under core.mu.
func (ps *partitionState) noteHandedOutLocked(f *fetch.FetchOf[Message]) {
	if ps.firstAt < 0 && ps.start < 0 && len(f.Records) > 0 && f.Seq == ps.seq {
		ps.firstAt = f.Records[0].Offset
	}
}

// partitionStats samples the member's partitions (Stalled not filled):
// the fetcher's view (high watermark, state, paused) and the core's
// (processed position, committed offset).
func (c *memberCore) partitionStats() []PartitionStats {
	infos := map[TopicPartition]fetch.PartitionInfo{}
	c.fetcher.Partitions(func(pi fetch.PartitionInfo) { infos[pi.TP] = pi })
	c.mu.Lock()
	out := make([]PartitionStats, 0, len(c.parts))
	for tp, ps := range c.parts {
		if ps.leaving {
			continue
		}
		pi, ok := infos[tp]
		s := PartitionStats{TopicPartition: tp, HighWatermark: -1, Position: -1, Committed: ps.committedAt.Load(), FetchState: "resolving"}
		if ok {
			s.HighWatermark, s.FetchState = pi.HighWatermark, pi.State
			s.Paused = pi.Paused || ps.userPaused
		}
		switch o, marked := ps.marks.position(); {
		case marked:
			s.Position = o.At
		case ps.start >= 0:
			s.Position = ps.start
		case ps.firstAt >= 0:
			s.Position = ps.firstAt
		case ok:
			// Nothing processed yet and the start was symbolic: where
			// fetching is (-1 while it is being resolved).
			s.Position = pi.Position.At
		}
		s.Lag = lagOf(s.HighWatermark, s.Position)
		s.CommittedLag = lagOf(s.HighWatermark, s.Committed)
		out = append(out, s)
	}
	c.mu.Unlock()
	sortPartitionStats(out)
	return out
}

func sortPartitionStats(ps []PartitionStats) {
	slices.SortFunc(ps, func(a, b PartitionStats) int { return topicpart.Compare(a.TopicPartition, b.TopicPartition) })
}

// stats is GroupConsumer.Stats and GroupPoller.Stats.
func (c *memberCore) stats() GroupStats {
	gen, id, _ := c.member.Generation()
	s := GroupStats{
		Group:         c.group,
		MemberID:      id,
		Generation:    gen,
		Rebalances:    c.counters.rebalances.Load(),
		LastRebalance: time.Duration(c.counters.lastRebalance.Load()),
		Commits:       c.counters.commits.Load(),
		CommitErrors:  c.counters.commitErrors.Load(),
		HandlerCalls:  c.watch.handlers.calls(),
		HandlerTime:   time.Duration(c.watch.handlerTime.Load()),
		HandlerErrors: c.counters.handlerErrors.Load(),
		BufferedBytes: c.fetcher.Buffered(),
		Partitions:    c.partitionStats(),
	}
	stalled := c.watch.stalled()
	for i := range s.Partitions {
		p := &s.Partitions[i]
		p.Stalled = stalled[p.TopicPartition]
		if p.Lag > 0 {
			s.Lag += p.Lag
		}
	}
	return s
}

// Stats returns a snapshot of the member: its partitions (high watermark,
// processed position, committed offset, lag, fetch state, paused,
// stalled), rebalances, commits and handler time. It takes the
// consumer's locks for a moment; call it for metrics (every few seconds),
// not per record.
func (g *GroupConsumer) Stats() GroupStats { return g.core.stats() }

// Stats returns a snapshot of the member, as GroupConsumer.Stats; the
// position is what MarkProcessed marked, and handler figures stay zero.
func (g *GroupPoller) Stats() GroupStats { return g.core.stats() }

// Events returns the member's operational events: Stall (see StallAfter)
// and the client's connection events (BrokerConnected, ...). It never
// makes the consumer wait: an event that finds it full is dropped, and
// EventsDropped says how many once there is room. Reading it is optional.
// It is closed by Close.
func (g *GroupConsumer) Events() <-chan Event { return g.core.events.ch }

// Events returns the member's operational events, as
// GroupConsumer.Events.
func (g *GroupPoller) Events() <-chan Event { return g.core.events.ch }
