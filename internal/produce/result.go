package produce

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
)

// An answer for a batch is handled in two steps under the partition's
// lock: classify says what the answer means (one action and its facts),
// apply carries the action out. What must happen without the lock — the
// reports, an epoch bump, a metadata refresh, a topic check — follows, in
// that order, from the verdict.

// action is what an answer asks of the partition.
type action uint8

const (
	// actDeliver: acknowledged, or already written (a duplicate).
	actDeliver action = iota
	// actRetry: resend the batch unchanged after a backoff.
	actRetry
	// actResequence: refused, not written, because of our numbers (an
	// earlier batch failed, or another partition moved the epoch):
	// resequence, then resend.
	actResequence
	// actBump: the broker lost our sequence state: move the producer to a
	// new epoch, resequence, resend.
	actBump
	// actSplit: over the topic's size limit: split the batch in two and
	// resend both (it was not written).
	actSplit
	// actFail: refused for good; records an INVALID_RECORD answer did not
	// name go back in, in their place.
	actFail
)

// verdict is an answer classified.
type verdict struct {
	act     action
	err     error
	unknown bool   // the attempt may have been written
	dup     bool   // delivered as a duplicate outside the broker's window: offsets unknown
	why     string // actBump: why the epoch moves
	refresh bool   // ask for fresh metadata
	check   bool   // make sure the topic still exists
}

// takeAnswerLocked takes b out of flight. It reports false when b was
// abandoned (reported while in flight): its answer no longer matters
// except for the count of batches in flight, and its buffer is free.
func (p *partState) takeAnswerLocked(b *batch) bool {
	p.inflight--
	if b.state == batchAbandoned {
		p.e().bufs.putWire(b.wire)
		b.wire = nil
		return false
	}
	b.state = batchSealed
	return true
}

// abandonAnswer drops b's answer (the producer is closing). written says
// whether its request went out, which leaves its outcome unknown.
func (p *partState) abandonAnswer(b *batch, written bool) {
	p.mu.Lock()
	if p.takeAnswerLocked(b) && written {
		b.unknown = true
	}
	p.mu.Unlock()
}

// retry handles a request that failed as a whole (not written, or no
// answer): b is resent unchanged after a backoff. written says whether the
// request reached the wire, in which case this attempt's outcome is
// unknown.
func (p *partState) retry(b *batch, cause error, written bool) {
	p.settle(b, func() verdict { return verdict{act: actRetry, err: cause, unknown: written} })
}

// encodeFailed fails b, which could not be encoded on its way out.
func (p *partState) encodeFailed(b *batch, err error) {
	p.settle(b, func() verdict {
		return verdict{act: actFail, err: &errs.Error{Detail: fmt.Sprintf("%s/%d: encoding the batch", p.t.name, p.id), Err: err}}
	})
}

// resolve applies the broker's answer for b.
func (p *partState) resolve(b *batch, broker string, pr kmsg.ProduceResponseTopicPartition) {
	p.settle(b, func() verdict { return p.classifyLocked(b, broker, pr) }, pr)
}

// settle takes b's answer, classified by classify under the lock, and
// applies it.
func (p *partState) settle(b *batch, classify func() verdict, answer ...kmsg.ProduceResponseTopicPartition) {
	e := p.e()
	p.mu.Lock()
	if !p.takeAnswerLocked(b) {
		p.mu.Unlock()
		return
	}
	v := classify()
	if p.gone != nil && v.act != actDeliver {
		// The topic was deleted: no retry can succeed.
		v = verdict{act: actFail, err: p.gone, unknown: b.unknown || v.unknown}
	}
	var pr kmsg.ProduceResponseTopicPartition
	if len(answer) > 0 {
		pr = answer[0]
	}
	epoch := p.applyLocked(b, v, pr)
	p.mu.Unlock()

	p.deliver()
	if v.act == actBump {
		e.idem.bump(epoch, v.why)
	}
	if v.refresh {
		e.meta.RefreshSoon()
	}
	if v.check {
		p.t.checkGone()
	}
}

