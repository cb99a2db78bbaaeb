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
	"github.com/keel-go/keel/internal/fetch"
	"github.com/keel-go/keel/internal/group"
	"github.com/keel-go/keel/internal/group/assign"
	"github.com/keel-go/keel/internal/topicpart"
	"github.com/keel-go/keel/internal/wait"
)

// memberCore is what GroupConsumer (Run) and GroupPoller (Poll) share: the
// group membership, the partitions this member owns, the commits of what
// was processed, and the rebalance callbacks. How records reach the user
// is the path's business: the core calls it through path at the points of
// a partition's life where the two differ, and never looks at the path's
// own state.
type memberCore struct {
	client  *Client
	group   string
	topics  []string
	cfg     groupConfig
	member  groupMember
	fetcher *fetch.Of[Message]
	path    consumePath // set once, before the member starts
	// handlerHooks is the client's hooks when some watch handler calls
	// (group_observe.go), else nil: the lanes' one check per record.
	handlerHooks *hookSet
	// Observability (group_stats.go, consumer_watch.go): Stats counters,
	// the partitions that changed hands in the current rebalance, the
	// Events() stream and the lag and stall watch.
	counters memberCounters
	tally    rebalanceTally
	events   *consumerEvents
	watch    *consumeWatch

	mu         sync.Mutex
	started    bool
	parts      map[TopicPartition]*partitionState
	closed     bool
	stopping   chan struct{} // closed by Close: no new records to the user
	memberCtx  context.Context
	stopMember context.CancelFunc
	memberDone chan struct{}
	memberErr  error

	// eos: the transaction of ExactlyOnce (group_eos.go), else nil.
	eos *eosSession

	// One commit at a time: a late retry must not overtake a newer one.
	commitMu       sync.Mutex
	stopAutoCommit context.CancelFunc
	autoDone       chan struct{}
}

// groupMember is the group protocol under the core: group.Member
// (classic, the default) or group.ConsumerMember (KIP-848), chosen by
// the GroupProtocol option. Both call the core's onRevoke, onAssign and
// onLost the same way.
type groupMember interface {
	Run(ctx context.Context) error
	Leave(ctx context.Context) error
	Committed(ctx context.Context, tps []TopicPartition) (map[TopicPartition]group.Offset, error)
	Commit(ctx context.Context, offsets map[TopicPartition]group.Offset) error
	Syncs() uint64
	WaitSync(ctx context.Context, after uint64) error
	Generation() (generation int32, memberID, instanceID string)
	// Fenced: a commit in generation gen was refused because the member
	// is no longer in it; the member reports its partitions lost and
	// rejoins.
	Fenced(gen int32, cause error)
}

// consumePath is the part of a partition's life that differs between the
// Run path (lanes call a handler) and the Poll path (the user polls).
type consumePath interface {
	// assignedLocked sets up a partition newly assigned, starting at
	// start; called under core.mu.
	assignedLocked(ps *partitionState, start fetch.Offset)
	// revoking is called before revoked partitions are released (their
	// states already leaving); the Poll path waits there for
	// AllowRebalance. The returned func runs once the revoke is over.
	revoking(ctx context.Context) (over func())
	// stop ends the processing of pss with cause and waits for it under
	// ctx; it returns the partitions still being processed when ctx
	// ended.
	stop(pss []*partitionState, cause error, ctx context.Context) (stuck []*partitionState)
	// closing is Close's first step: let what is being processed finish
	// within ctx, then stop it; it returns what could not be stopped.
	closing(ctx context.Context) []error
	// seek moves ps to the exact offset to, under ctx; see
	// GroupConsumer.Seek.
	seek(ctx context.Context, ps *partitionState, to int64) error
	// afterStopped runs fn once the processing of ps, which stop left
	// running, has stopped; false when nothing runs (fn is not called).
	afterStopped(ps *partitionState, fn func()) bool
}

