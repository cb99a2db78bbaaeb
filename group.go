package keel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/fetch"
)

// GroupConsumer is one member of a consumer group that processes records
// with a Handler: Run gives each assigned partition a lane calling the
// handler for its records — one at a time in offset order by default, or
// several at once with Parallel. Only processed offsets are committed: on
// an interval, when partitions are revoked, and on Close; with Parallel,
// the committed offset is the contiguous processed prefix, never past a
// record that has not finished. GroupPoller is the low-level alternative,
// where the caller polls.
//
// Heartbeats run in the background whatever the handlers do, so a slow
// handler never gets the member kicked out. When a partition is revoked its
// handlers' ctx is cancelled with cause ErrRevoked; the consumer waits for
// them to return (up to the rebalance timeout), commits what was
// processed, and only then lets the partition go. With the default
// cooperative-sticky assignor, partitions that stay keep being processed
// throughout a rebalance.
type GroupConsumer struct {
	core *memberCore
	run  runPath
}

// runPath is the Run path of a GroupConsumer: the handler and the
// partitions' lanes. Its fields are guarded by core.mu.
type runPath struct {
	core         *memberCore
	order        Order
	perPartition int
	sem          chan struct{} // MaxConcurrency, or Parallel's total

	running   bool            // a Run is active (or returning)
	handler   Handler         // the active Run's handler; nil between Runs
	runCtx    context.Context // the active Run's, from which lanes' ctx derive
	cancelRun context.CancelCauseFunc
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
	g.run = runPath{core: core, order: core.cfg.order, perPartition: max(core.cfg.perPartition, 1)}
	if n := core.cfg.totalLimit(); n > 0 {
		g.run.sem = make(chan struct{}, n)
	}
	core.path = &g.run
	return g, nil
}

// Order is how the consumer processes a partition's records (see Parallel).
func (g *GroupConsumer) Order() Order { return g.run.order }

// runStopWait bounds how long Run, once its ctx ended, waits for handlers
// to return and for the commit of what they processed.
const runStopWait = 3 * time.Second

// Run processes records with h until ctx ends, Close is called, or the
// member fails for good (fenced, unauthorized). Run returns nil after
// Close, ctx's error when ctx ended, or the member's error.
//
// Handlers get a ctx derived from Run's: it carries ctx's values and ends
// when ctx ends (with its cause), when the record's partition is revoked
// (cause ErrRevoked) or lost (ErrLost), or when Close gives up waiting
// (ErrConsumerClosed).
//
// Run may be called again after it returned: the member keeps its
// partitions meanwhile (fetching stops once the buffer budget is full),
// and the next Run continues each partition after its last processed
// record. A second Run waits, under its ctx, for handlers of the previous
// one that ignored their ctx to return. Run calls do not overlap: one made
// while another runs returns an error at once.
func (g *GroupConsumer) Run(ctx context.Context, h Handler) error {
	if ctx == nil {
		return errs.NilContext("GroupConsumer.Run")
	}
	if h == nil {
		return &ConfigError{Option: "Run", Problem: "nil handler", Fix: "pass a Handler or HandlerFunc"}
	}
	c, r := g.core, &g.run
	c.mu.Lock()
	if r.running {
		c.mu.Unlock()
		return errors.New("keel: GroupConsumer.Run is already running; Run calls do not overlap (call it again after it returned)")
	}
	if c.closed {
		c.mu.Unlock()
		return ErrConsumerClosed
	}
	r.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		r.running = false
		c.mu.Unlock()
	}()
	if err := c.start(); err != nil {
		return err
	}
	if err := r.waitPrevious(ctx); err != nil {
		return err
	}
	runCtx, cancelRun := context.WithCancelCause(ctx)
	if c.eos != nil {
		runCtx = context.WithValue(runCtx, txnProducerKey{}, c.eos.p)
	}
	c.mu.Lock()
	r.handler, r.runCtx, r.cancelRun = h, runCtx, cancelRun
	for _, ps := range c.parts {
		if !ps.leaving {
			r.continueLocked(ps)
		}
	}
	c.mu.Unlock()

	dispatchDone := make(chan struct{})
	dctx, stopDispatch := context.WithCancel(ctx)
	go func() {
		defer close(dispatchDone)
		r.dispatch(dctx)
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
	c.mu.Lock()
	r.handler, r.runCtx = nil, nil // partitions assigned from now on wait for the next Run
	c.mu.Unlock()
	select {
	case <-c.stopping: // Close stops the lanes gracefully itself
	default:
		// ctx ended or the member failed: stop every lane now (their
		// handlers' ctx is cancelled; Run waits a few seconds for them)
		// and commit what they finished. The member keeps its partitions
		// for the next Run or until Close, which also waits for handlers
		// still running.
		cause := context.Cause(ctx)
		if cause == nil && err != nil {
			cause = fmt.Errorf("keel: Run stopped: %w", err)
		} else if cause == nil {
			cause = ErrConsumerClosed
		}
		cancelRun(cause)
		wctx, cancel := context.WithTimeout(context.Background(), runStopWait)
		r.stopLanes(wctx, nil)
		cancel()
		cctx, cancel := context.WithTimeout(context.Background(), runStopWait)
		c.commitMarked(cctx, nil)
		cancel()
	}
	return err
}

