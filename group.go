package keel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/fetch"
)

// GroupConsumer is one member of a consumer group that processes records
// with a Handler: Run gives each assigned partition a worker calling the
// handler for its records in order. Only processed offsets are committed:
// on an interval, when partitions are revoked, and on Close. GroupPoller is
// the low-level alternative, where the caller polls.
//
// Heartbeats run in the background whatever the handlers do, so a slow
// handler never gets the member kicked out. When a partition is revoked its
// handler's ctx is cancelled with cause ErrRevoked; the consumer waits for
// the handler to return (up to the rebalance timeout), commits what was
// processed, and only then lets the partition go. With the default
// cooperative-sticky assignor, partitions that stay keep being processed
// throughout a rebalance.
type GroupConsumer struct {
	core *memberCore
	run  runPath
}

// runPath is the Run path of a GroupConsumer: the handler and the
// partitions' workers. Its fields are guarded by core.mu.
type runPath struct {
	core    *memberCore
	handler Handler
	ranOnce bool
	sem     chan struct{} // MaxConcurrency
	wg      sync.WaitGroup
}

// NewGroupConsumer returns a member of group subscribed to topics (and to
// SubscribeRegex, if given) that processes records with Run. It joins the
// group when Run is first called. Invalid options give an error matching
// ErrInvalidConfig.
func NewGroupConsumer(client *Client, groupID string, topics []string, opts ...GroupOption) (*GroupConsumer, error) {
	core, err := newMemberCore(client, groupID, topics, opts, runKind)
	if err != nil {
		return nil, err
	}
	g := &GroupConsumer{core: core}
	g.run.core = core
	if core.cfg.maxConcurrency > 0 {
		g.run.sem = make(chan struct{}, core.cfg.maxConcurrency)
	}
	core.path = &g.run
	return g, nil
}

// runStopWait bounds how long Run, once its ctx ended, waits for handlers
// to return and for the commit of what they processed.
const runStopWait = 3 * time.Second

// Run processes records with h until ctx ends, Close is called, or the
// member fails for good (fenced, unauthorized). Each assigned partition
// has its own worker calling h for its records in order. Run returns nil
// after Close, ctx's error when ctx ended, or the member's error. Run runs
// once per consumer: after it returns, the member keeps its partitions
// (idle) until Close, which commits and leaves the group.
func (g *GroupConsumer) Run(ctx context.Context, h Handler) error {
	if ctx == nil {
		return errs.NilContext("GroupConsumer.Run")
	}
	if h == nil {
		return &ConfigError{Option: "Run", Problem: "nil handler", Fix: "pass a Handler or HandlerFunc"}
	}
	c := g.core
	c.mu.Lock()
	if g.run.ranOnce {
		c.mu.Unlock()
		return errors.New("keel: Run was already called on this consumer; it runs once — Close it and make a new one")
	}
	g.run.ranOnce = true
	g.run.handler = h
	c.mu.Unlock()
	if err := c.start(); err != nil {
		return err
	}
	// Partitions assigned before Run started get their workers now.
	c.mu.Lock()
	for _, ps := range c.parts {
		if ps.w == nil {
			g.run.startWorkerLocked(ps, -1)
		}
	}
	c.mu.Unlock()

	dispatchDone := make(chan struct{})
	dctx, stopDispatch := context.WithCancel(ctx)
	go func() {
		defer close(dispatchDone)
		g.run.dispatch(dctx)
	}()
	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case <-c.stopping:
	case <-c.memberDone:
		err = c.failed()
	}
	stopDispatch()
	<-dispatchDone
	select {
	case <-c.stopping: // Close stops the workers gracefully itself
	default:
		// ctx ended or the member failed: stop every worker now (their
		// handlers' ctx is cancelled; Run waits a few seconds for them)
		// and commit what they finished. The member keeps its partitions
		// until Close, which also waits for handlers still running.
		wctx, cancel := context.WithTimeout(context.Background(), runStopWait)
		g.run.stopAll(ErrConsumerClosed, wctx)
		cancel()
		cctx, cancel := context.WithTimeout(context.Background(), runStopWait)
		c.commitMarked(cctx, nil)
		cancel()
	}
	return err
}

// dispatch moves fetched records to the workers of their partitions.
func (r *runPath) dispatch(ctx context.Context) {
	c := r.core
	for {
		fs, err := c.fetcher.Poll(ctx, 0)
		if err != nil {
			return
		}
		for _, f := range fs {
			c.mu.Lock()
			var w *worker
			if ps := c.parts[f.TP]; ps != nil && !ps.leaving {
				w = ps.w
			}
			c.mu.Unlock()
			if w == nil {
				continue // revoked meanwhile
			}
			w.push(f.Records, int(f.Bytes), f.Err)
		}
	}
}