// partitionState is a partition this member owns. Its fields other than
// marks are guarded by core.mu.
type partitionState struct {
	tp    TopicPartition
	marks markCell
	// committedAt is the last offset committed (read at assignment, then
	// each commit's), -1 when none: read by Stats and the watch without
	// core.mu.
	committedAt atomic.Int64
	// leaving: revoked or lost, waiting for its processing to stop. A
	// record finished meanwhile still counts as processed.
	leaving bool
	// seq is the fetcher's sequence number of the partition's position
	// (Assign, Seek): a Fetch with an older one was taken before the
	// position moved and is dropped.
	seq uint64
	// start is where processing starts: an exact offset, or
	// fetch.OffsetEarliest/OffsetLatest until the fetcher resolves it.
	start int64
	// skip are records after start processed already, out of order, by
	// whoever had the partition before (the committed metadata, or the
	// previous Run's lane): they are skipped, not processed again.
	skip   doneRanges
	skipAt int // the Poll path's cursor in skip
	// firstAt is the offset of the first record handed to the user since
	// assignment (-1: none yet): where processing started when start was
	// symbolic, for Stats and the lag watch.
	firstAt int64
	// userPaused: GroupConsumer.Pause; a Run's lane starts paused.
	userPaused bool
	// lane processes the partition's records: set and used by the Run
	// path only (nil on the Poll path, and before the first Run).
	lane lane
	// tail: the Poll path's way past a commit marker (poll_tail.go).
	tail pollTail
}

// metadataLocked returns what gives the metadata to commit with an offset
// of ps: the records after it processed already (see doneRanges), which
// its lane tracks, or else its skip ranges not reached yet.
func (ps *partitionState) metadataLocked() func(committed int64) string {
	if ps.lane != nil {
		return ps.lane.doneMetadata
	}
	if skip := ps.skip; len(skip) > 0 {
		return skip.encode
	}
	return nil
}

// newMemberCore checks the options and builds the core; the member joins
// the group only when start is called.
func newMemberCore(client *Client, groupID string, topics []string, opts []GroupOption, kind consumerKind) (*memberCore, error) {
	if client == nil {
		return nil, &ConfigError{Option: "client", Problem: "nil client", Fix: "pass the *Client from NewClient"}
	}
	cfg := applyGroupOptions(opts)
	if err := cfg.validate(groupID, topics, kind); err != nil {
		return nil, err
	}
	if cfg.eos != nil {
		cfg.autoCommit = cfg.eos.interval // the transaction's interval
	}
	c := &memberCore{
		client:   client,
		group:    groupID,
		topics:   slices.Clone(topics),
		cfg:      cfg,
		parts:    make(map[TopicPartition]*partitionState),
		stopping: make(chan struct{}),
	}
	var assignors []assign.Assignor
	for _, n := range cfg.assignors {
		a, _ := assign.ByName(n)
		assignors = append(assignors, a)
	}
	gcfg := group.Config{
		Group:             groupID,
		InstanceID:        cfg.instanceID,
		Topics:            c.topics,
		Regex:             cfg.regex,
		Rack:              cfg.rack,
		Assignors:         assignors,
		SessionTimeout:    cfg.sessionTimeout,
		RebalanceTimeout:  cfg.rebalanceTimeout,
		HeartbeatInterval: cfg.heartbeatInterval,
		Backoff:           wait.Backoff{Min: 100 * time.Millisecond, Max: time.Second},
		Logger:            client.logger,
		Callbacks: group.Callbacks{
			Revoke: c.onRevoke,
			Assign: c.onAssign,
			Lost:   c.onLost,
		},
		Protocol:       cfg.protocol,
		ServerAssignor: cfg.serverAssignor,
	}
	c.rebalanceCallbacks(&gcfg.Callbacks)
	c.events = newConsumerEvents(client)
	c.watch = newConsumeWatch(client, groupID, c.events, c.partitionStats)
	if client.hooks.handlers() {
		c.handlerHooks = client.hooks
	}
	if cfg.protocol == ConsumerProtocol {
		c.member = group.NewConsumer(gcfg, client.pool, client.meta)
	} else {
		c.member = group.New(gcfg, client.pool, client.meta)
	}
	c.fetcher = newFetcher(client, cfg.fetchConfig(client))
	if cfg.eos != nil {
		c.eos = newEOSSession(c, cfg.eos)
	}
	return c, nil
}