// waitPrevious waits under ctx for the lanes of a previous Run whose
// handlers outlived it: a partition's next lane must not start beside one
// still handling its records.
func (r *runPath) waitPrevious(ctx context.Context) error {
	r.core.mu.Lock()
	var lanes []lane
	for _, ps := range r.core.parts {
		if ps.lane != nil {
			lanes = append(lanes, ps.lane)
		}
	}
	r.core.mu.Unlock()
	for _, l := range lanes {
		select {
		case <-l.done():
		case <-ctx.Done():
			return fmt.Errorf("keel: GroupConsumer.Run: handlers of the previous Run have not returned: %w", context.Cause(ctx))
		}
	}
	return nil
}

// continueLocked starts ps's lane for the Run starting now. A partition a
// previous Run processed continues after its last processed record: the
// fetcher has handed out records beyond it to the previous lane, which
// dropped them when it stopped.
func (r *runPath) continueLocked(ps *partitionState) {
	if old := ps.lane; old != nil {
		if at, done, ok := old.resume(); ok {
			ps.seq = r.core.fetcher.Seek(ps.tp, fetch.At(at))
			ps.start, ps.skip = at, done
		}
		ps.lane = nil
	}
	r.startLaneLocked(ps)
}

// startLaneLocked starts ps's lane for the active Run.
func (r *runPath) startLaneLocked(ps *partitionState) {
	var l interface {
		lane
		run()
	}
	if r.order == PartitionOrder {
		l = newWorker(r, ps)
	} else {
		l = newParallelLane(r, ps)
	}
	ps.lane = l
	// The fetcher may still hold the partition paused for a lane before
	// (flow control, a stop); the new lane starts from a clean state.
	if ps.userPaused {
		r.core.fetcher.Pause(ps.tp)
	} else {
		r.core.fetcher.Resume(ps.tp)
	}
	go l.run()
}

// dispatch moves fetched records to the lanes of their partitions.
func (r *runPath) dispatch(ctx context.Context) {
	c := r.core
	for {
		fs, err := c.fetcher.Poll(ctx, 0)
		if err != nil {
			return
		}
		for i := range fs {
			f := &fs[i]
			c.mu.Lock()
			var l lane
			if ps := c.parts[f.TP]; ps != nil && !ps.leaving {
				l = ps.lane
				ps.noteHandedOutLocked(f)
			}
			c.mu.Unlock()
			if l != nil { // nil: revoked meanwhile
				l.push(f)
			}
		}
	}
}

// assignedLocked starts the lane of a new partition while a Run runs.
func (r *runPath) assignedLocked(ps *partitionState, _ fetch.Offset) {
	if r.handler != nil {
		r.startLaneLocked(ps)
	}
}

func (r *runPath) revoking(context.Context) func() { return func() {} }

// lanesOf returns the lanes of pss (of every owned partition when pss is
// nil).
func (r *runPath) lanesOf(pss []*partitionState) ([]lane, []*partitionState) {
	r.core.mu.Lock()
	defer r.core.mu.Unlock()
	if pss == nil {
		for _, ps := range r.core.parts {
			pss = append(pss, ps)
		}
	}
	var lanes []lane
	var of []*partitionState
	for _, ps := range pss {
		if ps.lane != nil {
			lanes = append(lanes, ps.lane)
			of = append(of, ps)
		}
	}
	return lanes, of
}

// stop cancels the lanes of pss with cause and waits for them under ctx.
func (r *runPath) stop(pss []*partitionState, cause error, ctx context.Context) []*partitionState {
	lanes, of := r.lanesOf(pss)
	if r.core.eos != nil && errors.Is(cause, ErrRevoked) {
		// A handler cut off mid-record aborts the whole transaction:
		// let the records being handled finish first (within ctx, the
		// rebalance timeout), then commit them before the release.
		for _, l := range lanes {
			l.stop()
		}
		stuckLanes(ctx, lanes, of)
		r.core.eos.flushOutputs(ctx)
	}
	for _, l := range lanes {
		l.cancel(cause)
	}
	return stuckLanes(ctx, lanes, of)
}

// stopLanes waits under ctx for the lanes of pss (every partition's when
// nil), whose ctx was cancelled, and returns those still running.
func (r *runPath) stopLanes(ctx context.Context, pss []*partitionState) []*partitionState {
	lanes, of := r.lanesOf(pss)
	return stuckLanes(ctx, lanes, of)
}

