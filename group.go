package keel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/topicpart"
	"github.com/keel-go/keel/internal/wait"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/fetch"
	"github.com/keel-go/keel/internal/group"
	"github.com/keel-go/keel/internal/group/assign"
)

// GroupConsumer is one member of a consumer group. Run processes records
// with one worker per assigned partition; Poll is the low-level
// alternative. Either way only processed (marked) offsets are committed:
// on an interval, when partitions are revoked, and on Close.
//
// Heartbeats run in the background whatever the handlers do, so a slow
// handler never gets the member kicked out. When a partition is revoked its
// handler's ctx is cancelled with cause ErrRevoked; the consumer waits for
// the handler to return (up to the rebalance timeout), commits what was
// processed, and only then lets the partition go. With the default
// cooperative-sticky assignor, partitions that stay keep being processed
// throughout a rebalance.
type GroupConsumer struct {
	client  *Client
	group   string
	topics  []string
	cfg     groupConfig
	member  *group.Member
	fetcher *fetch.Of[Message]

	mu         sync.Mutex
	started    bool
	mode       string // "run" or "poll"
	parts      map[TopicPartition]*partitionState
	closed     bool
	stopping   chan struct{} // closed by Close: no new records to handlers
	memberCtx  context.Context
	stopMember context.CancelFunc
	memberDone chan struct{}
	memberErr  error
	handler    Handler
	ranOnce    bool
	sem        chan struct{}
	wg         sync.WaitGroup // workers and dispatcher

	// One commit at a time: a late retry must not overtake a newer one.
	commitMu       sync.Mutex
	stopAutoCommit context.CancelFunc
	autoDone       chan struct{}

	// Poll mode: records handed out and not yet allowed to rebalance.
	pollHeld   bool
	revoking   bool // a revocation is waiting for AllowRebalance
	pollNotify chan struct{}
}

// partitionState is an assigned partition.
type partitionState struct {
	tp     TopicPartition
	ctx    context.Context
	cancel context.CancelCauseFunc
	w      *worker // Run mode
	marks  markCell
	// leaving: revoked or lost, waiting for its handler to return. A
	// record that handler finishes still counts as processed.
	leaving bool
}

// NewGroupConsumer returns a member of group subscribed to topics (and to
// SubscribeRegex, if given). It joins the group when Run or Poll is first
// called. Invalid options give an error matching ErrInvalidConfig.
func NewGroupConsumer(client *Client, groupID string, topics []string, opts ...GroupOption) (*GroupConsumer, error) {
	if client == nil {
		return nil, &ConfigError{Option: "client", Problem: "nil client", Fix: "pass the *Client from NewClient"}
	}
	cfg := applyGroupOptions(opts)
	if err := cfg.validate(groupID, topics); err != nil {
		return nil, err
	}
	g := &GroupConsumer{
		client:     client,
		group:      groupID,
		topics:     slices.Clone(topics),
		cfg:        cfg,
		parts:      make(map[TopicPartition]*partitionState),
		stopping:   make(chan struct{}),
		pollNotify: make(chan struct{}),
	}
	if cfg.maxConcurrency > 0 {
		g.sem = make(chan struct{}, cfg.maxConcurrency)
	}
	var assignors []assign.Assignor
	for _, n := range cfg.assignors {
		a, _ := assign.ByName(n)
		assignors = append(assignors, a)
	}
	g.member = group.New(group.Config{
		Group:             groupID,
		InstanceID:        cfg.instanceID,
		Topics:            g.topics,
		Regex:             cfg.regex,
		Rack:              cfg.rack,
		Assignors:         assignors,
		SessionTimeout:    cfg.sessionTimeout,
		RebalanceTimeout:  cfg.rebalanceTimeout,
		HeartbeatInterval: cfg.heartbeatInterval,
		Backoff:           conn.Backoff{Min: 100 * time.Millisecond, Max: time.Second},
		Logger:            client.logger,
		Callbacks: group.Callbacks{
			Revoke: g.onRevoke,
			Assign: g.onAssign,
			Lost:   g.onLost,
		},
	}, client.pool, client.meta)
	g.fetcher = newFetcher(client, cfg.fetchConfig(client))
	return g, nil
}

