package produce

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
)

type timeNow = time.Time

// ErrDeliveryTimeout is the cause of records that found no outcome within
// the delivery timeout.
var ErrDeliveryTimeout = errs.NewSentinel("keel: record not delivered within the delivery timeout", false)

// partState is one partition's queue of batches, oldest first. Batches in
// flight are always a prefix of the queue except while a failure is being
// resolved, and then nothing new is sent until every batch in flight has
// its answer (so a retry never overtakes the batches behind it).
type partState struct {
	t  *topicState
	id int32

	mu       sync.Mutex
	batches  []*batch
	inflight int   // batches of this partition in flight
	leader   int32 // -1 unknown
	sink     *sink // the leader's sink; nil when no leader is known
	sentTo   *sink // where the batches in flight went

	// Retry state.
	failing  bool // a batch failed: resend only once inflight is 0
	retryAt  time.Time
	attempts int

	// Idempotence: the epoch this partition's sequences belong to, the
	// next sequence to assign and the last one the broker acknowledged.
	epoch     int16
	nextSeq   int32
	lastAcked int32
	reset     bool // resequence the queue before sending more

	timer *time.Timer // linger and retry-backoff wake-ups

	lastCount int // records in the last batch sealed, to size the next
	lastBytes int // and its encoded size
}

// batch is a group of records for one partition sent in one record batch.
type batch struct {
	p        *partState
	recs     []*Rec
	b        *record.BatchBuilder // while open for appends
	wire     []byte               // the encoded batch, from the first send on
	created  time.Time
	deadline time.Time
	// ctxDone is the Done channel of its records' contexts when they all
	// share one (or nil when none has a context); ctxMixed is set when
	// they do not. It lets sealing skip looking at every record for a
	// cancelled context (see dropCancelled).
	ctxDone  <-chan struct{}
	ctxMixed bool

	epoch int16
	seq   int32

	sent      bool  // went out in a request at least once
	inflight  bool  // in a request without an answer yet
	abandoned bool  // failed while in flight; ignore its answer
	unknown   bool  // the last attempt may have been written
	lastErr   error // why the last attempt failed
}

func newPartState(t *topicState, id int32) *partState {
	return &partState{t: t, id: id, leader: -1, epoch: -1, lastAcked: -1}
}

func (p *partState) e() *Engine { return p.t.e }

// setLeader records the partition's leader and moves the partition to that
// broker's sink.
func (p *partState) setLeader(leader int32) {
	p.mu.Lock()
	if leader == p.leader {
		p.mu.Unlock()
		return
	}
	old := p.sink
	p.leader = leader
	p.sink = nil
	if leader >= 0 {
		p.sink = p.e().sinkFor(leader)
	}
	s := p.sink
	hasWork := len(p.batches) > 0
	p.mu.Unlock()
	if old != nil {
		old.remove(p)
	}
	if s != nil {
		s.add(p)
		if hasWork {
			s.maybeDrain()
		}
	}
}

// append adds r to the open batch if it fits. With newBatch it otherwise
// opens a new batch; without, it returns false so the caller can consult
// the partitioner first (KIP-480).
func (p *partState) append(r *Rec, newBatch bool) bool {
	e := p.e()
	p.mu.Lock()
	var open *batch
	if n := len(p.batches); n > 0 && p.batches[n-1].b != nil {
		open = p.batches[n-1]
	}
	if open != nil {
		size := open.b.RecordSize(&r.Record)
		if open.b.Size()+size <= e.cfg.MaxBatchBytes {
			open.add(r, size)
			full := open.b.Size() >= e.cfg.MaxBatchBytes-64
			p.mu.Unlock()
			if full {
				p.wake()
			}
			return true
		}
	}
	if !newBatch {
		p.mu.Unlock()
		return false
	}
	b := e.bufs.builder(e.cfg.Compression)
	size := b.RecordSize(&r.Record)
	if record.BatchHeaderLen+size > e.cfg.MaxBatchBytes {
		e.bufs.putBuilder(b)
		p.mu.Unlock()
		e.fail([]*Rec{r}, p.id, false, tooLarge(p, record.BatchHeaderLen+size, e.cfg.MaxBatchBytes))
		return true
	}
	now := time.Now()
	deadline := r.deadline
	if deadline.IsZero() {
		deadline = now.Add(e.cfg.DeliveryTimeout)
	}
	// Size the record list and the builder's buffer like the previous
	// batch's: growing them by doubling to thousands of records or a
	// megabyte costs a dozen copies per batch, and most of the producer's
	// allocations while it fills its buffer with large records (issue 6).
	b.Reserve(p.lastBytes)
	nb := &batch{p: p, b: b, created: now, deadline: deadline, recs: make([]*Rec, 0, max(8, p.lastCount))}
	nb.add(r, size)
	p.batches = append(p.batches, nb)
	wakeNow := open != nil || e.cfg.Linger <= 0 // the previous batch is full
	if !wakeNow {
		p.armLocked(e.cfg.Linger)
	}
	p.mu.Unlock()
	if wakeNow {
		p.wake()
	}
	return true
}

