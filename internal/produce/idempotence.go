package produce

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/internal/wait"
)

// Idempotence has two halves: the producer id and epoch, shared by every
// partition (idempotence), and each partition's sequence numbers under
// that epoch (seqState, guarded by its partition's lock). The rules below
// were learned the hard way (docs/STATUS.md, "Design decisions"):
//
//   - A failed batch is resent byte for byte, alone, until it is
//     acknowledged: pipelining the batches behind it let them be
//     acknowledged first and pushed it out of the broker's five-batch
//     duplicate window.
//   - Epoch bumps (KIP-360) are producer-wide; a partition adopts the new
//     epoch only when nothing of it is in flight, and its sequences then
//     restart at 0.
//   - A batch whose outcome is unknown is never resent under other
//     (epoch, sequence) numbers: that would duplicate it if it was
//     written. It is settled under its own numbers when the broker still
//     accepts them (another partition bumped the epoch), and otherwise
//     fails as OutcomeUnknown.

// idempotence holds the producer id and epoch. The id comes from
// InitProducerId on first use; the epoch is bumped locally (KIP-360) when
// a partition's sequence state became unknown, and every partition moves to
// the new epoch, sequences from 0, at its next quiet moment (nothing in
// flight), as the Java client does.
type idempotence struct {
	e *Engine

	mu      sync.Mutex
	pid     int64
	epoch   int16
	ready   bool
	loading bool
}

func newIdempotence(e *Engine) *idempotence { return &idempotence{e: e, pid: -1, epoch: -1} }

// current returns the producer id and epoch, or ok false while unknown.
func (i *idempotence) current() (pid int64, epoch int16, ok bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.pid, i.epoch, i.ready
}

// stale reports whether pid and epoch, read earlier, are no longer the
// producer id and epoch to send with.
func (i *idempotence) stale(pid int64, epoch int16) bool {
	cur, curEpoch, ok := i.current()
	return !ok || cur != pid || curEpoch != epoch
}

// ensure starts fetching a producer id if none is known or being fetched.
func (i *idempotence) ensure() {
	i.mu.Lock()
	if i.ready || i.loading || i.e.isClosing() {
		i.mu.Unlock()
		return
	}
	i.loading = true
	i.mu.Unlock()
	if !i.e.goStart(i.load) {
		i.mu.Lock()
		i.loading = false
		i.mu.Unlock()
	}
}

// bump moves the producer to the next epoch unless another partition has
// already moved it past from. At the last epoch a new producer id is
// fetched instead.
func (i *idempotence) bump(from int16, why string) {
	if i.e.txnal() {
		// The transaction coordinator owns a transactional producer's
		// epoch: the transaction must be aborted, and the abort moves
		// the producer to a new epoch (KIP-360).
		i.e.cfg.Warn("the open transaction must be aborted: "+why, nil)
		return
	}
	i.mu.Lock()
	if !i.ready || i.epoch != from {
		i.mu.Unlock()
		return
	}
	if i.epoch == math.MaxInt16 {
		i.ready = false
		i.mu.Unlock()
		i.e.cfg.Warn("producer epoch exhausted; asking for a new producer id ("+why+")", nil)
		i.ensure()
		return
	}
	i.epoch++
	epoch := i.epoch
	i.mu.Unlock()
	i.e.cfg.Warn(fmt.Sprintf("bumping producer epoch to %d: %s", epoch, why), nil)
}