// stuckLanes waits under ctx for lanes to exit and returns the partitions
// (of, in the same order) of those still running when ctx ended.
func stuckLanes(ctx context.Context, lanes []lane, of []*partitionState) []*partitionState {
	for _, l := range lanes {
		select {
		case <-l.done():
		case <-ctx.Done():
		}
	}
	var stuck []*partitionState
	for i, l := range lanes {
		select {
		case <-l.done():
		default:
			stuck = append(stuck, of[i])
		}
	}
	return stuck
}

// closing lets handlers finish the records they are on (until ctx ends;
// then their ctx is cancelled with ErrConsumerClosed).
func (r *runPath) closing(ctx context.Context) []error {
	lanes, of := r.lanesOf(nil)
	for _, l := range lanes {
		l.stop()
	}
	stuckLanes(ctx, lanes, of) // handlers finish their current record, within ctx
	r.core.eos.flushOutputs(ctx)
	for _, l := range lanes {
		l.cancel(ErrConsumerClosed)
	}
	var problems []error
	for _, ps := range stuckLanes(ctx, lanes, of) {
		problems = append(problems, fmt.Errorf("a handler of %v did not return before ctx ended", ps.tp))
	}
	r.core.mu.Lock()
	if r.cancelRun != nil {
		r.cancelRun(ErrConsumerClosed)
	}
	r.core.mu.Unlock()
	return problems
}

func (r *runPath) afterStopped(ps *partitionState, fn func()) bool {
	r.core.mu.Lock()
	l := ps.lane
	r.core.mu.Unlock()
	return l != nil && l.afterExit(fn)
}

// seek moves ps through its lane, or directly when no lane runs.
func (r *runPath) seek(ctx context.Context, ps *partitionState, to int64) error {
	c := r.core
	c.mu.Lock()
	l := ps.lane
	c.mu.Unlock()
	if l != nil {
		err := l.seek(ctx, to)
		if !errors.Is(err, errLaneExited) {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps.leaving || c.parts[ps.tp] != ps {
		return &errs.Error{Detail: fmt.Sprintf("GroupConsumer.Seek: %v was revoked before the seek", ps.tp), Err: ErrNotAssigned}
	}
	if ps.lane == l {
		ps.lane = nil // a stopped lane's resume point is superseded
	}
	c.seekLocked(ps, to)
	return nil
}

// Seek moves tp, a partition this member owns, to start: records before
// it are not processed (again), records from it on are, and the position
// to commit becomes start (also backwards), so a new owner after a
// rebalance or a crash continues there too. AtEarliest, AtLatest and
// AtTime are resolved to an offset first, under ctx.
//
// In the default order, Seek takes effect between two records: it waits
// under ctx for the record being handled to return — except from a
// handler of tp itself, where it returns at once and applies when that
// handler returns. With Parallel it takes effect at once: records being
// handled finish, but no longer count. A partition stopped by a handler
// failure or a fetch error goes on from start. Seek of a partition this
// member does not own returns an error matching ErrNotAssigned.
func (g *GroupConsumer) Seek(ctx context.Context, tp TopicPartition, start StartOffset) error {
	return g.core.seek(ctx, "GroupConsumer.Seek", tp, start)
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

// Close stops fetching, lets handlers finish the records they are on
// (until ctx ends; then their ctx is cancelled with ErrConsumerClosed),
// commits what was processed, leaves the group and stops. It returns when
// ctx ends at the latest, whatever state the group is in.
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
// (the retry package does in the default order), and the lane's flow
// control never resumes a partition paused here.
func (g *GroupConsumer) Pause(tps ...TopicPartition) { g.run.setPaused(tps, true) }

// Resume resumes fetching paused partitions. A partition whose lane's
// queue is still full stays paused until it drains.
func (g *GroupConsumer) Resume(tps ...TopicPartition) { g.run.setPaused(tps, false) }

// setPaused routes Pause and Resume of partitions that have a lane through
// it, so that the user's pause and the lane's flow control (see
// worker.push) do not undo each other: fetching resumes only when neither
// wants it paused. Without this, a Resume could unpause a partition whose
// queue is full, and records would pile up without bound. The user's pause
// is kept with the partition, so a later Run's lane keeps it too.
func (r *runPath) setPaused(tps []TopicPartition, paused bool) {
	var direct []TopicPartition
	var lanes []lane
	r.core.mu.Lock()
	for _, tp := range tps {
		ps := r.core.parts[tp]
		if ps != nil {
			ps.userPaused = paused
		}
		if ps != nil && ps.lane != nil {
			lanes = append(lanes, ps.lane)
		} else {
			direct = append(direct, tp)
		}
	}
	r.core.mu.Unlock()
	for _, l := range lanes {
		l.setUserPaused(paused)
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
