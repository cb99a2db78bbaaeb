package keel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/group"
	"github.com/keel-go/keel/internal/testhook"
)

// Exactly-once Run (consume-transform-produce, issue 13): with ExactlyOnce
// a GroupConsumer's handlers produce through one transactional producer,
// and the offsets of the records they processed are committed inside the
// same transaction (TxnOffsetCommit with the group's generation, member id
// and instance id, KIP-447) instead of with OffsetCommit. Outputs and
// offsets become visible to read_committed readers together, or not at
// all.
//
// One transaction spans every partition the member processes. A gate (an
// RWMutex) makes a commit see a quiet member: each handler call, with the
// mark of its record, holds it shared; the commit holds it exclusive, so
// no output is in the transaction whose record's offset is not, and no
// record is marked whose output is not.

// TxnCommitOption tunes ExactlyOnce.
type TxnCommitOption func(*eosConfig)

// TxnEvery commits the open transaction every interval, or as soon as
// records records were processed in it, whichever comes first (0 records:
// on the interval only). The defaults are 200ms and 0. Commits also happen
// before a revoked partition is released, on Close, and on
// GroupConsumer.Commit.
func TxnEvery(interval time.Duration, records int) TxnCommitOption {
	return func(c *eosConfig) { c.interval, c.records = interval, records }
}

// ExactlyOnce ties a GroupConsumer's Run to the transactional producer p
// (made with TransactionalID): handlers produce their outputs with p
// (p.Produce, p.Send, ...; TxnProducer(ctx) returns it too) and never
// begin, commit or abort its transactions themselves. The consumer opens a
// transaction for the first record it hands out, commits it with the
// processed offsets (see TxnEvery), and aborts it when a handler fails,
// a produce fails or the commit fails: every partition that processed a
// record in the aborted transaction then goes back to its last committed
// offset and processes its records again, so nothing is skipped and no
// output is visible twice. Read the outputs with ReadCommitted.
//
// With Parallel, records finished out of order past a partition's
// committed prefix are committed in the same transaction as ranges in the
// offset's metadata (see doneRanges), so the next owner skips exactly the
// records whose outputs were committed; an abort takes each parallel lane
// back to its last committed offset and ranges.
//
// Not supported (NewGroupConsumer refuses them): OnHandlerError (a
// failure always aborts), a GroupPoller (use Producer.SendOffsetsToTxn),
// a producer that is not transactional. Handlers wrapped by the retry
// package must not use its retry topics: those are written by another
// producer, outside the transaction.
func ExactlyOnce(p *Producer, opts ...TxnCommitOption) GroupOption {
	return func(c *groupConfig) {
		e := &eosConfig{producer: p, interval: 200 * time.Millisecond, set: true}
		for _, o := range opts {
			o(e)
		}
		c.eos = e
	}
}

type eosConfig struct {
	producer *Producer
	interval time.Duration
	records  int
	set      bool
}

func (c *groupConfig) validateEOS(kind consumerKind, bad func(opt, problem, fix string)) {
	e := c.eos
	if e == nil {
		return
	}
	switch {
	case e.producer == nil:
		bad("ExactlyOnce", "nil producer", "pass a producer made with keel.TransactionalID")
	case e.producer.txn == nil:
		bad("ExactlyOnce", "the producer is not transactional", "make it with keel.TransactionalID(id)")
	}
	if kind != runKind {
		bad("ExactlyOnce", "given to a GroupPoller", "use Producer.SendOffsetsToTxn with GroupPoller.GroupMetadata")
	}
	if c.onError != nil {
		bad("ExactlyOnce", "with OnHandlerError", "drop OnHandlerError: a failed handler aborts the transaction and its records are processed again")
	}
	if e.interval <= 0 {
		bad("TxnEvery", fmt.Sprintf("interval %v", e.interval), "use a positive interval, e.g. 200ms")
	}
	if e.records < 0 {
		bad("TxnEvery", fmt.Sprintf("%d records", e.records), "use 0 for no record bound")
	}
}

type txnProducerKey struct{}

// TxnProducer returns the transactional producer of the ExactlyOnce
// consumer whose handler got ctx, or nil.
func TxnProducer(ctx context.Context) *Producer {
	p, _ := ctx.Value(txnProducerKey{}).(*Producer)
	return p
}