// start joins the group and starts the committer, once.
func (c *memberCore) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrConsumerClosed
	}
	if c.started {
		return nil
	}
	c.started = true
	c.memberCtx, c.stopMember = context.WithCancel(context.Background())
	c.memberDone = make(chan struct{})
	go func() {
		defer close(c.memberDone)
		err := c.member.Run(c.memberCtx)
		c.mu.Lock()
		failed := !errors.Is(err, context.Canceled)
		if failed {
			c.memberErr = err
		}
		c.mu.Unlock()
		if failed {
			c.stopMember() // wakes a Poll waiting for records (security.go)
		}
	}()
	actx, cancel := context.WithCancel(c.memberCtx)
	c.stopAutoCommit = cancel
	c.autoDone = make(chan struct{})
	go c.autoCommit(actx)
	c.watch.start()
	return nil
}

// failed returns the member's error once it stopped for good.
func (c *memberCore) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.memberErr
}

// committedBackoff spaces the retries of reading committed offsets at
// assignment.
var committedBackoff = wait.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}

// onAssign starts fetching new partitions from their committed offsets.
// It never falls back to the reset policy because the committed offsets
// could not be read: that would skip or repeat records. It retries until
// it can, or the consumer closes.
func (c *memberCore) onAssign(assigned group.Partitions) {
	tps := topicpart.Flatten(assigned)
	var committed map[TopicPartition]group.Offset
	err := wait.Retry(c.memberCtx, committedBackoff, 0, func(int) (bool, error) {
		var err error
		if committed, err = c.member.Committed(c.memberCtx, tps); err != nil && c.memberCtx.Err() == nil {
			c.client.logger.Error("keel: cannot read committed offsets; retrying (the partitions wait)", "group", c.group, "err", err)
		}
		return err == nil, err
	})
	if err != nil {
		return // the consumer is closing
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	var added []TopicPartition
	for _, tp := range tps {
		if c.parts[tp] != nil {
			continue
		}
		added = append(added, tp)
		ps := &partitionState{tp: tp, firstAt: -1, tail: newPollTail()}
		ps.committedAt.Store(-1)
		c.parts[tp] = ps
		start := fetch.Offset{At: resetStart(c.cfg.resetFor(tp.Topic)), Epoch: -1}
		if o, ok := committed[tp]; ok {
			start = fetch.Offset{At: o.At, Epoch: o.Epoch}
			ps.skip = decodeDoneRanges(o.Metadata, o.At)
			ps.committedAt.Store(o.At)
		}
		ps.start = start.At
		ps.seq = c.fetcher.Assign(tp, start)
		c.path.assignedLocked(ps, start)
	}
	c.mu.Unlock()
	c.tally.add(&c.tally.assigned, added)
	c.client.logger.Info("keel: partitions assigned", "group", c.group, "partitions", tps)
	if c.cfg.onAssigned != nil {
		c.cfg.onAssigned(slices.Clone(tps))
	}
}

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
func (c *memberCore) onRevoke(ctx context.Context, revoked group.Partitions) {
	tps := topicpart.Flatten(revoked)
	c.tally.add(&c.tally.revoked, tps)
	// From now on nothing of the revoked partitions reaches the user.
	c.mu.Lock()
	for _, tp := range tps {
		if ps := c.parts[tp]; ps != nil {
			ps.leaving = true
		}
	}
	c.mu.Unlock()
	over := c.path.revoking(ctx)
	defer over()
	released, stuck := c.release(tps, ErrRevoked, ctx)
	if len(released) > 0 {
		// The released partitions' marks go with their state: nothing
		// commits them after this.
		if err := c.commitMarked(ctx, released); err != nil {
			c.client.logger.Error("keel: commit on revoke failed", "group", c.group, "err", err)
		}
	}
	c.client.logger.Info("keel: partitions revoked", "group", c.group, "partitions", tps)
	if c.cfg.onRevoked == nil {
		return
	}
	// OnRevoked promises that the partitions' handlers returned. One that
	// outlived the rebalance timeout gets its call when it returns, alone;
	// the partition has moved on meanwhile (see OnRevoked).
	now := slices.Clone(tps)
	for _, ps := range stuck {
		if c.path.afterStopped(ps, func() { c.cfg.onRevoked([]TopicPartition{ps.tp}) }) {
			now = slices.DeleteFunc(now, func(tp TopicPartition) bool { return tp == ps.tp })
		}
	}
	if len(now) > 0 {
		c.cfg.onRevoked(now)
	}
}

// onLost stops lost partitions without committing: they may already be
// another member's.
func (c *memberCore) onLost(lost group.Partitions) {
	ctx, cancel := context.WithTimeout(c.memberCtx, c.cfg.rebalanceTimeout)
	defer cancel()
	tps := topicpart.Flatten(lost)
	c.tally.add(&c.tally.lost, tps)
	c.release(tps, ErrLost, ctx) // their marks are dropped with them; OnLost does not wait
	c.client.logger.Warn("keel: partitions lost", "group", c.group, "partitions", tps)
	if c.cfg.onLost != nil {
		c.cfg.onLost(slices.Clone(tps))
	}
}

// release stops fetching and processing partitions and waits, under ctx,
// for their processing to stop. A record finished meanwhile is still
// marked processed, so the commit that follows includes it and the next
// owner does not process it again. It returns the states released, whose
// marks that commit reads, and those still being processed when ctx ended.
func (c *memberCore) release(tps []TopicPartition, cause error, ctx context.Context) (released, stuck []*partitionState) {
	c.mu.Lock()
	for _, tp := range tps {
		ps := c.parts[tp]
		if ps == nil {
			continue
		}
		released = append(released, ps)
		ps.leaving = true
		c.fetcher.Unassign(tp)
	}
	c.mu.Unlock()
	stuck = c.path.stop(released, cause, ctx)
	for _, ps := range stuck {
		c.client.logger.Warn("keel: a handler did not return within the rebalance timeout; its partition moves on anyway (its record is not committed)", "group", c.group, "partition", ps.tp)
	}
	c.mu.Lock()
	for _, tp := range tps {
		delete(c.parts, tp)
	}
	c.mu.Unlock()
	return released, stuck
}

// countCommit counts a commit's result for Stats.
func (c *memberCore) countCommit(err error) {
	if err != nil {
		c.counters.commitErrors.Add(1)
	} else {
		c.counters.commits.Add(1)
	}
}

// lookup returns the state of tp if this member owns it and it is not
// leaving.
func (c *memberCore) lookup(tp TopicPartition) *partitionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps := c.parts[tp]; ps != nil && !ps.leaving {
		return ps
	}
	return nil
}

