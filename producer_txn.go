package keel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/internal/produce"
	"github.com/keel-go/keel/internal/wait"
)

// Transaction errors. A transaction goes wrong in one of three ways, as in
// the Java client: abortable (a record failed: CommitTxn refuses, AbortTxn
// and carry on), fatal (ErrFenced: the producer does nothing more; make a
// new one), or an unclear end (ctx ended during CommitTxn's EndTxn: call
// CommitTxn again to learn the outcome).
var (
	// ErrFenced: a newer producer with the same transactional id took
	// over (or the coordinator aborted a transaction that outlived
	// TransactionTimeout). The producer refuses further work.
	ErrFenced = produce.ErrFenced
	// ErrNotTransactional: a transaction method on a producer without
	// TransactionalID.
	ErrNotTransactional = errs.NewSentinel("keel: producer has no TransactionalID", false)
	// ErrTxnNotOpen: produce, commit or abort with no transaction begun
	// (or BeginTxn with one already open).
	ErrTxnNotOpen = errs.NewSentinel("keel: no transaction open (call BeginTxn first)", false)
	// ErrTxnAlreadyOpen: BeginTxn with a transaction already open.
	ErrTxnAlreadyOpen = errs.NewSentinel("keel: a transaction is already open", false)
	// ErrTxnMustAbort: a record of the transaction failed, so it cannot
	// be committed; AbortTxn, then begin the next one.
	ErrTxnMustAbort = errs.NewSentinel("keel: the transaction cannot be committed: abort it", false)
	// ErrTxnAborted is the cause of records still buffered when their
	// transaction was aborted (NotWritten).
	ErrTxnAborted = errs.NewSentinel("keel: the record's transaction was aborted", false)
)

// txnState is a transactional producer's state machine. gate orders
// records against the ends of transactions: produce holds it shared from
// the state check to the engine taking the record, CommitTxn and AbortTxn
// take it exclusively to close the transaction to new records, so every
// record of a transaction is in the flush that ends it.
type txnState struct {
	p       *Producer
	id      string
	timeout time.Duration

	gate    sync.RWMutex
	open    bool // between BeginTxn and the end of CommitTxn/AbortTxn
	closing bool // CommitTxn or AbortTxn under way: records are refused

	mu      sync.Mutex
	fatal   error
	failed  int     // records of the open transaction that failed
	samples []error // the first few of those failures

	addMu      sync.Mutex
	added      map[produce.TopicPartition]bool // partitions in the open transaction
	coordKnows bool                            // the coordinator has an open transaction of ours
}

func newTxnState(p *Producer, id string, timeout time.Duration) *txnState {
	return &txnState{p: p, id: id, timeout: timeout, added: map[produce.TopicPartition]bool{}}
}

func (t *txnState) hooks() *produce.TxnHooks {
	return &produce.TxnHooks{ID: t.id, InitProducerID: t.initProducerID, AddPartitions: t.addPartitions}
}

func (t *txnState) fatalErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fatal
}

func (t *txnState) setFatal(err error) {
	t.mu.Lock()
	if t.fatal == nil {
		t.fatal = fmt.Errorf("keel: transactional producer %q is fenced and does nothing more: %w", t.id, err)
	}
	t.mu.Unlock()
}

// recordFailed notes a failed record of the open transaction.
func (t *txnState) recordFailed(err error) {
	if errors.Is(err, ErrFenced) {
		t.setFatal(err)
	}
	t.mu.Lock()
	t.failed++
	if len(t.samples) < 3 {
		t.samples = append(t.samples, err)
	}
	t.mu.Unlock()
}

// refuse says why a record cannot join a transaction now, or nil. Called
// with gate held shared.
func (t *txnState) refuse() error {
	if err := t.fatalErr(); err != nil {
		return err
	}
	if !t.open || t.closing {
		return ErrTxnNotOpen
	}
	return nil
}

// BeginTxn opens a transaction: records produced until CommitTxn or
// AbortTxn belong to it. It does not talk to the broker (the producer id
// is fetched, fencing older instances with the same id, before the first
// record is sent; the coordinator learns of the transaction with its first
// partition).
func (p *Producer) BeginTxn() error {
	t := p.txn
	if t == nil {
		return ErrNotTransactional
	}
	t.gate.Lock()
	defer t.gate.Unlock()
	if err := t.fatalErr(); err != nil {
		return err
	}
	if p.closed.Load() {
		return ErrProducerClosed
	}
	if t.open {
		return ErrTxnAlreadyOpen
	}
	t.open, t.closing = true, false
	t.mu.Lock()
	t.failed, t.samples = 0, nil
	t.mu.Unlock()
	p.engine.EnsureProducerID()
	return nil
}