// start joins the group and starts the committer, once.
func (g *GroupConsumer) start(mode string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrConsumerClosed
	}
	if g.started {
		if g.mode != mode {
			return fmt.Errorf("keel: group consumer already used with %s; Run and Poll do not mix", g.mode)
		}
		return nil
	}
	g.started, g.mode = true, mode
	g.memberCtx, g.stopMember = context.WithCancel(context.Background())
	g.memberDone = make(chan struct{})
	go func() {
		defer close(g.memberDone)
		err := g.member.Run(g.memberCtx)
		g.mu.Lock()
		failed := !errors.Is(err, context.Canceled)
		if failed {
			g.memberErr = err
		}
		g.mu.Unlock()
		if failed {
			g.stopMember() // wakes a Poll waiting for records (security.go)
		}
	}()
	actx, cancel := context.WithCancel(g.memberCtx)
	g.stopAutoCommit = cancel
	g.autoDone = make(chan struct{})
	go g.autoCommit(actx)
	return nil
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
	g.mu.Lock()
	if g.ranOnce {
		g.mu.Unlock()
		return errors.New("keel: Run was already called on this consumer; it runs once — Close it and make a new one")
	}
	g.ranOnce = true
	g.handler = h
	g.mu.Unlock()
	if err := g.start("Run"); err != nil {
		return err
	}
	// Partitions assigned before Run started get their workers now.
	g.mu.Lock()
	for _, ps := range g.parts {
		if ps.w == nil {
			g.startWorkerLocked(ps)
		}
	}
	g.mu.Unlock()

	dispatchDone := make(chan struct{})
	dctx, stopDispatch := context.WithCancel(ctx)
	go func() {
		defer close(dispatchDone)
		g.dispatch(dctx)
	}()
	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case <-g.stopping:
	case <-g.memberDone:
		g.mu.Lock()
		err = g.memberErr
		g.mu.Unlock()
	}
	stopDispatch()
	<-dispatchDone
	select {
	case <-g.stopping: // Close stops the workers gracefully itself
	default:
		// ctx ended or the member failed: stop every worker now (their
		// handlers' ctx is cancelled; Run waits a few seconds for them)
		// and commit what they finished. The member keeps its partitions
		// until Close, which also waits for handlers still running.
		wctx, cancel := context.WithTimeout(context.Background(), runStopWait)
		g.stopWorkers(ErrConsumerClosed, wctx)
		cancel()
		cctx, cancel := context.WithTimeout(context.Background(), runStopWait)
		g.commitMarked(cctx, nil)
		cancel()
	}
	return err
}

// dispatch moves fetched records to the workers of their partitions.
func (g *GroupConsumer) dispatch(ctx context.Context) {
	for {
		fs, err := g.fetcher.Poll(ctx, 0)
		if err != nil {
			return
		}
		for _, f := range fs {
			tp := f.TP
			g.mu.Lock()
			var w *worker
			if ps := g.parts[tp]; ps != nil && !ps.leaving {
				w = ps.w
			}
			g.mu.Unlock()
			if w == nil {
				continue // revoked meanwhile
			}
			w.push(f.Records, int(f.Bytes), f.Err)
		}
	}
}

