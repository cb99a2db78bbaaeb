package keel

import (
	"context"
	"errors"
	"fmt"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/fetch"
)

// GroupPoller is one member of a consumer group whose records the caller
// polls: the low-level alternative to GroupConsumer's Run. The caller
// processes what Poll returns and calls MarkProcessed for each record
// done; only marked offsets are committed (on an interval, when partitions
// are revoked, on Commit and on Close). Heartbeats never depend on Poll
// being called. With BlockRebalanceOnPoll, a rebalance waits after Poll
// returned records until AllowRebalance (or the rebalance timeout).
type GroupPoller struct {
	core *memberCore
	poll pollPath
}

// pollPath is the Poll path of a GroupPoller: records handed out and not
// yet allowed to rebalance. Its fields are guarded by core.mu.
type pollPath struct {
	core     *memberCore
	held     bool // Poll returned records since the last AllowRebalance
	inRevoke bool // a revocation is waiting for AllowRebalance
	notify   chan struct{}
}

// NewGroupPoller returns a member of group subscribed to topics (and to
// SubscribeRegex, if given) whose records Poll returns. It joins the group
// when Poll is first called. Invalid options give an error matching
// ErrInvalidConfig.
func NewGroupPoller(client *Client, groupID string, topics []string, opts ...GroupOption) (*GroupPoller, error) {
	core, err := newMemberCore(client, groupID, topics, opts, pollKind)
	if err != nil {
		return nil, err
	}
	g := &GroupPoller{core: core}
	g.poll = pollPath{core: core, notify: make(chan struct{})}
	core.path = &g.poll
	return g, nil
}

