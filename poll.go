package keel

import (
	"context"
	"errors"
	"fmt"

	"github.com/keel-go/keel/internal/errs"
)

// Poll returns fetched records, waiting under ctx until there are some.
// It is the low-level alternative to Run: the caller processes the records
// and calls MarkProcessed for each one done; only marked offsets are
// committed. Heartbeats never depend on Poll being called. With
// BlockRebalanceOnPoll, a rebalance waits after Poll returned records
// until AllowRebalance (or the rebalance timeout).
func (g *GroupConsumer) Poll(ctx context.Context) ([]*Message, error) {
	if ctx == nil {
		return nil, errs.NilContext("GroupConsumer.Poll")
	}
	if err := g.start("Poll"); err != nil {
		return nil, err
	}
	// A member that failed for good (unauthorized, fenced) ends the wait
	// with its error (security.go).
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(g.memberCtx, cancel)()
	for {
		fs, err := g.fetcher.Poll(pctx, 0)
		if err != nil {
			if ctx.Err() == nil && pctx.Err() != nil { // the member stopped
				g.mu.Lock()
				merr := g.memberErr
				g.mu.Unlock()
				if merr != nil {
					return nil, merr
				}
				pctx = ctx // stopped by Close: the fetcher answers for itself
				continue
			}
			return nil, err
		}
		n := 0
		for _, f := range fs {
			n += len(f.Records)
		}
		var out []*Message
		if n > 0 {
			out = make([]*Message, 0, n)
		}
		var firstErr error
		g.mu.Lock()
		for _, f := range fs {
			if ps := g.parts[f.TP]; ps == nil || ps.leaving {
				continue // revoked since it was fetched
			}
			for i := range f.Records {
				out = append(out, &f.Records[i])
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
// committed. Messages of partitions no longer assigned are ignored. A
// message this consumer never handed out — an offset at or past the
// partition's position, such as a made-up Message — is refused: it is not
// marked (a commit past the end of the log would skip records written
// later), a warning is logged, and the error says which; the others are
// marked.
func (g *GroupConsumer) MarkProcessed(msgs ...*Message) error {
	var refused []error
	for i := 0; i < len(msgs); {
		m := msgs[i]
		if m == nil {
			i++
			continue
		}
		// Polled messages come in runs of one partition: look it up,
		// and its position, once per run.
		j := i + 1
		for j < len(msgs) && msgs[j] != nil && msgs[j].Partition == m.Partition && msgs[j].Topic == m.Topic {
			j++
		}
		tp := TopicPartition{Topic: m.Topic, Partition: m.Partition}
		g.mu.Lock()
		ps := g.parts[tp]
		g.mu.Unlock()
		if ps == nil {
			i = j
			continue // no longer ours: the new owner decides
		}
		pos, known := g.fetcher.Position(tp)
		for _, m := range msgs[i:j] {
			if !known || m.Offset >= pos.At {
				refused = append(refused, fmt.Errorf("offset %d of %v was never handed out by this consumer (its position is %d)", m.Offset, tp, pos.At))
				continue
			}
			ps.marks.mark(m.Offset, m.leaderEpoch)
		}
		i = j
	}
	if len(refused) == 0 {
		return nil
	}
	err := &ConfigError{Option: "GroupConsumer.MarkProcessed", Problem: errors.Join(refused...).Error(), Fix: "mark only messages returned by Poll"}
	g.client.logger.Warn("keel: MarkProcessed refused messages it never handed out; they are not committed", "group", g.group, "refused", len(refused), "err", err)
	return err
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
// are still returned (Poll) or handled (Run). In Run mode a handler may
// pause its own partition while it waits (the retry package does), and
// the worker's flow control never resumes a partition paused here.
func (g *GroupConsumer) Pause(tps ...TopicPartition) { g.setPaused(tps, true) }

// Resume resumes fetching paused partitions. In Run mode a partition
// whose worker's queue is still full stays paused until it drains.
func (g *GroupConsumer) Resume(tps ...TopicPartition) { g.setPaused(tps, false) }

// setPaused routes Pause and Resume of partitions that have a worker
// through it, so that the user's pause and the worker's flow control (see
// worker.push) do not undo each other: fetching resumes only when neither
// wants it paused. Without this, a Resume could unpause a partition whose
// worker queue is full, and records would pile up without bound.
func (g *GroupConsumer) setPaused(tps []TopicPartition, paused bool) {
	var direct []TopicPartition
	var workers []*worker
	g.mu.Lock()
	for _, tp := range tps {
		if ps := g.parts[tp]; ps != nil && ps.w != nil {
			workers = append(workers, ps.w)
		} else {
			direct = append(direct, tp)
		}
	}
	g.mu.Unlock()
	for _, w := range workers {
		w.setUserPaused(paused)
	}
	if len(direct) == 0 {
		return
	}
	if paused {
		g.fetcher.Pause(direct...)
	} else {
		g.fetcher.Resume(direct...)
	}
}

// Stopping is closed when Close begins. Close lets handlers finish the
// record they are on; a handler that is only waiting (for a retry-after,
// say) can instead give its record up at once by returning an error
// matching ErrConsumerClosed: the record stays unprocessed (not committed)
// and no handler error is reported.
func (g *GroupConsumer) Stopping() <-chan struct{} { return g.stopping }