// onAssign starts fetching new partitions from their committed offsets.
// It never falls back to the reset policy because the committed offsets
// could not be read: that would skip or repeat records. It retries until
// it can, or the consumer closes.
func (g *GroupConsumer) onAssign(assigned group.Partitions) {
	tps := topicpart.Flatten(assigned)
	var committed map[TopicPartition]group.Offset
	err := wait.Retry(g.memberCtx, committedBackoff, 0, func(int) (bool, error) {
		var err error
		if committed, err = g.member.Committed(g.memberCtx, tps); err != nil && g.memberCtx.Err() == nil {
			g.client.logger.Error("keel: cannot read committed offsets; retrying (the partitions wait)", "group", g.group, "err", err)
		}
		return err == nil, err
	})
	if err != nil {
		return // the consumer is closing
	}
	var public []TopicPartition
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	for _, tp := range tps {
		public = append(public, tp)
		if g.parts[tp] != nil {
			continue
		}
		pctx, pcancel := context.WithCancelCause(context.Background())
		ps := &partitionState{tp: tp, ctx: pctx, cancel: pcancel}
		g.parts[tp] = ps
		start := fetch.Offset{At: resetStart(g.cfg.resetFor(tp.Topic)), Epoch: -1}
		if o, ok := committed[tp]; ok {
			start = fetch.Offset{At: o.At, Epoch: o.Epoch}
		}
		g.fetcher.Assign(tp, start)
		if g.mode == "Run" && g.handler != nil {
			g.startWorkerLocked(ps)
			if start.At >= 0 {
				ps.w.nextOffset = start.At
			}
		}
	}
	g.mu.Unlock()
	topicpart.Sort(public)
	g.client.logger.Info("keel: partitions assigned", "group", g.group, "partitions", public)
	if g.cfg.onAssigned != nil {
		g.cfg.onAssigned(public)
	}
}

// committedBackoff spaces the retries of reading committed offsets at
// assignment.
var committedBackoff = wait.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}

func resetStart(r OffsetReset) int64 {
	switch r {
	case ResetEarliest:
		return fetch.OffsetEarliest
	case ResetLatest:
		return fetch.OffsetLatest
	}
	return fetch.OffsetLatest // with ResetNone the fetcher fails the partition instead
}

// onRevoke stops the revoked partitions: their handlers' ctx is cancelled
// with ErrRevoked, the consumer waits for them (bounded by ctx, the
// rebalance timeout), commits what they processed, then lets them go.
func (g *GroupConsumer) onRevoke(ctx context.Context, revoked group.Partitions) {
	// From now on Poll hands out nothing of the revoked partitions and
	// does not hold the rebalance again; wait only for what it already
	// handed out.
	g.mu.Lock()
	for _, tp := range topicpart.Flatten(revoked) {
		if ps := g.parts[tp]; ps != nil {
			ps.leaving = true
		}
	}
	g.revoking = true
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.revoking = false
		g.mu.Unlock()
	}()
	g.waitPollRelease(ctx)
	tps, released := g.release(revoked, ErrRevoked, ctx)
	if len(released) > 0 {
		// The released partitions' marks go with their state: nothing
		// commits them after this.
		if err := g.commitMarked(ctx, released); err != nil {
			g.client.logger.Error("keel: commit on revoke failed", "group", g.group, "err", err)
		}
	}
	public := slices.Clone(tps)
	g.client.logger.Info("keel: partitions revoked", "group", g.group, "partitions", public)
	if g.cfg.onRevoked != nil {
		g.cfg.onRevoked(public)
	}
}

// onLost stops lost partitions without committing: they may already be
// another member's.
func (g *GroupConsumer) onLost(lost group.Partitions) {
	ctx, cancel := context.WithTimeout(g.memberCtx, g.cfg.rebalanceTimeout)
	defer cancel()
	tps, _ := g.release(lost, ErrLost, ctx) // their marks are dropped with them
	public := slices.Clone(tps)
	g.client.logger.Warn("keel: partitions lost", "group", g.group, "partitions", public)
	if g.cfg.onLost != nil {
		g.cfg.onLost(public)
	}
}

