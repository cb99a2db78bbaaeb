package keel

import (
	"context"
	"time"

	"github.com/keel-go/keel/internal/group"
)

// rebalanceCallbacks sets the member's Rebalancing/Rebalanced callbacks
// (they bracket each join and sync round, or each KIP-848 reconciliation
// that moves partitions): Stats count every rebalance that ended, and
// RebalanceHooks are told of its start and end with the partitions the
// assign, revoke and lost callbacks saw meanwhile (c.tally).
func (c *memberCore) rebalanceCallbacks(cb *group.Callbacks) {
	h := c.client.hooks
	hooked := h != nil && len(h.rebalance) > 0
	if hooked {
		cb.Rebalancing = func(protocol string) {
			h.onRebalanceStart(RebalanceStart{Group: c.group, Protocol: protocol})
		}
	}
	cb.Rebalanced = func(protocol string, gen int32, took time.Duration, err error) {
		if err == nil {
			c.counters.rebalances.Add(1)
			c.counters.lastRebalance.Store(int64(took))
		}
		assigned, revoked, lost := c.tally.take()
		if hooked {
			h.onRebalance(Rebalance{Group: c.group, Protocol: protocol, Generation: gen, Assigned: assigned,
				Revoked: revoked, Lost: lost, Duration: took, Err: err})
		}
	}
}

// observedCommit is member.Commit told to CommitHooks.
func (c *memberCore) observedCommit(commit func() error, offsets map[TopicPartition]group.Offset) error {
	h := c.client.hooks
	if h == nil || len(h.commit) == 0 {
		return commit()
	}
	start := time.Now()
	err := commit()
	out := make(map[TopicPartition]int64, len(offsets))
	for tp, o := range offsets {
		out[tp] = o.At
	}
	h.onCommit(Commit{Group: c.group, Offsets: out, Duration: time.Since(start), Err: err})
	return err
}

// observedHandler is callHandler told to HandlerStartHooks (which may
// give the handler a ctx of their own) and HandlerFinishHooks.
func (c *memberCore) observedHandler(hk *hookSet, h Handler, ctx context.Context, m *Message) error {
	tp, offset := TopicPartition{Topic: m.Topic, Partition: m.Partition}, m.Offset
	hctx := ctx
	if len(hk.handlerStart) > 0 {
		hctx = hk.onHandlerStart(ctx, c.group, m)
	}
	start := time.Now()
	err := callHandler(h, hctx, m)
	if len(hk.handlerFinish) > 0 {
		hk.onHandlerFinish(hctx, HandlerFinish{Group: c.group, Topic: tp.Topic, Partition: tp.Partition, Offset: offset, Duration: time.Since(start), Err: err})
	}
	return err
}