// commitMarked commits the processed offsets of pss, or of every owned
// partition when pss is nil, that are not committed yet.
func (c *memberCore) commitMarked(ctx context.Context, pss []*partitionState) error {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	if c.eos != nil {
		return c.eos.commit(ctx, pss) // the offsets go in the transaction
	}
	c.mu.Lock()
	if pss == nil {
		pss = make([]*partitionState, 0, len(c.parts))
		for _, ps := range c.parts {
			pss = append(pss, ps)
		}
	}
	metas := make([]func(int64) string, len(pss))
	for i, ps := range pss {
		metas[i] = ps.metadataLocked()
	}
	c.mu.Unlock()
	offsets := make(map[TopicPartition]group.Offset)
	var sent []*partitionState
	for i, ps := range pss {
		if o, ok := ps.marks.pending(metas[i]); ok {
			offsets[ps.tp] = o
			sent = append(sent, ps)
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	err := c.observedCommit(func() error { return c.member.Commit(ctx, offsets) }, offsets)
	c.countCommit(err)
	if err == nil {
		for _, ps := range sent {
			ps.marks.committed(offsets[ps.tp])
			ps.committedAt.Store(offsets[ps.tp].At)
		}
	}
	return err
}

func (c *memberCore) autoCommit(ctx context.Context) {
	defer close(c.autoDone)
	if c.cfg.autoCommit <= 0 {
		return
	}
	t := time.NewTicker(c.cfg.autoCommit)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.eos.kickC(): // a transaction's record bound, or an abort
		}
		timeout := c.cfg.autoCommit
		if c.eos != nil {
			timeout = eosCommitTimeout // flush, offsets and EndTxn
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		if err := c.commitMarked(cctx, nil); err != nil && ctx.Err() == nil {
			c.client.logger.Warn("keel: interval commit failed; retrying at the next", "group", c.group, "err", err)
		}
		cancel()
	}
}

// assigned returns the partitions this member owns now, sorted.
func (c *memberCore) assigned() []TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]TopicPartition, 0, len(c.parts))
	for tp := range c.parts {
		out = append(out, tp)
	}
	topicpart.Sort(out)
	return out
}