// release stops fetching and processing partitions and waits, under ctx,
// for their handlers to return. A record a handler finishes meanwhile is
// still marked processed, so the commit that follows includes it and the
// next owner does not process it again. It returns the partitions and the
// states released, whose marks that commit reads.
func (g *GroupConsumer) release(p group.Partitions, cause error, ctx context.Context) ([]TopicPartition, []*partitionState) {
	tps := topicpart.Flatten(p)
	var workers []*worker
	var released []*partitionState
	g.mu.Lock()
	for _, tp := range tps {
		ps := g.parts[tp]
		if ps == nil {
			continue
		}
		released = append(released, ps)
		ps.leaving = true
		g.fetcher.Unassign(tp)
		ps.cancel(cause)
		if ps.w != nil {
			workers = append(workers, ps.w)
		}
	}
	g.mu.Unlock()
	for _, w := range waitWorkers(ctx, workers) {
		g.client.logger.Warn("keel: a handler did not return within the rebalance timeout; its partition moves on anyway", "group", g.group, "partition", w.tp)
	}
	g.mu.Lock()
	for _, tp := range tps {
		delete(g.parts, tp)
	}
	g.mu.Unlock()
	return tps, released
}

// commitMarked commits the processed offsets of pss, or of every assigned
// partition when pss is nil, that are not committed yet.
func (g *GroupConsumer) commitMarked(ctx context.Context, pss []*partitionState) error {
	g.commitMu.Lock()
	defer g.commitMu.Unlock()
	if pss == nil {
		g.mu.Lock()
		pss = make([]*partitionState, 0, len(g.parts))
		for _, ps := range g.parts {
			pss = append(pss, ps)
		}
		g.mu.Unlock()
	}
	offsets := make(map[TopicPartition]group.Offset)
	var sent []*partitionState
	for _, ps := range pss {
		if o, ok := ps.marks.pending(); ok {
			offsets[ps.tp] = o
			sent = append(sent, ps)
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	err := g.member.Commit(ctx, offsets)
	if err == nil {
		for _, ps := range sent {
			ps.marks.committed(offsets[ps.tp])
		}
	}
	return err
}

func (g *GroupConsumer) autoCommit(ctx context.Context) {
	defer close(g.autoDone)
	if g.cfg.autoCommit <= 0 {
		return
	}
	t := time.NewTicker(g.cfg.autoCommit)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, g.cfg.autoCommit)
			if err := g.commitMarked(cctx, nil); err != nil && ctx.Err() == nil {
				g.client.logger.Warn("keel: interval commit failed; retrying at the next", "group", g.group, "err", err)
			}
			cancel()
		}
	}
}

// Commit commits every processed offset now.
func (g *GroupConsumer) Commit(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("GroupConsumer.Commit")
	}
	return g.commitMarked(ctx, nil)
}

// Assigned returns the partitions this member processes now.
func (g *GroupConsumer) Assigned() []TopicPartition {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]TopicPartition, 0, len(g.parts))
	for tp := range g.parts {
		out = append(out, tp)
	}
	topicpart.Sort(out)
	return out
}