// CommitTxn flushes the transaction's records, waits for every outcome and
// commits it. If any record failed, nothing is committed: the error
// matches ErrTxnMustAbort, names the failures, and the transaction must
// be aborted. If ctx ends while flushing, the transaction stays open
// (commit again or abort); if it ends during the commit request itself,
// the outcome is unknown until CommitTxn is called again, which resends
// it. Fenced: ErrFenced.
func (p *Producer) CommitTxn(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("Producer.CommitTxn")
	}
	t := p.txn
	if t == nil {
		return ErrNotTransactional
	}
	if err := t.close(); err != nil {
		return err
	}
	if err := p.engine.Flush(ctx); err != nil {
		t.reopen()
		return fmt.Errorf("keel: commit: waiting for the transaction's records: %w (the transaction is still open: commit again or abort)", err)
	}
	t.mu.Lock()
	failed, samples, fatal := t.failed, t.samples, t.fatal
	t.mu.Unlock()
	if fatal != nil {
		return fatal
	}
	if failed > 0 {
		t.reopen()
		return fmt.Errorf("%w: %d of its records failed, e.g. %w", ErrTxnMustAbort, failed, errors.Join(samples...))
	}
	if err := t.end(ctx, true); err != nil {
		if !errors.Is(err, ErrFenced) {
			t.reopen()
		}
		return fmt.Errorf("keel: commit: %w", err)
	}
	t.finish()
	return nil
}

// AbortTxn aborts the open transaction: records not sent yet fail with
// ErrTxnAborted (NotWritten), the ones in flight are waited for, and the
// coordinator writes abort markers, so read_committed readers never see
// any of them. The producer then moves to a new epoch (KIP-360) and the
// next transaction starts clean.
func (p *Producer) AbortTxn(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("Producer.AbortTxn")
	}
	t := p.txn
	if t == nil {
		return ErrNotTransactional
	}
	if err := t.close(); err != nil {
		return err
	}
	p.engine.FailUnsent(ErrTxnAborted)
	if err := p.engine.Flush(ctx); err != nil {
		t.reopen()
		return fmt.Errorf("keel: abort: waiting for the records in flight: %w (abort again)", err)
	}
	if err := t.fatalErr(); err != nil {
		return err
	}
	if err := t.end(ctx, false); err != nil {
		if !errors.Is(err, ErrFenced) {
			t.reopen()
		}
		return fmt.Errorf("keel: abort: %w", err)
	}
	// Failed records may have left our sequences unknown to us: a new
	// epoch restarts them (the next send asks for it).
	p.engine.ResetProducerID()
	t.finish()
	return nil
}

// InTxn runs fn inside a transaction: BeginTxn, fn, then CommitTxn if fn
// returned nil, else AbortTxn. The error joins fn's and the end's.
func (p *Producer) InTxn(ctx context.Context, fn func(ctx context.Context) error) error {
	if ctx == nil {
		return errs.NilContext("Producer.InTxn")
	}
	if err := p.BeginTxn(); err != nil {
		return err
	}
	if err := fn(ctx); err != nil {
		if aerr := p.AbortTxn(ctx); aerr != nil {
			return errors.Join(err, aerr)
		}
		return err
	}
	if err := p.CommitTxn(ctx); err != nil {
		if errors.Is(err, ErrTxnMustAbort) {
			if aerr := p.AbortTxn(ctx); aerr != nil {
				return errors.Join(err, aerr)
			}
		}
		return err
	}
	return nil
}

// close shuts the open transaction to new records.
func (t *txnState) close() error {
	t.gate.Lock()
	defer t.gate.Unlock()
	if err := t.fatalErr(); err != nil {
		return err
	}
	if !t.open {
		return ErrTxnNotOpen
	}
	t.closing = true
	return nil
}

// reopen lets the transaction take records again after an end that did
// not happen.
func (t *txnState) reopen() {
	t.gate.Lock()
	t.closing = false
	t.gate.Unlock()
}

// finish forgets the transaction that just ended.
func (t *txnState) finish() {
	t.addMu.Lock()
	clear(t.added)
	t.coordKnows = false
	t.addMu.Unlock()
	t.mu.Lock()
	t.failed, t.samples = 0, nil
	t.mu.Unlock()
	t.gate.Lock()
	t.open, t.closing = false, false
	t.gate.Unlock()
}

// end sends EndTxn, unless the coordinator never heard of the
// transaction (no partition was added).
func (t *txnState) end(ctx context.Context, commit bool) error {
	t.addMu.Lock()
	knows := t.coordKnows
	t.addMu.Unlock()
	if !knows {
		return nil
	}
	pid, epoch, ok := t.p.engine.ProducerID()
	if !ok {
		return fmt.Errorf("keel: no producer id to end the transaction with")
	}
	return t.coordinatorCall(ctx, "EndTxn", func() kmsg.Request {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = t.id, pid, epoch, commit
		return req
	}, func(r kmsg.Response) int16 { return r.(*kmsg.EndTxnResponse).ErrorCode })
}

