package keel

import (
	"context"

	"github.com/keel-go/keel/internal/fetch"
)

// Poll returns fetched records, waiting under ctx until there are some.
// It is the low-level alternative to Run: the caller processes the records
// and calls MarkProcessed for each one done; only marked offsets are
// committed. Heartbeats never depend on Poll being called. With
// BlockRebalanceOnPoll, a rebalance waits after Poll returned records
// until AllowRebalance (or the rebalance timeout).
func (g *GroupConsumer) Poll(ctx context.Context) ([]*Message, error) {
	if err := g.start("Poll"); err != nil {
		return nil, err
	}
	for {
		fs, err := g.fetcher.Poll(ctx, 0)
		if err != nil {
			return nil, err
		}
		var out []*Message
		var firstErr error
		g.mu.Lock()
		for _, f := range fs {
			if ps := g.parts[TopicPartition{f.TP.Topic, f.TP.Partition}]; ps == nil || ps.leaving {
				continue // revoked since it was fetched
			}
			for i := range f.Records {
				out = append(out, toMessage(f.TP, &f.Records[i]))
			}
			if f.Err != nil && firstErr == nil {
				firstErr = f.Err
			}
		}
		if len(out) > 0 && g.cfg.blockOnPoll && !g.revoking {
			g.pollHeld = true
		}
		g.mu.Unlock()
		if len(out) > 0 || firstErr != nil {
			return out, firstErr
		}
	}
}

// MarkProcessed records that msgs were processed, so their offsets may be
// committed. Messages of partitions no longer assigned are ignored.
func (g *GroupConsumer) MarkProcessed(msgs ...*Message) {
	for _, m := range msgs {
		g.mark(m)
	}
}

// AllowRebalance lets a rebalance held by BlockRebalanceOnPoll proceed.
func (g *GroupConsumer) AllowRebalance() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pollHeld {
		g.pollHeld = false
		close(g.pollNotify)
		g.pollNotify = make(chan struct{})
	}
}

// waitPollRelease blocks a revocation while polled records are being
// handled (BlockRebalanceOnPoll), until AllowRebalance or ctx ends.
func (g *GroupConsumer) waitPollRelease(ctx context.Context) {
	for {
		g.mu.Lock()
		held, ch := g.pollHeld, g.pollNotify
		g.mu.Unlock()
		if !held {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// Pause stops fetching partitions until Resume; records already fetched
// are still returned.
func (g *GroupConsumer) Pause(tps ...TopicPartition) { g.fetcher.Pause(toFetchTPs(tps)...) }

// Resume resumes fetching paused partitions.
func (g *GroupConsumer) Resume(tps ...TopicPartition) { g.fetcher.Resume(toFetchTPs(tps)...) }

func toFetchTPs(tps []TopicPartition) []fetch.TP {
	out := make([]fetch.TP, len(tps))
	for i, tp := range tps {
		out[i] = fetch.TP{Topic: tp.Topic, Partition: tp.Partition}
	}
	return out
}