// stopWorkers cancels every worker with cause and waits for them under
// ctx; it returns those still in a handler when ctx ended.
func (g *GroupConsumer) stopWorkers(cause error, ctx context.Context) []*worker {
	g.mu.Lock()
	var workers []*worker
	for _, ps := range g.parts {
		if ps.w != nil {
			ps.cancel(cause)
			workers = append(workers, ps.w)
		}
	}
	g.mu.Unlock()
	return waitWorkers(ctx, workers)
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

// Close stops fetching, lets handlers finish the record they are on (until
// ctx ends; then their ctx is cancelled with ErrConsumerClosed), commits
// what was processed, leaves the group and stops. It returns when ctx ends
// at the latest, whatever state the group is in.
func (g *GroupConsumer) Close(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("GroupConsumer.Close")
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	started := g.started
	close(g.stopping)
	var workers []*worker
	for _, ps := range g.parts {
		if ps.w != nil {
			ps.w.stop()
			workers = append(workers, ps.w)
		}
	}
	g.mu.Unlock()
	if !started {
		g.fetcher.Close()
		return nil
	}
	waitWorkers(ctx, workers) // handlers finish their current record, within ctx
	var problems []error
	for _, w := range g.stopWorkers(ErrConsumerClosed, ctx) {
		problems = append(problems, fmt.Errorf("a handler of %v did not return before ctx ended", w.tp))
	}
	g.stopAutoCommit()
	select {
	case <-g.autoDone:
	case <-ctx.Done():
	}
	if err := g.commitMarked(ctx, nil); err != nil {
		problems = append(problems, fmt.Errorf("final commit: %w", err))
	}
	if err := g.member.Leave(ctx); err != nil {
		problems = append(problems, fmt.Errorf("leaving the group: %w", err))
	}
	g.stopMember()
	select {
	case <-g.memberDone:
	case <-ctx.Done():
		problems = append(problems, ctx.Err())
	}
	g.fetcher.Close()
	if len(problems) > 0 {
		return fmt.Errorf("keel: closing group consumer %q: %w", g.group, errors.Join(problems...))
	}
	return nil
}

// isStopping reports whether Close has begun.
func (g *GroupConsumer) isStopping() bool {
	select {
	case <-g.stopping:
		return true
	default:
		return false
	}
}

// markCell is a partition's processed position: the offset after the last
// record processed, which is what a commit sends, with the leader epoch of
// that record. Each partition has its own, and marking is lock-free in the
// common case, so that marking a record (once per record in Run mode) is
// one compare-and-swap instead of the consumer's lock and a map update
// (issue 6).
//
// word packs both: next<<markEpochBits | epoch+1, for offsets below 2^43
// and epochs below 2^20-1, which is every real partition. A position that
// does not fit is kept in slow under mu, and word is then markSlow for
// good. Zero is nothing marked.
type markCell struct {
	word atomic.Int64
	mu   sync.Mutex
	slow group.Offset // when word == markSlow
	// last is the position last committed from this cell (lastSet: any);
	// only commitMarked touches it, under commitMu.
	last    group.Offset
	lastSet bool
}

const (
	markEpochBits       = 20
	markSlow      int64 = -1
)

// mark records that the record at offset, of a batch of leader epoch
// epoch, was processed. Positions never move back, and marking a record
// again changes nothing. Safe for concurrent use.
func (c *markCell) mark(offset int64, epoch int32) {
	next := offset + 1
	if next <= 0 {
		return // not a record's offset
	}
	if next < 1<<(63-markEpochBits) && epoch >= -1 && epoch < 1<<markEpochBits-1 {
		w := next<<markEpochBits | int64(epoch+1)
		for {
			old := c.word.Load()
			if old == markSlow {
				break
			}
			if old>>markEpochBits >= next {
				return
			}
			if c.word.CompareAndSwap(old, w) {
				return
			}
		}
	}
	c.markSlow(next, epoch)
}

// markSlow is mark for positions word cannot hold (or once it holds none).
func (c *markCell) markSlow(next int64, epoch int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		old := c.word.Load()
		if old == markSlow {
			if c.slow.At < next {
				c.slow = group.Offset{At: next, Epoch: epoch}
			}
			return
		}
		if old>>markEpochBits >= next {
			return
		}
		c.slow = group.Offset{At: next, Epoch: epoch}
		if c.word.CompareAndSwap(old, markSlow) {
			return
		}
		// A lock-free mark moved word meanwhile: look again.
	}
}

// position returns the processed position, if any record was marked.
func (c *markCell) position() (group.Offset, bool) {
	switch w := c.word.Load(); {
	case w == 0:
		return group.Offset{}, false
	case w == markSlow:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.slow, true
	default:
		return group.Offset{At: w >> markEpochBits, Epoch: int32(w&(1<<markEpochBits-1)) - 1}, true
	}
}

// pending returns the position to commit, if it moved since the last
// commit.
func (c *markCell) pending() (group.Offset, bool) {
	o, ok := c.position()
	if !ok || c.lastSet && c.last == o {
		return group.Offset{}, false
	}
	return o, true
}

// committed records that o was committed.
func (c *markCell) committed(o group.Offset) { c.last, c.lastSet = o, true }