// eosCommitTimeout bounds one transactional commit (flush, offsets,
// EndTxn) when its caller's ctx is the short interval one.
const eosCommitTimeout = 30 * time.Second

// eosSession is the transaction state of one ExactlyOnce GroupConsumer.
type eosSession struct {
	c    *memberCore
	p    *Producer
	cfg  *eosConfig
	gate sync.RWMutex
	kick chan struct{} // a commit (or an abort) is due now

	openMu sync.Mutex
	open   atomic.Bool // a transaction is begun

	mu sync.Mutex
	// touched: the partitions that processed a record in the open
	// transaction, with the offset of their first: where an abort
	// rewinds them (their last committed position).
	touched map[TopicPartition]int64
	failure error // a handler or produce failed: the transaction aborts
	count   atomic.Int64
}

func newEOSSession(c *memberCore, cfg *eosConfig) *eosSession {
	return &eosSession{c: c, p: cfg.producer, cfg: cfg, kick: make(chan struct{}, 1), touched: map[TopicPartition]int64{}}
}

// enter is a handler call's start: it holds the gate shared until leave,
// and opens a transaction if none is. The caller then checks that its
// record is still wanted (an abort may have rewound its partition while
// it waited) and calls touch before the handler.
func (e *eosSession) enter() error {
	e.gate.RLock()
	if !e.open.Load() {
		e.openMu.Lock()
		if !e.open.Load() {
			if err := e.p.BeginTxn(); err != nil && !errors.Is(err, ErrTxnAlreadyOpen) {
				e.openMu.Unlock()
				e.gate.RUnlock()
				return fmt.Errorf("keel: ExactlyOnce: cannot begin a transaction: %w", err)
			}
			e.open.Store(true)
		}
		e.openMu.Unlock()
	}
	return nil
}

// touch records that tp processes its record at offset in the open
// transaction: the first one is where an abort rewinds tp to. Only a
// record about to be handled may touch: one given up after a rewind would
// make a later abort rewind past records it never covered.
func (e *eosSession) touch(tp TopicPartition, offset int64) {
	e.mu.Lock()
	if _, ok := e.touched[tp]; !ok {
		e.touched[tp] = offset
	}
	e.mu.Unlock()
}

// leave ends what enter began; processed says the record was marked.
func (e *eosSession) leave(processed bool) {
	e.gate.RUnlock()
	if processed && e.cfg.records > 0 && e.count.Add(1) >= int64(e.cfg.records) {
		e.due()
	}
}

// fail makes the open transaction abort at once.
func (e *eosSession) fail(err error) {
	e.mu.Lock()
	if e.failure == nil {
		e.failure = err
	}
	e.mu.Unlock()
	e.due()
}