// assignedLocked starts the worker of a new partition while Run runs.
func (r *runPath) assignedLocked(ps *partitionState, start fetch.Offset) {
	if r.handler != nil {
		r.startWorkerLocked(ps, start.At)
	}
}

func (r *runPath) revoking(context.Context) func() { return func() {} }

// stop cancels the workers of pss with cause and waits for them under ctx.
func (r *runPath) stop(pss []*partitionState, cause error, ctx context.Context) []*partitionState {
	var workers []*worker
	r.core.mu.Lock()
	for _, ps := range pss {
		if ps.w != nil {
			ps.w.cancel(cause)
			workers = append(workers, ps.w)
		}
	}
	r.core.mu.Unlock()
	var stuck []*partitionState
	for _, w := range waitWorkers(ctx, workers) {
		stuck = append(stuck, w.ps)
	}
	return stuck
}

// stopAll cancels every worker with cause and waits for them under ctx;
// it returns those still in a handler when ctx ended.
func (r *runPath) stopAll(cause error, ctx context.Context) []*worker {
	r.core.mu.Lock()
	var workers []*worker
	for _, ps := range r.core.parts {
		if ps.w != nil {
			ps.w.cancel(cause)
			workers = append(workers, ps.w)
		}
	}
	r.core.mu.Unlock()
	return waitWorkers(ctx, workers)
}

// closing lets handlers finish the record they are on (until ctx ends;
// then their ctx is cancelled with ErrConsumerClosed).
func (r *runPath) closing(ctx context.Context) []error {
	var workers []*worker
	r.core.mu.Lock()
	for _, ps := range r.core.parts {
		if ps.w != nil {
			ps.w.stop()
			workers = append(workers, ps.w)
		}
	}
	r.core.mu.Unlock()
	waitWorkers(ctx, workers) // handlers finish their current record, within ctx
	var problems []error
	for _, w := range r.stopAll(ErrConsumerClosed, ctx) {
		problems = append(problems, fmt.Errorf("a handler of %v did not return before ctx ended", w.tp))
	}
	return problems
}

// waitWorkers waits under ctx for workers to return and reports those
// still running when ctx ended.
func waitWorkers(ctx context.Context, workers []*worker) (stuck []*worker) {
	for _, w := range workers {
		select {
		case <-w.done:
		case <-ctx.Done():
		}
	}
	for _, w := range workers {
		select {
		case <-w.done:
		default:
			stuck = append(stuck, w)
		}
	}
	return stuck
}

// Commit commits every processed offset now.
func (g *GroupConsumer) Commit(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("GroupConsumer.Commit")
	}
	return g.core.commitMarked(ctx, nil)
}

// Assigned returns the partitions this member processes now.
func (g *GroupConsumer) Assigned() []TopicPartition { return g.core.assigned() }

// Close stops fetching, lets handlers finish the record they are on (until
// ctx ends; then their ctx is cancelled with ErrConsumerClosed), commits
// what was processed, leaves the group and stops. It returns when ctx ends
// at the latest, whatever state the group is in.
func (g *GroupConsumer) Close(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("GroupConsumer.Close")
	}
	return g.core.close(ctx, "group consumer")
}

// Stopping is closed when Close begins. Close lets handlers finish the
// record they are on; a handler that is only waiting (for a retry-after,
// say) can instead give its record up at once by returning an error
// matching ErrConsumerClosed: the record stays unprocessed (not committed)
// and no handler error is reported.
func (g *GroupConsumer) Stopping() <-chan struct{} { return g.core.stopping }

// Pause stops fetching partitions until Resume; records already fetched
// are still handled. A handler may pause its own partition while it waits
// (the retry package does), and the worker's flow control never resumes a
// partition paused here.
func (g *GroupConsumer) Pause(tps ...TopicPartition) { g.run.setPaused(tps, true) }

// Resume resumes fetching paused partitions. A partition whose worker's
// queue is still full stays paused until it drains.
func (g *GroupConsumer) Resume(tps ...TopicPartition) { g.run.setPaused(tps, false) }

// setPaused routes Pause and Resume of partitions that have a worker
// through it, so that the user's pause and the worker's flow control (see
// worker.push) do not undo each other: fetching resumes only when neither
// wants it paused. Without this, a Resume could unpause a partition whose
// worker queue is full, and records would pile up without bound.
func (r *runPath) setPaused(tps []TopicPartition, paused bool) {
	var direct []TopicPartition
	var workers []*worker
	r.core.mu.Lock()
	for _, tp := range tps {
		if ps := r.core.parts[tp]; ps != nil && ps.w != nil {
			workers = append(workers, ps.w)
		} else {
			direct = append(direct, tp)
		}
	}
	r.core.mu.Unlock()
	for _, w := range workers {
		w.setUserPaused(paused)
	}
	if len(direct) == 0 {
		return
	}
	if paused {
		r.core.fetcher.Pause(direct...)
	} else {
		r.core.fetcher.Resume(direct...)
	}
}