// load asks for a producer id, retrying what may pass (no broker answers,
// the coordinator moves) with backoff. A refusal that retrying cannot
// change — the principal may not write idempotently
// (CLUSTER_AUTHORIZATION_FAILED), the broker does not support it — fails
// every record waiting to be sent with that cause at once (issue 18: it
// was retried until the records' delivery timeout, which then hid the
// cause); records produced later ask again.
func (i *idempotence) load() {
	e := i.e
	var pid int64
	var epoch int16
	err := wait.Retry(e.ctx, e.cfg.RetryBackoff, 0, func(attempt int) (bool, error) {
		var err error
		pid, epoch, err = i.initProducerID(e.ctx)
		switch {
		case err == nil:
			return true, nil
		case e.isClosing() || permanent(err):
			return true, err
		}
		e.cfg.Warn("InitProducerId failed; retrying", err)
		return false, err
	})
	i.mu.Lock()
	i.loading = false
	if err == nil {
		i.pid, i.epoch, i.ready = pid, epoch, true
	}
	i.mu.Unlock()
	switch {
	case err == nil:
		for _, s := range e.allSinks() {
			s.maybeDrain()
		}
	case !e.isClosing():
		e.cfg.Warn("InitProducerId refused; failing the records waiting to be sent", err)
		for _, t := range e.allTopics() {
			for _, p := range t.partitions() {
				p.failUnsent(err)
			}
		}
	}
}

// permanent reports whether err is a refusal no retry can change.
func permanent(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return !errs.IsRetriable(err)
}

func (i *idempotence) initProducerID(ctx context.Context) (int64, int16, error) {
	e := i.e
	if e.txnal() {
		return e.cfg.Txn.InitProducerID(ctx)
	}
	snap, err := e.meta.Snapshot(ctx)
	if err != nil {
		return 0, 0, err
	}
	var lastErr error = &errs.Error{Detail: "no broker known to ask for a producer id", Err: errs.ErrBrokerUnreachable, Retriable: true}
	for _, b := range snap.Brokers {
		c, err := e.pool.Get(ctx, b.Addr(), conn.General)
		if err != nil {
			lastErr = err
			continue
		}
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionTimeoutMillis = -1
		req.ProducerID = -1
		req.ProducerEpoch = -1
		resp, err := c.Request(ctx, req)
		if err != nil {
			lastErr = err
			continue
		}
		r := resp.(*kmsg.InitProducerIDResponse)
		if r.ErrorCode != errs.CodeNone {
			e := errs.FromCode(r.ErrorCode, b.Addr(), "").(*errs.Error)
			e.Detail = "InitProducerId for the idempotent producer"
			if r.ErrorCode == errs.CodeClusterAuthorizationFailed {
				e.Detail += " refused: an idempotent producer needs WRITE on some topic or IDEMPOTENT_WRITE on the cluster (or Idempotence(false))"
			}
			return 0, 0, e
		}
		return r.ProducerID, r.ProducerEpoch, nil
	}
	return 0, 0, lastErr
}

// seqState is one partition's idempotence state: the epoch its sequences
// belong to, the next sequence to assign, and the first and last ones the
// broker acknowledged in that epoch. Guarded by the partition's lock.
type seqState struct {
	epoch   int16
	nextSeq int32
	// firstAcked: the lowest sequence acknowledged in this epoch (-1
	// none). From then on the broker holds our state here and stores
	// only sequences that follow on; before it, it may have accepted a
	// later batch while an earlier one was lost (see classifyLocked).
	firstAcked int32
	lastAcked  int32
	reset      bool // resequence the queue before sending more
}

func newSeqState() seqState { return seqState{epoch: -1, firstAcked: -1, lastAcked: -1} }

// sequenceLocked gives batch b, sealed on its way out, the next sequence
// numbers and returns the producer state to encode it with.
func (p *partState) sequenceLocked(b *batch, pid int64) record.ProducerState {
	b.pid, b.epoch, b.seq = pid, p.seq.epoch, p.seq.nextSeq
	p.seq.nextSeq = addSeq(p.seq.nextSeq, b.count())
	return b.producerState()
}

// ackedLocked records that the broker acknowledged batch b.
func (p *partState) ackedLocked(b *batch) {
	if b.epoch != p.seq.epoch {
		return
	}
	if p.seq.firstAcked < 0 || seqAtOrBefore(b.seq, p.seq.firstAcked) {
		p.seq.firstAcked = b.seq
	}
	p.seq.lastAcked = addSeq(b.seq, b.count()-1)
}

