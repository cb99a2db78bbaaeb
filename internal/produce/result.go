package produce

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
)

// Codes that need more than "retry" or "fail".
const (
	codeMessageTooLarge     = 10
	codeNotEnoughAfter      = 20 // NOT_ENOUGH_REPLICAS_AFTER_APPEND: written
	codeRequestTimedOut     = 7  // may have been written
	codeOutOfOrderSequence  = 45
	codeDuplicateSequence   = 46
	codeInvalidProducerEpch = 47
	codeUnknownProducerID   = 59
	codeInvalidRecord       = 87
)

// takeAnswerLocked marks b as answered. It reports false when b was
// abandoned (expired or closed while in flight): its answer no longer
// matters except for the count of batches in flight.
func (p *partState) takeAnswerLocked(b *batch) bool {
	b.inflight = false
	p.inflight--
	return !b.abandoned
}

// abandonAnswer drops b's answer (the producer is closing). written says
// whether its request went out, which leaves its outcome unknown.
func (p *partState) abandonAnswer(b *batch, written bool) {
	p.mu.Lock()
	b.inflight = false
	p.inflight--
	if written {
		b.unknown = true
	}
	p.mu.Unlock()
}

// retry puts b back to be sent again, unchanged, after a backoff. written
// says whether the request reached the wire, in which case the outcome of
// this attempt is unknown.
func (p *partState) retry(b *batch, cause error, written bool) {
	p.mu.Lock()
	if !p.takeAnswerLocked(b) {
		p.mu.Unlock()
		return
	}
	if written {
		b.unknown = true
	}
	p.backoffLocked(b, cause)
	p.mu.Unlock()
}

func (p *partState) backoffLocked(b *batch, cause error) {
	b.lastErr = cause
	p.failing = true
	p.attempts++
	d := p.e().cfg.RetryBackoff.Delay(p.attempts)
	p.retryAt = time.Now().Add(d)
	p.armLocked(d)
}

// resolve applies the broker's answer for b.
func (p *partState) resolve(b *batch, broker string, pr kmsg.ProduceResponseTopicPartition) {
	e := p.e()
	code := pr.ErrorCode
	p.mu.Lock()
	if !p.takeAnswerLocked(b) {
		p.mu.Unlock()
		return
	}
	// A retry of a batch whose sequences the broker already acknowledged
	// (it accepted later ones, so this one was written) that fell out of
	// the broker's duplicate window comes back out of order: it is a
	// duplicate, delivered with its offset unknown.
	dupOutsideWindow := code == codeOutOfOrderSequence && e.idem != nil && b.unknown &&
		b.epoch == p.epoch && p.lastAcked >= 0 && seqAtOrBefore(addSeq(b.seq, len(b.recs)-1), p.lastAcked)
	if code == 0 || code == codeDuplicateSequence || dupOutsideWindow {
		if len(p.batches) > 0 && p.batches[0] == b {
			p.failing = false // the oldest batch is through: pipeline again
		}
		p.removeLocked(b)
		p.attempts = 0
		if e.idem != nil && b.epoch == p.epoch && !dupOutsideWindow {
			p.lastAcked = addSeq(b.seq, len(b.recs)-1)
		}
		// Nothing sends b again: its buffer can carry the next batch.
		wire := b.wire
		b.wire = nil
		p.mu.Unlock()
		e.bufs.putWire(wire, e.cfg.MaxBatchBytes)
		base, appendTime := pr.BaseOffset, pr.LogAppendTime
		if code != 0 {
			base, appendTime = -1, -1
		}
		e.complete(b.recs, func(i int, r *Rec) Result {
			res := Result{Partition: p.id, Offset: -1, Timestamp: r.Record.Timestamp}
			if base >= 0 {
				res.Offset = base + int64(i)
			}
			if appendTime >= 0 {
				res.Timestamp = appendTime
			}
			return res
		})
		return
	}

	msg := ""
	if pr.ErrorMessage != nil {
		msg = *pr.ErrorMessage
	}
	err := errs.FromCode(code, broker, msg).(*errs.Error)
	err.Detail = fmt.Sprintf("producing to %s/%d", p.t.name, p.id)
	info := errs.Lookup(code)

	switch {
	case code == codeOutOfOrderSequence && e.idem != nil:
		// The broker expected another sequence. If b is the first batch
		// after the last one acknowledged, the gap is real (the broker
		// lost data): start a new epoch. Otherwise an earlier batch
		// failed and b follows it back.
		if len(p.batches) > 0 && p.batches[0] == b && b.epoch == p.epoch && b.seq == addSeq(p.lastAcked, 1) && p.lastAcked >= 0 {
			p.reset = true
			epoch := p.epoch
			p.backoffLocked(b, err)
			p.mu.Unlock()
			e.idem.bump(epoch, fmt.Sprintf("%s/%d reported a sequence gap", p.t.name, p.id))
			return
		}
		p.backoffLocked(b, err)
	case code == codeUnknownProducerID && e.idem != nil:
		p.reset = true
		epoch := p.epoch
		p.backoffLocked(b, err)
		p.mu.Unlock()
		e.idem.bump(epoch, fmt.Sprintf("%s/%d no longer knows the producer id", p.t.name, p.id))
		return
	case code == codeInvalidProducerEpch && e.idem != nil:
		// Another partition moved the producer to a newer epoch first;
		// this one follows (the batch was refused, so not written).
		p.reset = true
		p.backoffLocked(b, err)
	case code == codeMessageTooLarge && len(b.recs) > 1:
		// The topic's limit is below our batch size: split the batch in
		// two and resend both (it was not written).
		p.splitLocked(b)
		p.reset = e.idem != nil
		p.backoffLocked(b, err)
	case info.Retriable:
		if code == codeRequestTimedOut || code == codeNotEnoughAfter {
			b.unknown = true
		}
		if info.Metadata {
			e.meta.RefreshSoon()
		}
		p.backoffLocked(b, err)
	default:
		// A permanent refusal: these records were not written. The
		// batches behind b, if any, were sequenced after it and must be
		// renumbered to close the gap.
		p.removeLocked(b)
		p.reset = e.idem != nil
		failed, requeue := p.recordErrorsLocked(b, pr, err)
		p.mu.Unlock()
		for _, f := range failed {
			e.fail([]*Rec{f.r}, p.id, false, f.err)
		}
		for _, r := range requeue {
			// Records of an INVALID_RECORD batch that were not at fault
			// go back in, behind what is queued (a new batch).
			p.requeue(r)
		}
		return
	}
	p.mu.Unlock()
}