func tooLarge(p *partState, size, limit int) error {
	return &errs.Error{
		Code:   10,
		Name:   errs.Lookup(10).Name,
		Detail: fmt.Sprintf("record for %s/%d is %d bytes encoded, over the producer's maximum batch size of %d; it was not sent (raise MaxBatchBytes, and the topic's max.message.bytes, or send smaller records)", p.t.name, p.id, size, limit),
		Err:    errs.ErrMessageTooLarge,
	}
}

func (b *batch) add(r *Rec, size int) {
	r.size = size
	switch {
	case r.deadline.IsZero():
		// Added just now, after the batch was opened: the batch's
		// deadline comes first anyway (batches expire as a whole). The
		// record keeps it should it ever be requeued on its own.
		r.deadline = b.deadline
	case r.deadline.Before(b.deadline):
		b.deadline = r.deadline // a record that waited longer, e.g. for metadata
	}
	if r.Ctx != nil {
		switch done := r.Ctx.Done(); {
		case b.ctxDone == nil && !b.ctxMixed:
			b.ctxDone = done
		case done != b.ctxDone:
			b.ctxMixed = true
		}
	}
	b.b.Append(&r.Record)
	b.recs = append(b.recs, r)
}

// armLocked schedules a wake-up after d.
func (p *partState) armLocked(d time.Duration) {
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.wake)
		return
	}
	p.timer.Reset(d)
}

func (p *partState) currentSink() *sink {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sink
}

// wake asks the partition's sink to look at it.
func (p *partState) wake() {
	p.mu.Lock()
	s := p.sink
	noLeader := s == nil && len(p.batches) > 0
	p.mu.Unlock()
	if s != nil {
		s.maybeDrain()
	} else if noLeader {
		p.e().meta.RefreshSoon()
	}
}

// nextBatch returns the batch to send next on sink s, sealed and
// sequenced, and marks it in flight; nil when nothing is ready. When the
// partition will be ready later it arms a wake-up.
func (p *partState) nextBatch(s *sink, now time.Time, flushing bool, maxBytes int, pid int64, epoch int16) *batch {
	e := p.e()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.sink != s || len(p.batches) == 0 {
			return nil
		}
		moved := e.idem != nil && p.epoch >= 0 && p.epoch != epoch
		if p.inflight > 0 && (p.failing || p.reset || moved || p.sentTo != s) {
			// Let the answers in flight settle first. While recovering
			// from a failure only the oldest batch goes out, alone,
			// until it is acknowledged (as the Java client does):
			// sending the batches behind it could get them
			// acknowledged while its own fate is unsettled, and push it
			// out of the broker's duplicate window. A new epoch is
			// adopted only with nothing in flight, so epochs never mix.
			return nil
		}
		if p.inflight >= e.cfg.MaxInFlight {
			return nil
		}
		i := 0
		for i < len(p.batches) && p.batches[i].inflight {
			i++
		}
		if i == len(p.batches) {
			return nil
		}
		if now.Before(p.retryAt) {
			p.armLocked(p.retryAt.Sub(now))
			return nil
		}
		b := p.batches[i]
		ready := b.sent || b.b == nil || i+1 < len(p.batches) || flushing ||
			!now.Before(b.created.Add(e.cfg.Linger)) || b.b.Size() >= e.cfg.MaxBatchBytes-64
		if !ready {
			p.armLocked(b.created.Add(e.cfg.Linger).Sub(now))
			return nil
		}
		if e.idem != nil && (p.epoch != epoch || p.reset) && !p.settlingUnknownLocked() {
			p.resequenceLocked(pid, epoch)
			continue // resequencing may have failed batches for good
		}
		if b.wire == nil && e.idem != nil && p.epoch != epoch {
			return nil // settling under the old epoch: new batches wait for the new one
		}
		if b.wire == nil && !p.sealLocked(b, pid) {
			continue // every record of it was cancelled: look at the next
		}
		if len(b.wire) > maxBytes {
			return nil
		}
		b.inflight = true
		b.sent = true
		p.inflight++
		p.sentTo = s
		return b
	}
}