// classifyLocked says what the broker's answer for b means.
func (p *partState) classifyLocked(b *batch, broker string, pr kmsg.ProduceResponseTopicPartition) verdict {
	idem := p.e().idem != nil
	code := pr.ErrorCode
	// A retry of a batch, sent before, comes back out of order while the
	// broker acknowledged sequences after it: the broker has moved past
	// it. If the broker held our sequence state before this batch (it
	// acknowledged an earlier one of this epoch), it stores sequences
	// only in order, so this batch was written and fell out of the
	// broker's duplicate window: a duplicate, delivered with its offset
	// unknown. Otherwise nothing proves it was written: a broker with no
	// state for a producer accepts any first sequence (KIP-360), so a
	// later batch may have been stored while this one was lost on the
	// way (a dropped connection). It fails, its outcome unknown; it was
	// once reported delivered, and a transaction committed without it.
	overtaken := code == errs.CodeOutOfOrderSequenceNumber && idem && b.unknown &&
		b.epoch == p.seq.epoch && p.seq.lastAcked >= 0 && seqAtOrBefore(addSeq(b.seq, b.count()-1), p.seq.lastAcked)
	dupOutsideWindow := overtaken && p.ackedBeforeLocked(b.seq)
	switch {
	case code == errs.CodeNone:
		return verdict{act: actDeliver}
	case code == errs.CodeDuplicateSequenceNumber || dupOutsideWindow:
		return verdict{act: actDeliver, dup: true}
	case overtaken:
		return verdict{act: actFail, unknown: true, err: &errs.Error{
			Detail: fmt.Sprintf("producing to %s/%d: the broker stored later records of this producer and refuses this batch as out of order; it may never have been written", p.t.name, p.id),
			Err:    errs.FromCode(code, broker, ""),
		}}
	}

	msg := ""
	if pr.ErrorMessage != nil {
		msg = *pr.ErrorMessage
	}
	err := errs.FromCode(code, broker, msg).(*errs.Error)
	err.Detail = fmt.Sprintf("producing to %s/%d", p.t.name, p.id)
	info := errs.Lookup(code)
	if p.e().txnal() && (code == errs.CodeInvalidProducerEpoch || code == errs.CodeProducerFenced || code == errs.CodeTransactionalIdAuthorizationFailed || code == errs.CodeInvalidTxnState) {
		// Another producer with the same transactional id moved the
		// epoch on (or the coordinator aborted the transaction): this
		// producer must not write again.
		if code != errs.CodeTransactionalIdAuthorizationFailed && code != errs.CodeInvalidTxnState {
			err.Err = ErrFenced
		}
		return verdict{act: actFail, err: err}
	}
	switch {
	case code == errs.CodeOutOfOrderSequenceNumber && idem:
		// The broker expected another sequence. If b is the first batch
		// after the last one acknowledged, the gap is real (the broker
		// lost data): start a new epoch. Otherwise an earlier batch
		// failed and b follows it back.
		if len(p.batches) > 0 && p.batches[0] == b && b.epoch == p.seq.epoch && p.seq.lastAcked >= 0 && b.seq == addSeq(p.seq.lastAcked, 1) {
			return verdict{act: actBump, err: err, why: fmt.Sprintf("%s/%d reported a sequence gap", p.t.name, p.id)}
		}
		return verdict{act: actRetry, err: err}
	case code == errs.CodeUnknownProducerId && idem:
		return verdict{act: actBump, err: err, why: fmt.Sprintf("%s/%d no longer knows the producer id", p.t.name, p.id)}
	case code == errs.CodeInvalidProducerEpoch && idem:
		// Another partition moved the producer to a newer epoch first;
		// this one follows (the batch was refused, so not written).
		return verdict{act: actResequence, err: err}
	case code == errs.CodeMessageTooLarge && b.count() > 1:
		return verdict{act: actSplit, err: err}
	case info.Retriable:
		return verdict{act: actRetry, err: err,
			unknown: code == errs.CodeRequestTimedOut || code == errs.CodeNotEnoughReplicasAfterAppend,
			refresh: info.Metadata,
			check:   code == errs.CodeUnknownTopicOrPartition}
	}
	return verdict{act: actFail, err: err}
}

// applyLocked carries out verdict v for b, whose answer (if any) is pr. It
// returns the epoch an actBump moves on from.
func (p *partState) applyLocked(b *batch, v verdict, pr kmsg.ProduceResponseTopicPartition) int16 {
	e := p.e()
	idem := e.idem != nil
	switch v.act {
	case actDeliver:
		if len(p.batches) > 0 && p.batches[0] == b {
			p.failing = false // the oldest batch is through: pipeline again
		}
		p.removeLocked(b)
		p.attempts = 0
		if idem && !v.dup {
			p.ackedLocked(b)
		}
		// Nothing sends b again: its buffer can carry the next batch.
		e.bufs.putWire(b.wire)
		b.wire = nil
		base, appendTime := pr.BaseOffset, pr.LogAppendTime
		if v.dup || e.cfg.Acks == 0 {
			base, appendTime = -1, -1
		}
		p.queueDeliveredLocked(b, base, appendTime)
	case actRetry:
		if v.unknown {
			b.unknown = true
		}
		p.backoffLocked(b, v.err)
	case actResequence, actBump:
		p.seq.reset = true
		p.backoffLocked(b, v.err)
	case actSplit:
		p.splitLocked(b)
		p.seq.reset = idem
		p.backoffLocked(b, v.err)
	case actFail:
		// These records were not written (or, with unknown, may have
		// been). The batches behind b, if any, were sequenced after it
		// and must be renumbered to close the gap.
		at := p.indexLocked(b)
		p.removeLocked(b)
		p.seq.reset = idem
		if v.unknown {
			b.unknown = true
		}
		p.failOrRequeueLocked(b, at, pr, v.err)
	}
	return p.seq.epoch
}