// Poll returns fetched records, waiting under ctx until there are some. A
// partition that cannot be read (out of range with ResetNone, corrupt
// data) is reported in the error, with the records read before it.
func (g *GroupPoller) Poll(ctx context.Context) ([]*Message, error) {
	if ctx == nil {
		return nil, errs.NilContext("GroupPoller.Poll")
	}
	c := g.core
	if err := c.start(); err != nil {
		return nil, err
	}
	// A member that failed for good (unauthorized, fenced) ends the wait
	// with its error (security.go).
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.memberCtx, cancel)()
	for {
		fs, err := c.fetcher.Poll(pctx, 0)
		if err != nil {
			if ctx.Err() == nil && pctx.Err() != nil { // the member stopped
				if merr := c.failed(); merr != nil {
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
		c.mu.Lock()
		for _, f := range fs {
			ps := c.parts[f.TP]
			if ps == nil || ps.leaving || f.Seq != ps.seq {
				continue // revoked or moved since it was fetched
			}
			ps.noteHandedOutLocked(&f)
			for i := range f.Records {
				m := &f.Records[i]
				if ps.skip != nil && ps.skip.contains(m.Offset, &ps.skipAt) {
					// Processed already by whoever had the partition
					// before (a parallel GroupConsumer): not again.
					ps.marks.mark(m.Offset, m.leaderEpoch)
					continue
				}
				out = append(out, m)
			}
			ps.tail.handed(&f, &ps.marks)
			if f.Err != nil && firstErr == nil {
				firstErr = f.Err
			}
		}
		if len(out) > 0 && c.cfg.blockOnPoll && !g.poll.inRevoke {
			g.poll.held = true
		}
		c.mu.Unlock()
		if len(out) > 0 || firstErr != nil {
			return out, firstErr
		}
	}
}

// MarkProcessed records that msgs were processed, so their offsets may be
// committed. Messages of partitions no longer assigned are ignored. A
// message this consumer never handed out — an offset at or past the
// partition's position, such as a made-up Message, or one handed out
// before a Seek back — is refused: it is not marked (a commit past the end
// of the log would skip records written later), a warning is logged, and
// the error says which; the others are marked.
func (g *GroupPoller) MarkProcessed(msgs ...*Message) error {
	c := g.core
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
		// Under the lock, so that a Seek (which resets the partition's
		// position under it) does not interleave with these marks.
		c.mu.Lock()
		if ps := c.parts[tp]; ps != nil { // else no longer ours: the new owner decides
			pos, known := c.fetcher.Position(tp)
			for _, m := range msgs[i:j] {
				if !known || m.Offset >= pos.At {
					refused = append(refused, fmt.Errorf("offset %d of %v was never handed out by this consumer at its position (%d)", m.Offset, tp, pos.At))
					continue
				}
				ps.marks.mark(m.Offset, m.leaderEpoch)
			}
			ps.tail.catchUp(&ps.marks) // past a marker after the last one
		}
		c.mu.Unlock()
		i = j
	}
	if len(refused) == 0 {
		return nil
	}
	err := &ConfigError{Option: "GroupPoller.MarkProcessed", Problem: errors.Join(refused...).Error(), Fix: "mark only messages returned by Poll"}
	c.client.logger.Warn("keel: MarkProcessed refused messages it never handed out; they are not committed", "group", c.group, "refused", len(refused), "err", err)
	return err
}

// AllowRebalance lets a rebalance held by BlockRebalanceOnPoll proceed.
func (g *GroupPoller) AllowRebalance() {
	c := g.core
	c.mu.Lock()
	defer c.mu.Unlock()
	if g.poll.held {
		g.poll.held = false
		close(g.poll.notify)
		g.poll.notify = make(chan struct{})
	}
}

func (p *pollPath) assignedLocked(*partitionState, fetch.Offset) {}

// revoking holds a revocation while polled records are being handled
// (BlockRebalanceOnPoll), until AllowRebalance or ctx ends. Meanwhile Poll
// hands out nothing of the revoked partitions and does not hold the
// rebalance again.
func (p *pollPath) revoking(ctx context.Context) func() {
	c := p.core
	c.mu.Lock()
	p.inRevoke = true
	c.mu.Unlock()
	for {
		c.mu.Lock()
		held, ch := p.held, p.notify
		c.mu.Unlock()
		if !held {
			return p.revoked
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return p.revoked
		}
	}
}

func (p *pollPath) revoked() {
	p.core.mu.Lock()
	p.inRevoke = false
	p.core.mu.Unlock()
}

// stop has nothing to stop: what Poll handed out is the caller's.
func (p *pollPath) stop([]*partitionState, error, context.Context) []*partitionState { return nil }

func (p *pollPath) closing(context.Context) []error { return nil }

func (p *pollPath) afterStopped(*partitionState, func()) bool { return false }

func (p *pollPath) seek(_ context.Context, ps *partitionState, to int64) error {
	c := p.core
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps.leaving || c.parts[ps.tp] != ps {
		return &errs.Error{Detail: fmt.Sprintf("GroupPoller.Seek: %v was revoked before the seek", ps.tp), Err: ErrNotAssigned}
	}
	c.seekLocked(ps, to)
	return nil
}

// Seek moves tp, a partition this member owns, to start: Poll returns
// records from start on (records fetched before are dropped), and the
// position to commit becomes start (also backwards), so a new owner after
// a rebalance or a crash continues there too. AtEarliest, AtLatest and
// AtTime are resolved to an offset first, under ctx. A partition stopped by
// a fetch error goes on from start. Seek of a partition this member does
// not own returns an error matching ErrNotAssigned.
func (g *GroupPoller) Seek(ctx context.Context, tp TopicPartition, start StartOffset) error {
	return g.core.seek(ctx, "GroupPoller.Seek", tp, start)
}

// Commit commits every processed offset now.
func (g *GroupPoller) Commit(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("GroupPoller.Commit")
	}
	return g.core.commitMarked(ctx, nil)
}

// Assigned returns the partitions this member owns now.
func (g *GroupPoller) Assigned() []TopicPartition { return g.core.assigned() }

// Pause stops fetching partitions, and Poll returning their records, until
// Resume; what was fetched already is kept for after Resume.
func (g *GroupPoller) Pause(tps ...TopicPartition) { g.core.fetcher.Pause(tps...) }

// Resume resumes fetching paused partitions.
func (g *GroupPoller) Resume(tps ...TopicPartition) { g.core.fetcher.Resume(tps...) }

// Stopping is closed when Close begins.
func (g *GroupPoller) Stopping() <-chan struct{} { return g.core.stopping }

// Close stops fetching, commits what was marked processed, leaves the
// group and stops. It returns when ctx ends at the latest, whatever state
// the group is in.
func (g *GroupPoller) Close(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("GroupPoller.Close")
	}
	return g.core.close(ctx, "group poller")
}