// ackedBeforeLocked reports whether the broker acknowledged a batch of
// this epoch whose sequences come before seq: it held our sequence state
// before seq, so nothing after seq can have been stored without seq.
func (p *partState) ackedBeforeLocked(seq int32) bool {
	return p.seq.firstAcked >= 0 && !seqAtOrBefore(seq, p.seq.firstAcked)
}

// settlingUnknownLocked reports whether the partition keeps its current
// epoch for now although the producer moved to a newer one: a batch of
// this epoch may already be written (its answer was lost), and only a
// resend under its own numbers can settle that without a duplicate.
// Another partition's trouble bumped the epoch, not this one's (reset is
// false), so the broker still accepts this epoch here: the broker keeps
// producer state per partition. Once those batches are answered the
// partition adopts the new epoch. If the broker refuses the old epoch
// after all, the answer sets reset and the batch fails as OutcomeUnknown.
func (p *partState) settlingUnknownLocked() bool {
	if p.seq.reset || p.seq.epoch < 0 {
		return false
	}
	for _, b := range p.batches {
		if b.state == batchSealed && b.unknown && b.epoch == p.seq.epoch {
			return true
		}
	}
	return false
}

// addSeq advances a sequence number; sequences wrap to 0 after MaxInt32.
func addSeq(seq int32, n int) int32 {
	return int32((int64(seq) + int64(n)) % (1 << 31))
}

// seqAtOrBefore reports whether sequence a is at or before b, allowing for
// wrap-around (sequences are compared within half the range).
func seqAtOrBefore(a, b int32) bool {
	d := (int64(b) - int64(a) + (1 << 31)) % (1 << 31)
	return d < 1<<30
}

// resequenceLocked gives the queued batches new sequence numbers, in queue
// order. It runs with nothing in flight, after an epoch bump (sequences
// restart at 0) or after a batch failed for good and left a gap (sequences
// continue after the last acknowledged one). A batch that may already be
// written (its last attempt's outcome is unknown) must never go out again
// under other numbers — the broker would store it twice — so unless its
// numbers stay the same it fails now with its outcome unknown.
func (p *partState) resequenceLocked(pid int64, epoch int16) {
	if p.seq.epoch != epoch {
		p.seq.epoch = epoch
		p.seq.firstAcked, p.seq.lastAcked = -1, -1
	}
	seq := int32(0)
	if p.seq.lastAcked >= 0 {
		seq = addSeq(p.seq.lastAcked, 1)
	}
	kept := p.batches[:0]
	for _, b := range p.batches {
		if b.state == batchOpen {
			kept = append(kept, b) // sequenced when sealed, in queue order
			continue
		}
		if b.unknown && (b.epoch != epoch || b.seq != seq) {
			p.queueBatchFailureLocked(b, &errs.Error{
				Detail: fmt.Sprintf("%s/%d: an attempt may have been written and the producer had to move to new sequence numbers; not resending, to avoid a duplicate", p.t.name, p.id),
				Err:    b.lastErr,
			}, true)
			continue
		}
		b.pid, b.epoch, b.seq = pid, epoch, seq
		if b.wire != nil { // else encoded, with these numbers, when sent
			record.SetProducer(b.wire, pid, epoch, seq)
		}
		seq = addSeq(seq, b.count())
		kept = append(kept, b)
	}
	clear(p.batches[len(kept):])
	p.batches = kept
	p.seq.nextSeq = seq
	p.seq.reset = false
}

// failUnsent fails the batches not in flight: InitProducerId was refused,
// so nothing can be sent (a batch sent before under another producer id
// may have been written: its outcome is unknown).
func (p *partState) failUnsent(err error) {
	p.mu.Lock()
	kept := p.batches[:0]
	for _, b := range p.batches {
		if b.state == batchInFlight {
			kept = append(kept, b)
			continue
		}
		p.queueBatchFailureLocked(b, err, b.unknown)
	}
	clear(p.batches[len(kept):])
	p.batches = kept
	p.mu.Unlock()
	p.deliver()
}