func (p *partState) backoffLocked(b *batch, cause error) {
	b.lastErr = cause
	p.failing = true
	p.attempts++
	d := p.e().cfg.RetryBackoff.Delay(p.attempts)
	p.retryAt = p.e().now() + int64(d)
	p.armLocked(d)
}

func (p *partState) indexLocked(b *batch) int {
	for i, x := range p.batches {
		if x == b {
			return i
		}
	}
	return len(p.batches)
}

// failOrRequeueLocked fails batch b, refused for good, which was at index
// at of the queue. With KIP-467 (INVALID_RECORD naming the bad records)
// only those fail: the others go back in at b's place, ahead of the
// records produced after them (issue 18: they used to join the end of
// the queue), carrying the failures along so that every record is
// reported in produce order.
func (p *partState) failOrRequeueLocked(b *batch, at int, pr kmsg.ProduceResponseTopicPartition, err error) {
	ke, _ := err.(*errs.Error)
	if pr.ErrorCode != errs.CodeInvalidRecord || len(pr.ErrorRecords) == 0 || ke == nil {
		p.queueBatchFailureLocked(b, err, b.unknown)
		return
	}
	bad := make(map[int32]string, len(pr.ErrorRecords))
	for _, re := range pr.ErrorRecords {
		m := ""
		if re.ErrorMessage != nil {
			m = *re.ErrorMessage
		}
		bad[re.RelativeOffset] = m
	}
	preset := make([]error, b.recs.Len())
	again := 0
	encoded := int32(0) // the relative offset of the next encoded record
	for i := range b.recs.Len() {
		if b.preset != nil && b.preset[i] != nil {
			preset[i] = b.preset[i]
			continue
		}
		if m, ok := bad[encoded]; ok {
			e := *ke
			e.Message = m
			preset[i] = &e
		} else {
			again++
		}
		encoded++
	}
	b.preset = preset
	if again == 0 {
		p.queueBatchFailureLocked(b, err, false)
		return
	}
	nb := p.rebuildLocked(&b.recs, 0, b.recs.Len(), preset, b)
	if nb == nil {
		p.queueBatchFailureLocked(b, err, false)
		return
	}
	p.batches = append(p.batches[:at], append([]*batch{nb}, p.batches[at:]...)...)
	p.e().bufs.putWire(b.wire)
	b.wire = nil
}

// rebuildLocked makes a sealed batch of records lo to hi of recs (with
// their preset failures, if any, one per record from lo), encoded now
// without producer numbers: it is resequenced in its queue position
// before it is sent. like gives its creation time and deadline. It
// returns nil if the records cannot be encoded. The records are copied
// into chunks of the new batch's own; recs is left as it is.
func (p *partState) rebuildLocked(recs *Recs, lo, hi int, preset []error, like *batch) *batch {
	e := p.e()
	nb := e.bufs.batch(p, hi-lo)
	nb.created, nb.deadline, nb.preset = like.created, like.deadline, preset
	encoded := int32(0)
	for i := range hi - lo {
		r := *recs.At(lo + i)
		if preset == nil || preset[i] == nil {
			if encoded == 0 {
				nb.firstTS = r.Record.Timestamp // the builder's base timestamp
			}
			r.size = int32(record.EncodedRecordLen(&r.Record, r.Record.Timestamp-nb.firstTS, encoded))
			nb.size += int(r.size)
			encoded++
		}
		nb.recs.push(&r, &e.bufs)
	}
	if encoded == 0 {
		e.bufs.putRecs(nb)
		return nil
	}
	if err := nb.encode(e.noProducerState()); err != nil {
		e.bufs.putRecs(nb)
		return nil
	}
	nb.state = batchSealed
	return nb
}

// splitLocked replaces b (refused as too large, so not written) by two
// batches of half its records each, sealed at once so that they keep their
// place in the sequence when the partition is resequenced.
func (p *partState) splitLocked(b *batch) {
	half := b.recs.Len() / 2
	var p1, p2 []error
	if b.preset != nil {
		p1, p2 = b.preset[:half], b.preset[half:]
	}
	first, second := p.rebuildLocked(&b.recs, 0, half, p1, b), p.rebuildLocked(&b.recs, half, b.recs.Len(), p2, b)
	if first == nil || second == nil {
		// Only preset failures on one side: b fails as too large on its
		// retry.
		for _, nb := range []*batch{first, second} {
			if nb != nil {
				p.e().bufs.putRecs(nb)
			}
		}
		return
	}
	for i, x := range p.batches {
		if x == b {
			p.batches = append(p.batches[:i], append([]*batch{first, second}, p.batches[i+1:]...)...)
			p.e().bufs.putWire(b.wire)
			b.wire = nil
			return
		}
	}
}
