package produce

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
)

// ErrDeliveryTimeout is the cause of records that found no outcome within
// the delivery timeout.
var ErrDeliveryTimeout = errs.NewSentinel("keel: record not delivered within the delivery timeout", false)

// partState is one partition's queue of batches, oldest first. Batches in
// flight are always a prefix of the queue except while a failure is being
// resolved, and then nothing new is sent until every batch in flight has
// its answer (so a retry never overtakes the batches behind it).
//
// Every outcome of the partition's records is decided under mu and queued
// in outbox in that order; deliver hands the queue on after mu is let go,
// one goroutine at a time, so reports keep the order they were decided in
// (issue 18: an expiry reported after letting the lock go could be
// overtaken by the success of the batch behind it).
type partState struct {
	t  *topicState
	id int32

	mu       sync.Mutex
	batches  []*batch
	inflight int   // batches of this partition in flight
	leader   int32 // -1 unknown
	sink     *sink // the leader's sink; nil when no leader is known
	sentTo   *sink // where the batches in flight went
	gone     error // the topic was deleted: fail instead of retrying

	// Retry state.
	failing  bool  // a batch failed: resend only the oldest, alone
	retryAt  int64 // engine clock
	attempts int

	seq seqState // idempotence: epoch and sequence numbers (idempotence.go)

	timer *time.Timer // linger and retry-backoff wake-ups

	// avgCount is a running average of the records per batch sealed,
	// which sizes the next batch's record slice (with a quarter to
	// spare): sized like the last batch alone, a batch cut short by its
	// linger after a big one wasted most of its slice. lastBytes is the
	// last batch's encoded size (builds that copy at Produce).
	avgCount  int
	lastBytes int

	lastAck int64 // engine clock of the last acknowledged batch (observe.go)

	outbox     []*Report  // decided, not yet handed on (deliver)
	spare      []*Report  // the emptied outbox, reused
	delivering bool       // a goroutine is handing the outbox on
	delivered  *sync.Cond // broadcast when delivering ends (L is &mu)
}

// batchState is where a batch is in its life. A batch is in its
// partition's queue from its first record until it is reported; only an
// abandoned batch outlives that, until its request's answer comes back.
type batchState uint8

const (
	// batchOpen: taking records; nothing is encoded yet.
	batchOpen batchState = iota
	// batchSealed: encoded, its sequence fixed, waiting to be sent again
	// after a failure (or built sealed by a split or a requeue).
	batchSealed
	// batchInFlight: in a request awaiting its answer. A batch sealed on
	// its way out is encoded by its sink, outside the partition's lock:
	// until the request is written, wire is nil.
	batchInFlight
	// batchAbandoned: reported (expired, closed, its topic deleted)
	// while in flight; its answer is ignored.
	batchAbandoned
)

func (s batchState) String() string {
	return [...]string{"open", "sealed", "in flight", "abandoned"}[s]
}

// batch is a group of records for one partition sent in one record batch.
type batch struct {
	p     *partState
	state batchState
	recs  Recs // in chunks (recs.go)
	// preset holds failures decided before the batch was sent, one per
	// record (nil for nearly every batch): records of a batch refused
	// with INVALID_RECORD that were at fault ride along in the requeued
	// batch, not encoded, so that they are reported in their place.
	preset []error

	size     int   // encoded size so far, uncompressed, header included
	firstTS  int64 // the first record's timestamp: deltas are from it
	wire     []byte
	created  int64 // engine clock
	deadline int64 // engine clock
	// ctxDone is the Done channel of its records' contexts when they all
	// share one (or nil when none has a context); ctxMixed is set when
	// they do not. It lets sealing skip looking at every record for a
	// cancelled context (see dropCancelled).
	ctxDone  <-chan struct{}
	ctxMixed bool

	pid   int64 // the producer state it is sent under (-1 when not idempotent)
	epoch int16
	seq   int32

	attempts int   // requests it went out in
	unknown  bool  // the last attempt may have been written
	lastErr  error // why the last attempt failed

	rep Report // its report, queued in the partition's outbox

	// bb holds the open batch's records encoded as they come, only in
	// builds that copy at Produce (encodeAtAppend); nil otherwise.
	bb *record.BatchBuilder
}

