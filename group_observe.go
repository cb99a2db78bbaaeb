package keel

import (
	"context"
	"time"

	"github.com/keel-go/keel/internal/group"
)

// rebalanceCallbacks sets the member's Rebalancing/Rebalanced callbacks to tell
// RebalanceHooks (group.Callbacks.Rebalancing/Rebalanced bracket each
// join and sync round). Assigned/revoked/lost lists are not filled yet.
func (c *memberCore) rebalanceCallbacks(cb *group.Callbacks) {
	h := c.client.hooks
	if h == nil || len(h.rebalance) == 0 {
		return
	}
	cb.Rebalancing = func(protocol string) {
		h.onRebalanceStart(RebalanceStart{Group: c.group, Protocol: protocol})
	}
	cb.Rebalanced = func(protocol string, gen int32, took time.Duration, err error) {
		h.onRebalance(Rebalance{Group: c.group, Protocol: protocol, Generation: gen, Duration: took, Err: err})
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