// sealLocked encodes batch b for its first send, dropping records whose
// ctx was cancelled while they waited, and assigns its sequence. It
// returns false if no record is left.
func (p *partState) sealLocked(b *batch, pid int64) bool {
	e := p.e()
	if cancelled := b.dropCancelled(); len(cancelled) > 0 {
		for _, r := range cancelled {
			e.fail([]*Rec{r}, p.id, false, fmt.Errorf("record cancelled before it was sent: %w", context.Cause(r.Ctx)))
		}
	}
	if len(b.recs) == 0 {
		e.bufs.putBuilder(b.b)
		b.b = nil
		p.removeLocked(b)
		return false
	}
	p.lastCount = len(b.recs)
	p.lastBytes = b.b.Size()
	ps := record.NoProducer
	if e.idem != nil {
		ps = record.ProducerState{ID: pid, Epoch: p.epoch, BaseSequence: p.nextSeq}
		b.epoch, b.seq = p.epoch, p.nextSeq
		p.nextSeq = addSeq(p.nextSeq, len(b.recs))
	}
	if err := b.finish(ps); err != nil {
		p.removeLocked(b)
		e.fail(b.recs, p.id, false, fmt.Errorf("keel: encoding the batch: %w", err))
		return false
	}
	return true
}

// dropCancelled removes from an unsealed batch the records whose ctx
// ended, rebuilding its encoding, and returns them.
//
// Records produced with one context (the usual case) share its Done
// channel: while that is open none of them is cancelled, and the records
// need not be looked at. Reading every record's context at sealing time
// was a twentieth of the producer's CPU time with 100 B records (cache
// misses, issue 6).
func (b *batch) dropCancelled() []*Rec {
	if !b.ctxMixed {
		if b.ctxDone == nil {
			return nil // no record has a context
		}
		select {
		case <-b.ctxDone:
		default:
			return nil
		}
	}
	var cancelled []*Rec
	kept := b.recs[:0]
	for _, r := range b.recs {
		if r.Ctx != nil && r.Ctx.Err() != nil {
			cancelled = append(cancelled, r)
		} else {
			kept = append(kept, r)
		}
	}
	b.recs = kept
	if len(cancelled) > 0 {
		b.b.Reset()
		for _, r := range b.recs {
			b.b.Append(&r.Record)
		}
	}
	return cancelled
}

// finish encodes the batch's final bytes and returns its builder to the
// engine. An uncompressed batch takes the builder's buffer as it is (no
// copy); the builder goes on with a recycled one.
func (b *batch) finish(ps record.ProducerState) error {
	e := b.p.e()
	// The spare becomes the builder's buffer (uncompressed) or holds the
	// compressed batch; either way Size() bytes fit. After a big batch
	// give it the full batch size, so that the next big batch does not
	// double it (and every buffer after it) on its last record.
	n := b.b.Size()
	if n > e.cfg.MaxBatchBytes/2 {
		n = e.cfg.MaxBatchBytes
	}
	wire, err := b.b.FinishTake(ps, e.bufs.wire(n))
	e.bufs.putBuilder(b.b)
	b.b = nil
	if err != nil {
		return err
	}
	b.wire = wire
	return nil
}

// settlingUnknownLocked reports whether the partition keeps its current
// epoch for now although the producer moved to a newer one: a batch of
// this epoch may already be written (its answer was lost), and only a
// resend under its own numbers can settle that without a duplicate.
// Another partition's trouble bumped the epoch, not this one's (p.reset
// is false), so the broker still accepts this epoch here: the broker
// keeps producer state per partition. Once those batches are answered
// the partition adopts the new epoch. If the broker refuses the old
// epoch after all, the answer sets p.reset and the batch fails as
// OutcomeUnknown, as before.
func (p *partState) settlingUnknownLocked() bool {
	if p.reset || p.epoch < 0 {
		return false
	}
	for _, b := range p.batches {
		if b.wire != nil && b.unknown && b.epoch == p.epoch {
			return true
		}
	}
	return false
}

// addSeq advances a sequence number; sequences wrap to 0 after MaxInt32.
func addSeq(seq int32, n int) int32 {
	return int32((int64(seq) + int64(n)) % (1 << 31))
}