func newPartState(t *topicState, id int32) *partState {
	p := &partState{t: t, id: id, leader: -1, seq: newSeqState()}
	p.delivered = sync.NewCond(&p.mu)
	return p
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

// count is how many of the batch's records are encoded (those without a
// preset failure): what its sequence numbers and offsets cover.
func (b *batch) count() int {
	if b.preset == nil {
		return b.recs.Len()
	}
	n := 0
	for _, err := range b.preset {
		if err == nil {
			n++
		}
	}
	return n
}

// recordSize is what r would add to the batch's encoded size.
func (b *batch) recordSize(r *record.Record) int {
	return record.EncodedRecordLen(r, r.Timestamp-b.firstTS, int32(b.count()))
}

// openLocked returns the partition's open batch, if any.
func (p *partState) openLocked() *batch {
	if n := len(p.batches); n > 0 && p.batches[n-1].state == batchOpen {
		return p.batches[n-1]
	}
	return nil
}

// refusedLocked returns why the partition takes no records now: the
// producer closed, or the topic is gone.
func (p *partState) refusedLocked() error {
	if p.e().closed.Load() {
		return ErrClosed
	}
	return p.gone
}

// append adds r to the open batch if it fits. With newBatch it otherwise
// opens a new batch; without, it returns false so the caller can consult
// the partitioner first (KIP-480).
func (p *partState) append(r *Rec, newBatch bool) bool {
	e := p.e()
	p.mu.Lock()
	if err := p.refusedLocked(); err != nil {
		p.queueFailureLocked(LooseRecs([]Rec{*r}), err, false)
		p.mu.Unlock()
		p.deliver()
		return true
	}
	open := p.openLocked()
	if open != nil {
		size := open.recordSize(&r.Record)
		if open.size+size <= e.cfg.MaxBatchBytes {
			open.add(r, size)
			full := open.size >= e.cfg.MaxBatchBytes-64
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
	size := record.EncodedRecordLen(&r.Record, 0, 0)
	if record.BatchHeaderLen+size > e.cfg.MaxBatchBytes {
		p.queueFailureLocked(LooseRecs([]Rec{*r}), tooLarge(p, record.BatchHeaderLen+size, e.cfg.MaxBatchBytes), false)
		p.mu.Unlock()
		p.deliver()
		return true
	}
	now := e.now()
	deadline := r.deadline
	if deadline == 0 {
		deadline = now + int64(e.cfg.DeliveryTimeout)
	}
	nb := e.bufs.batch(p, p.avgCount+p.avgCount/4)
	nb.created, nb.deadline, nb.firstTS = now, deadline, r.Record.Timestamp
	if encodeAtAppend {
		nb.bb = e.bufs.builder(e.cfg.Compression)
		nb.bb.Reserve(p.lastBytes)
	}
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
		Code:   errs.CodeMessageTooLarge,
		Name:   errs.Lookup(errs.CodeMessageTooLarge).Name,
		Detail: fmt.Sprintf("record for %s/%d is %d bytes encoded, over the producer's maximum batch size of %d; it was not sent (raise MaxBatchBytes, and the topic's max.message.bytes, or send smaller records)", p.t.name, p.id, size, limit),
		Err:    errs.ErrMessageTooLarge,
	}
}

// add appends a copy of r, whose encoded size in this batch is size.
func (b *batch) add(r *Rec, size int) {
	switch {
	case r.deadline == 0:
		// Added just now, after the batch was opened: the batch's
		// deadline comes first anyway (batches expire as a whole). The
		// record keeps it should it ever be requeued on its own.
		r.deadline = b.deadline
	case r.deadline < b.deadline:
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
	r.size = int32(size)
	b.recs.push(r, &b.p.e().bufs)
	b.size += size
	if b.bb != nil {
		b.bb.Append(&r.Record)
	}
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
	} else if noLeader && p.e().meta != nil {
		p.e().meta.RefreshSoon()
	}
}

// nextBatch returns the batch to send next on sink s, sequenced and marked
// in flight, with the producer state to encode it with when its wire is
// nil (the sink encodes it then, outside the lock); nil when nothing is
// ready. When the partition will be ready later it arms a wake-up.
func (p *partState) nextBatch(s *sink, now int64, flushing bool, room int, pid int64, epoch int16) (*batch, record.ProducerState) {
	e := p.e()
	p.mu.Lock()
	defer func() {
		p.mu.Unlock()
		p.deliver() // records dropped for their ctx
	}()
	for {
		if p.sink != s || len(p.batches) == 0 {
			return nil, record.NoProducer
		}
		if e.txnal() && e.idem.stale(pid, epoch) {
			// The drain read the producer id before an abort reset it
			// (it may have waited that long under load): the records
			// here are the next transaction's and must not go out
			// under the old epoch, which the coordinator has fenced
			// (INVALID_PRODUCER_EPOCH, fatal). The load of the new one
			// drains the sinks again.
			e.idem.ensure()
			return nil, record.NoProducer
		}
		moved := e.idem != nil && p.seq.epoch >= 0 && p.seq.epoch != epoch
		if p.inflight > 0 && (p.failing || p.seq.reset || moved || p.sentTo != s) {
			// Let the answers in flight settle first. While recovering
			// from a failure only the oldest batch goes out, alone,
			// until it is acknowledged (as the Java client does):
			// sending the batches behind it could get them
			// acknowledged while its own fate is unsettled, and push it
			// out of the broker's duplicate window. A new epoch is
			// adopted only with nothing in flight, so epochs never mix.
			return nil, record.NoProducer
		}
		if p.inflight >= e.cfg.MaxInFlight {
			return nil, record.NoProducer
		}
		i := 0
		for i < len(p.batches) && p.batches[i].state == batchInFlight {
			i++
		}
		if i == len(p.batches) {
			return nil, record.NoProducer
		}
		if now < p.retryAt {
			p.armLocked(time.Duration(p.retryAt - now))
			return nil, record.NoProducer
		}
		b := p.batches[i]
		open := b.state == batchOpen
		lingerEnd := b.created + int64(e.cfg.Linger)
		ready := !open || i+1 < len(p.batches) || flushing || now >= lingerEnd || b.size >= e.cfg.MaxBatchBytes-64
		if !ready {
			p.armLocked(time.Duration(lingerEnd - now))
			return nil, record.NoProducer
		}
		if e.idem != nil && (p.seq.epoch != epoch || p.seq.reset) && !p.settlingUnknownLocked() {
			p.resequenceLocked(pid, epoch)
			continue // resequencing may have failed batches for good
		}
		if open && e.idem != nil && p.seq.epoch != epoch {
			return nil, record.NoProducer // settling under the old epoch: new batches wait for the new one
		}
		ps := record.NoProducer
		if open {
			if p.dropCancelledLocked(b); b.recs.Len() == 0 {
				p.removeLocked(b)
				e.bufs.putRecs(b)
				continue // every record of it was cancelled: look at the next
			}
			if b.size > room {
				return nil, record.NoProducer
			}
			// Chunks the estimate took and the batch did not fill
			// carry the next batches.
			b.recs.truncate(b.recs.Len(), &e.bufs)
			p.avgCount = (3*p.avgCount + b.recs.Len()) / 4
			p.lastBytes = b.size
			if e.idem != nil {
				ps = p.sequenceLocked(b, pid)
			}
		} else if b.wireLen() > room {
			return nil, record.NoProducer
		} else {
			ps = b.producerState()
		}
		b.state = batchInFlight
		b.attempts++
		p.inflight++
		p.sentTo = s
		return b, ps
	}
}

// producerState is what the batch is sent under.
func (b *batch) producerState() record.ProducerState {
	return record.ProducerState{ID: b.pid, Epoch: b.epoch, BaseSequence: b.seq, Transactional: b.p.e().txnal()}
}

// wireLen is the batch's size on the wire (an upper bound until a
// compressed batch is encoded).
func (b *batch) wireLen() int {
	if b.wire != nil {
		return len(b.wire)
	}
	return b.size
}

// appendTo appends the batch's records (those without a preset failure)
// to bb.
func (b *batch) appendTo(bb *record.BatchBuilder) {
	for i := range b.recs.Len() {
		if b.preset == nil || b.preset[i] == nil {
			bb.Append(&b.recs.At(i).Record)
		}
	}
}

// encode writes the batch's records in their final form into a buffer of
// its own, under producer state ps: for a compressed batch (whose size the
// request must know before it is written) and for batches rebuilt after a
// refusal. The sink calls it for a batch on its way out, without the
// partition's lock: the batch is in flight, so nothing else changes its
// records meanwhile.
func (b *batch) encode(ps record.ProducerState) error {
	e := b.p.e()
	bb := b.bb
	b.bb = nil
	if bb == nil {
		bb = e.bufs.builder(e.cfg.Compression)
		bb.Reserve(b.size + binary.MaxVarintLen32) // Append wants room for a length varint at its widest
		b.appendTo(bb)
	}
	// The spare becomes the builder's buffer (uncompressed) or holds the
	// compressed batch; either way Size() bytes fit.
	compressed := e.cfg.Compression.Codec != record.CodecNone
	var spare []byte
	if compressed {
		spare = e.bufs.compressTarget(bb.Size())
	} else {
		spare = e.bufs.wire(bb.Size())
	}
	wire, err := bb.FinishTake(ps, spare)
	e.bufs.putBuilder(bb)
	if err != nil {
		if compressed {
			e.bufs.putCompressTarget(spare)
		}
		return err
	}
	if compressed {
		// Compressed into a buffer of the uncompressed size: keep only
		// what it holds (a batch may wait a while in flight or for a
		// resend), and the buffer for the next batch to compress into.
		// With 64 partitions of 1 KB lz4 records, the buffers of the
		// batches in flight were most of the peak RSS.
		exact := append(e.bufs.wire(len(wire)), wire...)
		e.bufs.putCompressTarget(wire)
		wire = exact
	}
	b.wire = wire
	return nil
}

// dropCancelledLocked removes from an open batch the records whose ctx
// ended and queues their failure.
//
// Records produced with one context (the usual case) share its Done
// channel: while that is open none of them is cancelled, and the records
// need not be looked at. Reading every record's context at sealing time
// was a twentieth of the producer's CPU time with 100 B records (cache
// misses, issue 6).
func (p *partState) dropCancelledLocked(b *batch) {
	if !b.ctxMixed {
		if b.ctxDone == nil {
			return // no record has a context
		}
		select {
		case <-b.ctxDone:
		default:
			return
		}
	}
	kept := 0
	b.size = record.BatchHeaderLen
	for i := range b.recs.Len() {
		r := b.recs.At(i)
		if r.Ctx != nil && r.Ctx.Err() != nil {
			p.queueFailureLocked(LooseRecs([]Rec{*r}), cancelledErr(r.Ctx), false)
			continue
		}
		if kept == 0 {
			b.firstTS = r.Record.Timestamp
		}
		r.size = int32(record.EncodedRecordLen(&r.Record, r.Record.Timestamp-b.firstTS, int32(kept)))
		b.size += int(r.size)
		if kept != i {
			*b.recs.At(kept) = *r
		}
		kept++
	}
	b.recs.truncate(kept, &p.e().bufs)
	if b.bb != nil {
		b.bb.Reset()
		for i := range b.recs.Len() {
			b.bb.Append(&b.recs.At(i).Record)
		}
	}
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
func (p *partState) expire(now int64) {
	e := p.e()
	bump := false
	p.mu.Lock()
	n := 0
	for len(p.batches) > 0 && now >= p.batches[0].deadline {
		b := p.batches[0]
		p.batches = p.batches[1:]
		n++
		err := &errs.Error{
			Detail: fmt.Sprintf("%s/%d: no outcome within the delivery timeout (%v)", p.t.name, p.id, e.cfg.DeliveryTimeout),
			Err:    ErrDeliveryTimeout,
		}
		if b.lastErr != nil {
			err.Detail += "; last error: " + b.lastErr.Error()
		}
		maybe := b.state == batchInFlight || b.unknown
		if maybe && e.idem != nil {
			bump = true
		} else if b.attempts > 0 && e.idem != nil {
			p.seq.reset = true // a gap in the sequence, nothing unknown
		}
		p.queueBatchFailureLocked(b, err, maybe)
	}
	// Cancelled records of batches not sent yet leave at once.
	for _, b := range p.batches {
		if b.state == batchOpen {
			p.dropCancelledLocked(b)
		}
	}
	kept := p.batches[:0]
	for _, b := range p.batches {
		if b.state == batchOpen && b.recs.Len() == 0 {
			e.bufs.putRecs(b)
			continue
		}
		kept = append(kept, b)
	}
	clear(p.batches[len(kept):])
	p.batches = kept
	if bump {
		p.seq.reset = true
	}
	epoch := p.seq.epoch
	p.mu.Unlock()

	// Reports first, in the order decided, then the epoch bump (whose
	// warning runs user code).
	p.deliver()
	if bump {
		e.idem.bump(epoch, "a batch sent to "+p.t.name+" expired without an answer")
	}
	if n > 0 {
		p.wake()
	}
}

// failAll fails every batch; used by Close.
func (p *partState) failAll(err error) {
	p.mu.Lock()
	for _, b := range p.batches {
		maybe := b.state == batchInFlight || b.unknown
		e := err
		if maybe {
			e = &errs.Error{Detail: "producer closed before the broker answered", Err: err}
		}
		p.queueBatchFailureLocked(b, e, maybe)
	}
	clear(p.batches)
	p.batches = p.batches[:0]
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	p.deliver()
}

// topicGone fails what the partition holds because its topic was deleted,
// and detaches it from its broker. Batches in flight fail when their
// answer comes back (a success is still reported as one).
func (p *partState) topicGone(err error) {
	p.mu.Lock()
	p.gone = err
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
	p.setLeader(-1)
}

// queueFailureLocked queues the failure of records not in a batch.
func (p *partState) queueFailureLocked(recs Recs, err error, maybe bool) {
	p.outbox = append(p.outbox, &Report{Topic: p.t.name, Partition: p.id, Recs: recs, base: -1, appendTime: -1, err: err, maybe: maybe})
}

// queueBatchFailureLocked queues the failure of batch b, which leaves the
// queue (the caller removes it). A batch in flight becomes abandoned: its
// answer will be ignored, and its memory is not reused (the request still
// refers to it).
func (p *partState) queueBatchFailureLocked(b *batch, err error, maybe bool) {
	b.rep = Report{Topic: p.t.name, Partition: p.id, Recs: b.recs, base: -1, appendTime: -1, err: err, maybe: maybe, preset: b.preset}
	if b.bb != nil {
		p.e().bufs.putBuilder(b.bb)
		b.bb = nil
	}
	if b.state == batchInFlight {
		b.state = batchAbandoned
	} else {
		b.rep.recycle = b
		p.e().bufs.putWire(b.wire)
		b.wire = nil
	}
	p.outbox = append(p.outbox, &b.rep)
}

// queueDeliveredLocked queues the report of an acknowledged batch.
func (p *partState) queueDeliveredLocked(b *batch, base, appendTime int64) {
	b.rep = Report{Topic: p.t.name, Partition: p.id, Recs: b.recs, base: base, appendTime: appendTime, preset: b.preset, recycle: b}
	p.outbox = append(p.outbox, &b.rep)
	p.lastAck = p.e().now()
}

// deliver hands the queued reports on, in order. If another goroutine is
// at it, that one delivers ours too (after its own, which came first).
func (p *partState) deliver() {
	p.mu.Lock()
	if p.delivering || len(p.outbox) == 0 {
		p.mu.Unlock()
		return
	}
	p.delivering = true
	for len(p.outbox) > 0 {
		reps := p.outbox
		p.outbox = p.spare[:0]
		p.spare = nil
		p.mu.Unlock()
		for i, rep := range reps {
			p.e().report(rep)
			reps[i] = nil
		}
		p.mu.Lock()
		if p.spare == nil {
			p.spare = reps[:0]
		}
	}
	p.delivering = false
	p.delivered.Broadcast()
	p.mu.Unlock()
}

// awaitDelivered returns once every report decided so far was handed on.
func (p *partState) awaitDelivered() {
	p.deliver()
	p.mu.Lock()
	for p.delivering || len(p.outbox) > 0 {
		if !p.delivering {
			p.mu.Unlock()
			p.deliver()
			p.mu.Lock()
			continue
		}
		p.delivered.Wait()
	}
	p.mu.Unlock()
}
