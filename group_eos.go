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
// Not supported (NewGroupConsumer refuses them): Parallel (out-of-order
// completions cannot be committed transactionally yet), OnHandlerError (a
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
	if c.parallelSet {
		bad("ExactlyOnce", "with Parallel", "drop Parallel: exactly-once Run processes each partition in order (see docs/TRANSACTIONS.md)")
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
	c.mu.Unlock()
	e.mu.Lock()
	failure := e.failure
	e.mu.Unlock()
	if failure != nil {
		return e.abort(ctx, all, failure)
	}
	offsets := make(map[TopicPartition]int64)
	sent := make(map[TopicPartition]group.Offset)
	for tp, ps := range all {
		if o, ok := ps.marks.pending(nil); ok {
			offsets[tp] = o.At
			sent[tp] = o
		}
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
	err := e.p.SendOffsetsToTxn(ctx, offsets, gm)
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
		ps.marks.reset(at, -1)
		c.mu.Lock()
		cur := ps.lane
		owned := c.parts[tp] == ps && !ps.leaving
		c.mu.Unlock()
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