// resequenceLocked gives the queued batches new sequence numbers, in queue
// order. It runs with nothing in flight, after an epoch bump (sequences
// restart at 0) or after a batch failed for good and left a gap (sequences
// continue after the last acknowledged one). A batch that may already be
// written (its last attempt's outcome is unknown) must never go out again
// under other numbers — the broker would store it twice — so unless its
// numbers stay the same it fails now with its outcome unknown.
func (p *partState) resequenceLocked(pid int64, epoch int16) {
	e := p.e()
	if p.epoch != epoch {
		p.epoch = epoch
		p.lastAcked = -1
	}
	seq := int32(0)
	if p.lastAcked >= 0 {
		seq = addSeq(p.lastAcked, 1)
	}
	kept := p.batches[:0]
	for _, b := range p.batches {
		if b.wire == nil {
			kept = append(kept, b) // sequenced when sealed, in queue order
			continue
		}
		if b.unknown && (b.epoch != epoch || b.seq != seq) {
			e.fail(b.recs, p.id, true, &errs.Error{
				Detail: fmt.Sprintf("%s/%d: an attempt may have been written and the producer had to move to new sequence numbers; not resending, to avoid a duplicate", p.t.name, p.id),
				Err:    b.lastErr,
			})
			continue
		}
		b.epoch, b.seq = epoch, seq
		record.SetProducer(b.wire, pid, epoch, seq)
		seq = addSeq(seq, len(b.recs))
		kept = append(kept, b)
	}
	for i := len(kept); i < len(p.batches); i++ {
		p.batches[i] = nil
	}
	p.batches = kept
	p.nextSeq = seq
	p.reset = false
}

func (p *partState) removeLocked(b *batch) {
	for i, x := range p.batches {
		if x == b {
			copy(p.batches[i:], p.batches[i+1:])
			p.batches[len(p.batches)-1] = nil
			p.batches = p.batches[:len(p.batches)-1]
			return
		}
	}
}

// expire fails batches past their delivery timeout and records whose ctx
// ended while unsent. Failing a batch that was sent leaves the broker's
// view of our sequences unknown, so the producer epoch is bumped (KIP-360)
// and the partition resequenced before it sends again.
func (p *partState) expire(now time.Time) {
	e := p.e()
	type failed struct {
		recs  []*Rec
		maybe bool
		err   error
	}
	var out []failed
	var cancelled []*Rec
	bump := false
	p.mu.Lock()
	for len(p.batches) > 0 && !now.Before(p.batches[0].deadline) {
		b := p.batches[0]
		p.batches = p.batches[1:]
		err := &errs.Error{
			Detail: fmt.Sprintf("%s/%d: no outcome within the delivery timeout (%v)", p.t.name, p.id, e.cfg.DeliveryTimeout),
			Err:    ErrDeliveryTimeout,
		}
		if b.lastErr != nil {
			err.Detail += "; last error: " + b.lastErr.Error()
		}
		if b.inflight {
			b.abandoned = true
		}
		if b.b != nil {
			e.bufs.putBuilder(b.b)
			b.b = nil
		}
		maybe := b.inflight || b.unknown
		if maybe && e.idem != nil {
			bump = true
		} else if b.sent && e.idem != nil {
			p.reset = true // a gap in the sequence, nothing unknown
		}
		out = append(out, failed{b.recs, maybe, err})
	}
	// Cancelled records of batches not sent yet leave at once.
	kept := p.batches[:0]
	for _, b := range p.batches {
		if b.b != nil {
			cancelled = append(cancelled, b.dropCancelled()...)
			if len(b.recs) == 0 {
				e.bufs.putBuilder(b.b)
				b.b = nil
				continue
			}
		}
		kept = append(kept, b)
	}
	for i := len(kept); i < len(p.batches); i++ {
		p.batches[i] = nil
	}
	p.batches = kept
	if bump {
		p.reset = true
	}
	epoch := p.epoch
	p.mu.Unlock()

	if bump {
		e.idem.bump(epoch, "a batch sent to "+p.t.name+" expired without an answer")
	}
	for _, f := range out {
		e.fail(f.recs, p.id, f.maybe, f.err)
	}
	for _, r := range cancelled {
		e.fail([]*Rec{r}, p.id, false, fmt.Errorf("record cancelled before it was sent: %w", context.Cause(r.Ctx)))
	}
	if len(out) > 0 {
		p.wake()
	}
}

// failAll fails every batch; used by Close.
func (p *partState) failAll(err error) {
	p.mu.Lock()
	batches := p.batches
	p.batches = nil
	maybe := make([]bool, len(batches))
	for i, b := range batches {
		maybe[i] = b.inflight || b.unknown
		if b.inflight {
			b.abandoned = true
		}
		if b.b != nil {
			p.e().bufs.putBuilder(b.b)
			b.b = nil
		}
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	for i, b := range batches {
		e := err
		if maybe[i] {
			e = &errs.Error{Detail: "producer closed before the broker answered", Err: err}
		}
		p.e().fail(b.recs, p.id, maybe[i], e)
	}
}