// close stops the path's processing (within ctx), commits what was
// processed, leaves the group and stops. It returns when ctx ends at the
// latest.
func (c *memberCore) close(ctx context.Context, name string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	started := c.started
	close(c.stopping)
	c.mu.Unlock()
	if !started {
		c.fetcher.Close()
		c.events.close()
		return nil
	}
	defer c.events.close()
	problems := c.path.closing(ctx)
	c.stopAutoCommit()
	select {
	case <-c.autoDone:
	case <-ctx.Done():
	}
	if err := c.finalCommit(ctx); err != nil {
		problems = append(problems, fmt.Errorf("final commit: %w", err))
	}
	if err := c.member.Leave(ctx); err != nil {
		problems = append(problems, fmt.Errorf("leaving the group: %w", err))
	}
	c.stopMember()
	select {
	case <-c.memberDone:
	case <-ctx.Done():
		problems = append(problems, ctx.Err())
	}
	c.watch.stop()
	c.fetcher.Close()
	if len(problems) > 0 {
		return fmt.Errorf("keel: closing %s %q: %w", name, c.group, errors.Join(problems...))
	}
	return nil
}

// seek moves tp, which this member must own, to start (see
// GroupConsumer.Seek).
func (c *memberCore) seek(ctx context.Context, method string, tp TopicPartition, start StartOffset) error {
	if ctx == nil {
		return errs.NilContext(method)
	}
	if err := start.check(method, tp); err != nil {
		return err
	}
	ps := c.lookup(tp)
	if ps == nil {
		return &errs.Error{Detail: fmt.Sprintf("%s: %v is not assigned to this member of group %q", method, tp, c.group), Err: ErrNotAssigned}
	}
	to := start.at
	if ts := start.time; !ts.IsZero() || to < 0 {
		// The target is committed as the partition's position: it must
		// be an offset now, not a timestamp resolved later.
		at := to
		if !ts.IsZero() {
			at = ts.UnixMilli()
		}
		var err error
		if to, err = c.fetcher.ListOffset(ctx, tp, at); err != nil {
			return fmt.Errorf("keel: %s of %v: %w", method, tp, err)
		}
	}
	if err := c.path.seek(ctx, ps, to); err != nil {
		return err
	}
	c.client.logger.Info("keel: partition seeked", "group", c.group, "partition", tp, "offset", to)
	return nil
}

// seekLocked moves ps to the offset to when nothing processes it: the
// fetcher starts there, records fetched before are dropped, and the
// position to commit is to, also backwards.
func (c *memberCore) seekLocked(ps *partitionState, to int64) {
	ps.seq = c.fetcher.Seek(ps.tp, fetch.At(to))
	ps.start = to
	ps.skip, ps.skipAt = nil, 0
	ps.tail = newPollTail()
	ps.marks.reset(to, -1)
}

// finalCommit is Close's commit of what was processed. Close may come in
// the middle of a rebalance, when the broker refuses commits of the
// generation the member is in: REBALANCE_IN_PROGRESS while the generation
// just joined waits for its SyncGroup, ILLEGAL_GENERATION once a newer one
// began. Giving up then would have every record processed since the last
// commit processed again by the next owner. So it waits (up to the session
// timeout) for the member to complete that rebalance — where, with a
// cooperative assignor, it still owns the partitions it did not give up
// (those it gave up were committed on revoke) — and commits again.
func (c *memberCore) finalCommit(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		syncs := c.member.Syncs()
		err := c.commitMarked(ctx, nil)
		if err == nil || !errors.Is(err, group.ErrCommitFenced) || attempt == 3 {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, c.cfg.sessionTimeout)
		werr := c.member.WaitSync(wctx, syncs)
		cancel()
		if werr != nil {
			return err
		}
		c.client.logger.Info("keel: final commit refused during a rebalance; committing again in the new generation", "group", c.group, "err", err)
	}
}

// isStopping reports whether Close has begun.
func (c *memberCore) isStopping() bool {
	select {
	case <-c.stopping:
		return true
	default:
		return false
	}
}