func (e *eosSession) due() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// commit ends the open transaction, with the processed offsets of every
// partition this member owns and of pss (partitions being released, which
// the member no longer lists): committed if nothing failed, else aborted
// with the touched partitions rewound. Called under core.commitMu.
func (e *eosSession) commit(ctx context.Context, pss []*partitionState) error {
	e.gate.Lock()
	defer e.gate.Unlock()
	e.count.Store(0)
	if !e.open.Load() {
		return nil
	}
	c := e.c
	c.mu.Lock()
	all := make(map[TopicPartition]*partitionState, len(c.parts)+len(pss))
	for tp, ps := range c.parts {
		all[tp] = ps
	}
	for _, ps := range pss {
		all[ps.tp] = ps
	}
	// The metadata of each offset: the records after it processed
	// already (a parallel lane's out-of-order finishes, or ranges a
	// partition skips), committed with the outputs they produced.
	metas := make(map[TopicPartition]func(int64) string, len(all))
	lanes := make(map[TopicPartition]*parallelLane)
	var unfit []TopicPartition
	for tp, ps := range all {
		if pl, ok := ps.lane.(*parallelLane); ok {
			lanes[tp] = pl
			metas[tp] = func(committed int64) string {
				md, fit := pl.doneMetadataFit(committed)
				if !fit {
					unfit = append(unfit, tp)
				}
				return md
			}
			continue
		}
		metas[tp] = ps.metadataLocked()
	}
	c.mu.Unlock()
	e.mu.Lock()
	failure := e.failure
	e.mu.Unlock()
	if failure != nil {
		return e.abort(ctx, all, failure)
	}
	offsets := make(map[TopicPartition]txnOffset)
	sent := make(map[TopicPartition]group.Offset)
	for tp, ps := range all {
		o, ok := ps.marks.pending(metas[tp])
		if pl := lanes[tp]; pl != nil && !ok {
			o, ok = startWithDone(ps, pl, metas[tp])
		}
		if ok {
			offsets[tp] = txnOffset{at: o.At, metadata: o.Metadata}
			sent[tp] = o
		}
	}
	if len(unfit) > 0 {
		// Committing the offsets without some ranges would have the next
		// owner produce those records' outputs a second time.
		return e.abort(ctx, all, fmt.Errorf("the records of %v processed out of order do not fit in the commit metadata", unfit))
	}
	gen, id, inst := c.member.Generation()
	if hook := testhook.EOSMembership.Load(); hook != nil {
		m := (*hook)(testhook.Membership{Group: c.group, Generation: gen, MemberID: id})
		gen, id = m.Generation, m.MemberID
	}
	if gen < 0 || id == "" {
		// Between generations (expelled, fenced, rejoining). Brokers take
		// a TxnOffsetCommit with generation -1 and no member id as an
		// unfenced commit (the form from before KIP-447), so sending it
		// would commit offsets of partitions another member may own by
		// now. The outputs go with the offsets: abort both.
		return e.abort(ctx, all, errs.With(errs.ErrIllegalGeneration, fmt.Errorf(
			"keel: ExactlyOnce: group %q: the member is not in a generation (expelled or rejoining), so its transaction cannot commit offsets; its partitions are processed again from their committed offsets", c.group)))
	}
	gm := GroupMetadata{Group: c.group, Generation: gen, MemberID: id, InstanceID: inst}
	err := e.p.sendOffsetsToTxn(ctx, offsets, gm)
	if err == nil {
		err = e.p.CommitTxn(ctx)
	}
	if err != nil {
		aerr := e.abort(ctx, all, err)
		if memberGone(err) {
			// Expired or fenced behind our back: without a rejoin every
			// later transaction would be refused the same way.
			c.member.Fenced(gen, err)
		}
		return aerr
	}
	for tp, o := range sent {
		all[tp].marks.committed(o)
		all[tp].committedAt.Store(o.At)
	}
	c.countCommit(nil)
	c.client.logger.Debug("keel: ExactlyOnce: transaction committed", "group", c.group, "generation", gen, "offsets", offsets)
	e.finished()
	return nil
}

// finished forgets the ended transaction.
func (e *eosSession) finished() {
	e.open.Store(false)
	e.mu.Lock()
	clear(e.touched)
	e.failure = nil
	e.mu.Unlock()
}

// abort aborts the open transaction because of cause and rewinds every
// partition it touched to its last committed position (under the gate,
// so no handler runs meanwhile). A fenced producer fails the member: Run
// returns the error.
func (e *eosSession) abort(ctx context.Context, all map[TopicPartition]*partitionState, cause error) error {
	c := e.c
	c.client.logger.Warn("keel: ExactlyOnce: aborting the transaction; its partitions go back to their committed offsets", "group", c.group, "cause", cause)
	aerr := e.p.AbortTxn(ctx)
	if aerr != nil && !errors.Is(aerr, ErrTxnNotOpen) {
		if errors.Is(aerr, ErrFenced) || errors.Is(cause, ErrFenced) {
			c.failMember(fmt.Errorf("keel: ExactlyOnce: %w", aerr))
		}
		// The outputs are not committed either way: the coordinator
		// aborts the transaction when it times out or the id restarts.
	}
	e.mu.Lock()
	touched := make(map[TopicPartition]int64, len(e.touched))
	for tp, at := range e.touched {
		touched[tp] = at
	}
	e.mu.Unlock()
	c.client.logger.Debug("keel: ExactlyOnce: transaction aborted; rewinding", "group", c.group, "rewind", touched, "abortErr", aerr)
	for tp, at := range touched {
		ps := all[tp]
		if ps == nil {
			continue
		}
		c.mu.Lock()
		cur := ps.lane
		owned := c.parts[tp] == ps && !ps.leaving
		c.mu.Unlock()
		if pl, ok := cur.(*parallelLane); ok {
			e.rewindParallel(ps, pl, owned)
			continue
		}
		ps.marks.reset(at, -1)
		if !owned {
			continue // released: its next owner starts at the committed offset
		}
		if w, ok := cur.(*worker); !ok || w.requestSeek(at) != nil {
			// No lane runs the partition (between two Runs, or it
			// exited): the next lane starts at the committed offset.
			c.mu.Lock()
			if c.parts[tp] == ps && ps.lane == cur {
				ps.lane = nil
				c.seekLocked(ps, at)
			}
			c.mu.Unlock()
		}
	}
	e.finished()
	return fmt.Errorf("keel: ExactlyOnce: transaction aborted: %w", cause)
}

