package produce

import (
	"context"
	"fmt"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
)

// TxnHooks make the engine a transactional producer. The transaction
// state machine (coordinator, Begin/Commit/Abort) lives above the engine;
// the engine only needs three things from it: the producer id comes from
// InitProducerId with the transactional id, a partition must be added to
// the open transaction before its first batch of that transaction is
// sent, and batches carry the transactional attribute and the
// transactional id.
type TxnHooks struct {
	ID string
	// InitProducerID replaces the idempotent InitProducerId.
	InitProducerID func(ctx context.Context) (pid int64, epoch int16, err error)
	// AddPartitions is called by a sink before it sends a request, with
	// the partitions of that request (one call per request, not per
	// record). It returns when they are all part of the open transaction,
	// or with the error that fails their batches (not written).
	AddPartitions func(ctx context.Context, parts []TopicPartition) error
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// ErrFenced is the cause of records refused because a newer producer with
// the same transactional id took over (or the coordinator aborted the
// transaction and moved the epoch on).
var ErrFenced = errs.NewSentinel("keel: producer fenced: a newer producer with the same transactional id took over, or the transaction timed out at the coordinator", false)

func (e *Engine) txnal() bool { return e.cfg.Txn != nil }

// noProducerState is the producer state a batch is encoded with before it
// is sequenced.
func (e *Engine) noProducerState() record.ProducerState {
	ps := record.NoProducer
	ps.Transactional = e.txnal()
	return ps
}

// addToTxn makes the partitions of batches part of the open transaction;
// the batches that cannot be sent fail (not written) and are dropped from
// the list.
func (s *sink) addToTxn(batches []*batch) []*batch {
	e := s.e
	parts := make([]TopicPartition, 0, len(batches))
	for _, b := range batches {
		parts = append(parts, TopicPartition{b.p.t.name, b.p.id})
	}
	err := e.cfg.Txn.AddPartitions(e.ctx, parts)
	if err == nil {
		return batches
	}
	for _, b := range batches {
		b.p.notSent(b, err)
	}
	return nil
}

// notSent fails b, which was taken to be sent and was not: its partition
// could not join the transaction.
func (p *partState) notSent(b *batch, err error) {
	p.settle(b, func() verdict {
		return verdict{act: actFail, err: &errs.Error{Detail: fmt.Sprintf("%s/%d: adding the partition to the transaction", p.t.name, p.id), Err: err}}
	})
}

// FailUnsent fails every record not in flight with err (an abort: records
// not sent yet are not written; a batch that was sent before may have been
// written, and the abort marker covers it).
func (e *Engine) FailUnsent(err error) {
	for _, t := range e.allTopics() {
		for _, p := range t.partitions() {
			p.failUnsent(err)
		}
	}
}

// ResetProducerID forgets the producer id and epoch: the next send asks
// for them again (Config.Txn.InitProducerID), and every partition then
// restarts its sequences under the new epoch. Call it with nothing in
// flight (after an abort).
func (e *Engine) ResetProducerID() {
	if e.idem == nil {
		return
	}
	e.idem.mu.Lock()
	e.idem.ready = false
	e.idem.mu.Unlock()
	for _, t := range e.allTopics() {
		for _, p := range t.partitions() {
			p.mu.Lock()
			p.seq.reset = true
			p.mu.Unlock()
		}
	}
}

// ProducerID returns the producer id and epoch, ok false while unknown.
func (e *Engine) ProducerID() (pid int64, epoch int16, ok bool) {
	if e.idem == nil {
		return -1, -1, false
	}
	return e.idem.current()
}

// EnsureProducerID starts fetching the producer id if it is not known.
func (e *Engine) EnsureProducerID() {
	if e.idem != nil {
		e.idem.ensure()
	}
}