type recFailure struct {
	r   *Rec
	err error
}

// recordErrorsLocked splits a refused batch into records that failed and
// records to send again: with KIP-467 (INVALID_RECORD naming the bad
// records) only those fail; otherwise all do.
func (p *partState) recordErrorsLocked(b *batch, pr kmsg.ProduceResponseTopicPartition, err *errs.Error) ([]recFailure, []*Rec) {
	if pr.ErrorCode != codeInvalidRecord || len(pr.ErrorRecords) == 0 {
		out := make([]recFailure, len(b.recs))
		for i, r := range b.recs {
			out[i] = recFailure{r, err}
		}
		return out, nil
	}
	bad := make(map[int32]string, len(pr.ErrorRecords))
	for _, re := range pr.ErrorRecords {
		m := ""
		if re.ErrorMessage != nil {
			m = *re.ErrorMessage
		}
		bad[re.RelativeOffset] = m
	}
	var failed []recFailure
	var again []*Rec
	for i, r := range b.recs {
		if m, ok := bad[int32(i)]; ok {
			e := *err
			e.Message = m
			failed = append(failed, recFailure{r, &e})
		} else {
			again = append(again, r)
		}
	}
	return failed, again
}

// requeue appends r again as a new record of this partition.
func (p *partState) requeue(r *Rec) {
	p.append(r, true)
}

// splitLocked replaces b (refused as too large, so not written) by two
// batches of half its records each, sealed at once so that they keep their
// place in the sequence when the partition is resequenced.
func (p *partState) splitLocked(b *batch) {
	half := len(b.recs) / 2
	mk := func(recs []*Rec) *batch {
		nb := &batch{p: p, created: b.created, deadline: b.deadline}
		nb.b = p.e().bufs.builder(p.e().cfg.Compression)
		for _, r := range recs {
			nb.add(r, 0)
		}
		nb.epoch, nb.seq = -1, -1
		if err := nb.finish(record.NoProducer); err != nil {
			return nil
		}
		return nb
	}
	first, second := mk(b.recs[:half]), mk(b.recs[half:])
	if first == nil || second == nil {
		return // cannot happen for records that encoded once; b then fails as too large on retry
	}
	for i, x := range p.batches {
		if x == b {
			p.batches = append(p.batches[:i], append([]*batch{first, second}, p.batches[i+1:]...)...)
			return
		}
	}
}

// seqAtOrBefore reports whether sequence a is at or before b, allowing for
// wrap-around (sequences are compared within half the range).
func seqAtOrBefore(a, b int32) bool {
	d := (int64(b) - int64(a) + (1 << 31)) % (1 << 31)
	return d < 1<<30
}