// startWithDone is what to commit for a parallel lane whose first record
// has not finished, so that it has no position yet, but records after it
// did, with their outputs in the transaction: the offset the lane started
// at, with them as its done ranges. Without it those outputs would be
// committed and their records processed again by the next owner.
func startWithDone(ps *partitionState, pl *parallelLane, md func(int64) string) (group.Offset, bool) {
	if _, ok := ps.marks.position(); ok {
		return group.Offset{}, false // pending said: nothing new
	}
	base, _, ok := pl.rewindPoint()
	if !ok {
		return group.Offset{}, false
	}
	o := group.Offset{At: base, Epoch: -1, Metadata: md(base)}
	if o.Metadata == "" {
		return group.Offset{}, false
	}
	if at, last, ok := ps.marks.lastCommitted(); ok && at == o.At && last == o.Metadata {
		return group.Offset{}, false
	}
	return o, true
}

// rewindParallel takes a parallel lane whose records were in an aborted
// transaction back to its partition's last committed offset, skipping the
// records after it that the commit's metadata says were processed (their
// outputs are committed): the records the aborted transaction finished,
// in or out of order, are processed again, and no other.
func (e *eosSession) rewindParallel(ps *partitionState, pl *parallelLane, owned bool) {
	at, done, fromCommit := ps.marks.lastCommitted()
	ok := fromCommit
	var skip doneRanges
	if ok {
		skip = decodeDoneRanges(done, at)
	} else if at, skip, ok = pl.rewindPoint(); !ok {
		return // it received no record: nothing of it was in the transaction
	}
	e.c.client.logger.Debug("keel: ExactlyOnce: rewinding a parallel lane", "group", e.c.group, "partition", ps.tp, "to", at, "skip", skip, "fromCommit", fromCommit, "owned", owned)
	if !owned {
		// Being released: its next owner starts at the committed offset,
		// and the release's commit must not claim more.
		pl.forget(at, skip)
		return
	}
	if pl.rewind(at, skip) != nil {
		// The lane exited (between two Runs): the next one starts there.
		pl.forget(at, skip)
		c := e.c
		c.mu.Lock()
		if c.parts[ps.tp] == ps && ps.lane == pl {
			ps.lane = nil
			c.seekLocked(ps, at)
			ps.skip = skip
		}
		c.mu.Unlock()
	}
}

// flushOutputs sends what the handlers produced and is still buffered,
// within ctx, before their ctx is cancelled (Close, revoke): records
// produced with a handler's ctx and cancelled before being sent would fail
// the commit that follows, which would then abort. Nothing without
// ExactlyOnce.
func (e *eosSession) flushOutputs(ctx context.Context) {
	if e == nil || !e.open.Load() {
		return
	}
	if err := e.p.Flush(ctx); err != nil {
		e.c.client.logger.Debug("keel: ExactlyOnce: flushing the outputs before the handlers' ctx ends", "group", e.c.group, "err", err)
	}
}

// kickC is the channel that says a transaction is due, nil without
// ExactlyOnce.
func (e *eosSession) kickC() <-chan struct{} {
	if e == nil {
		return nil
	}
	return e.kick
}

// memberGone reports a commit refused because the member is not in the
// generation it committed in any more (FENCED_INSTANCE_ID stays fatal).
func memberGone(err error) bool {
	switch errs.Code(err) {
	case errs.CodeUnknownMemberId, errs.CodeIllegalGeneration, errs.CodeFencedMemberEpoch:
		return true
	}
	return false
}