// initProducerID asks the coordinator for the producer id of the
// transactional id: the coordinator bumps its epoch, which fences every
// older producer with the id and aborts its open transaction.
func (t *txnState) initProducerID(ctx context.Context) (int64, int16, error) {
	var pid int64
	var epoch int16
	err := t.coordinatorCall(ctx, "InitProducerId", func() kmsg.Request {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = &t.id
		req.TransactionTimeoutMillis = int32(t.timeout / time.Millisecond)
		req.ProducerID, req.ProducerEpoch = -1, -1
		return req
	}, func(r kmsg.Response) int16 {
		resp := r.(*kmsg.InitProducerIDResponse)
		pid, epoch = resp.ProducerID, resp.ProducerEpoch
		return resp.ErrorCode
	})
	if err != nil && errors.Is(err, ErrFenced) {
		t.setFatal(err)
	}
	return pid, epoch, err
}

// addPartitions adds the partitions of one produce request that are new
// to the transaction, in one AddPartitionsToTxn.
func (t *txnState) addPartitions(ctx context.Context, parts []produce.TopicPartition) error {
	t.addMu.Lock()
	defer t.addMu.Unlock()
	byTopic := map[string][]int32{}
	var missing []produce.TopicPartition
	for _, tp := range parts {
		if !t.added[tp] {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
			missing = append(missing, tp)
			t.added[tp] = true // deduplicates within this call; undone on failure
		}
	}
	if len(missing) == 0 {
		return nil
	}
	pid, epoch, _ := t.p.engine.ProducerID()
	ctx, cancel := context.WithTimeout(ctx, t.p.cfg.deliveryTimeout)
	defer cancel()
	err := t.coordinatorCall(ctx, "AddPartitionsToTxn", func() kmsg.Request {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = t.id, pid, epoch
		for topic, ps := range byTopic {
			rt := kmsg.NewAddPartitionsToTxnRequestTopic()
			rt.Topic, rt.Partitions = topic, ps
			req.Topics = append(req.Topics, rt)
		}
		return req
	}, func(r kmsg.Response) int16 {
		var first int16
		for _, rt := range r.(*kmsg.AddPartitionsToTxnResponse).Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != 0 && (first == 0 || first == errs.CodeOperationNotAttempted) {
					first = rp.ErrorCode
				}
			}
		}
		return first
	})
	if err != nil {
		for _, tp := range missing {
			delete(t.added, tp)
		}
		if errors.Is(err, ErrFenced) {
			t.setFatal(err)
		}
		return err
	}
	t.coordKnows = true
	return nil
}

// coordinatorCall sends a request built by build to the transaction
// coordinator and reads its error code with code, retrying what may pass
// (the coordinator moved or is loading, a concurrent transaction is still
// ending, connections failed) under ctx; a closed client ends it with
// ErrClosed. Fencing codes come back matching
// ErrFenced.
func (t *txnState) coordinatorCall(ctx context.Context, what string, build func() kmsg.Request, code func(kmsg.Response) int16) error {
	c := t.p.client
	backoff := wait.Backoff{Min: 20 * time.Millisecond, Max: time.Second}
	return wait.Retry(ctx, backoff, 0, func(attempt int) (bool, error) {
		done, err := t.coordinatorCallOnce(ctx, what, build, code)
		if !done {
			c.logger.Debug("keel: transaction coordinator call failed; retrying", "call", what, "transactional_id", t.id, "attempt", attempt, "err", err)
		}
		return done, err
	})
}

// coordinatorCallOnce is one attempt of coordinatorCall: done says not to
// retry.
func (t *txnState) coordinatorCallOnce(ctx context.Context, what string, build func() kmsg.Request, code func(kmsg.Response) int16) (bool, error) {
	c := t.p.client
	b, err := c.meta.Coordinator(ctx, meta.TxnCoordinator, t.id)
	if err != nil {
		return ctx.Err() != nil || !errs.IsRetriable(err), err
	}
	cn, err := c.pool.Get(ctx, b.Addr(), conn.General)
	if err != nil {
		// A closed client's pool will not reopen: retrying it
		// only waits for ctx.
		return ctx.Err() != nil || errors.Is(err, errs.ErrClosed), err
	}
	resp, err := cn.Request(ctx, build())
	if err != nil {
		return ctx.Err() != nil || errors.Is(err, errs.ErrClosed), err
	}
	ec := code(resp)
	if ec == errs.CodeNone {
		return true, nil
	}
	kerr := errs.FromCode(ec, b.Addr(), "").(*errs.Error)
	kerr.Detail = fmt.Sprintf("%s for transactional id %q", what, t.id)
	switch ec {
	case errs.CodeProducerFenced, errs.CodeInvalidProducerEpoch, errs.CodeTransactionCoordinatorFenced:
		kerr.Err = ErrFenced
		return true, kerr
	case errs.CodeNotCoordinator, errs.CodeCoordinatorNotAvailable:
		c.meta.InvalidateCoordinator(meta.TxnCoordinator, t.id)
		return false, kerr
	case errs.CodeCoordinatorLoadInProgress, errs.CodeConcurrentTransactions:
		return false, kerr
	}
	return !kerr.Retriable, kerr
}
