package produce

import (
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
)

// sink sends the batches of the partitions one broker leads. A drain
// goroutine runs while there is something to send and room in flight; it
// writes requests in order on the broker's produce connection. A responder
// goroutine reads the answers in the same order, so a partition's batches
// are resolved in sequence order.
type sink struct {
	e  *Engine
	id int32

	mu        sync.Mutex
	parts     []*partState
	next      int // where the next drain starts, for fairness
	draining  bool
	again     bool
	inflight  []*request // written, answer not handled yet (FIFO)
	answering bool
	scratch   []*partState // drainOnce's copy of parts (only the drain goroutine uses it)
	// partsScratch is the responder's list of the partitions of the
	// request it handles (only the responder goroutine uses it).
	partsScratch []*partState
	bb           *record.BatchBuilder // encodes batches into requests (the drain goroutine's)
}

type request struct {
	pending *conn.Pending
	batches []*batch
	addr    string
	err     error // set when the request could not be written
}

func newSink(e *Engine, id int32) *sink {
	return &sink{e: e, id: id, bb: record.NewBatchBuilder(record.Compression{})}
}

func (s *sink) add(p *partState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.parts {
		if x == p {
			return
		}
	}
	s.parts = append(s.parts, p)
}

func (s *sink) remove(p *partState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.parts {
		if x == p {
			s.parts = append(s.parts[:i], s.parts[i+1:]...)
			return
		}
	}
}

// maybeDrain starts the drain goroutine, or tells the running one to look
// again.
func (s *sink) maybeDrain() {
	s.mu.Lock()
	if s.draining {
		s.again = true
		s.mu.Unlock()
		return
	}
	s.draining = true
	s.again = false
	s.mu.Unlock()
	if !s.e.goStart(s.drain) {
		s.mu.Lock()
		s.draining = false
		s.mu.Unlock()
	}
}

func (s *sink) drain() {
	for {
		sent := s.drainOnce()
		s.mu.Lock()
		if !sent && !s.again || s.e.isClosing() {
			s.draining = false
			s.mu.Unlock()
			return
		}
		s.again = false
		s.mu.Unlock()
	}
}

// drainOnce builds and writes at most one request. It reports whether it
// wrote one.
func (s *sink) drainOnce() bool {
	e := s.e
	s.mu.Lock()
	if len(s.inflight) >= e.cfg.MaxInFlight {
		s.mu.Unlock()
		return false // the responder drains again when an answer arrives
	}
	s.scratch = append(s.scratch[:0], s.parts...)
	parts := s.scratch
	start := s.next
	s.next++
	s.mu.Unlock()
	if len(parts) == 0 {
		return false
	}

	addr, ok := e.meta.BrokerAddr(s.id)
	if !ok {
		e.meta.RefreshSoon()
		return false
	}
	var pid int64
	var epoch int16
	if e.idem != nil {
		var ok bool
		if pid, epoch, ok = e.idem.current(); !ok {
			e.idem.ensure()
			return false
		}
	}

	now := e.now()
	flushing := e.isFlushing()
	room := e.cfg.MaxRequestBytes - 256 // request header and framing
	var batches []*batch
	for i := range parts {
		p := parts[(start+i)%len(parts)]
		b, ps := p.nextBatch(s, now, flushing, room, pid, epoch)
		if b == nil {
			continue
		}
		if b.wire == nil && (e.cfg.Compression.Codec != record.CodecNone || b.bb != nil || b.attempts > 1) {
			// A compressed batch sealed on its way out is encoded now,
			// from the records' own values, without the partition's
			// lock (an uncompressed one is encoded into the request as
			// it is written: produceRequest). A batch sent again is
			// encoded into a buffer of its own once, and keeps it for
			// its further resends: under faults a partition's oldest
			// batch may go out a dozen times.
			if err := b.encode(ps); err != nil {
				p.encodeFailed(b, err)
				continue
			}
		}
		batches = append(batches, b)
		room -= b.wireLen() + len(p.t.name) + 16
		if room <= 0 {
			break
		}
	}
	clear(parts)
	if len(batches) > 0 && e.txnal() {
		batches = s.addToTxn(batches)
	}
	if len(batches) == 0 {
		return false
	}
	s.write(addr, batches)
	return true
}

// write sends one produce request for batches and queues it for the
// responder.
func (s *sink) write(addr string, batches []*batch) {
	e := s.e
	req := kmsg.NewPtrProduceRequest()
	req.Acks = e.cfg.Acks
	req.TimeoutMillis = int32(e.cfg.RequestTimeout / time.Millisecond)
	if e.txnal() {
		req.TransactionID = &e.cfg.Txn.ID
	}
	pr := produceRequest{ProduceRequest: req, bb: s.bb}
	byTopic := make(map[string]int)
	for _, b := range batches {
		ti, ok := byTopic[b.p.t.name]
		if !ok {
			ti = len(req.Topics)
			byTopic[b.p.t.name] = ti
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = b.p.t.name
			req.Topics = append(req.Topics, rt)
			pr.batches = append(pr.batches, nil)
		}
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = b.p.id
		rp.Records = b.wire
		var inPlace *batch
		if b.wire == nil {
			inPlace = b
		}
		req.Topics[ti].Partitions = append(req.Topics[ti].Partitions, rp)
		pr.batches[ti] = append(pr.batches[ti], inPlace)
	}

	r := &request{batches: batches, addr: addr}
	c, err := e.pool.Get(e.ctx, addr, conn.Produce)
	if err == nil {
		r.pending, err = c.Send(e.ctx, pr)
	}
	s.noteWritten(addr, batches, err)
	r.err = err
	if err == nil && r.pending == nil {
		// acks=0: Kafka sends no answer; written is all we learn.
		s.finishUnacked(batches)
		return
	}
	s.mu.Lock()
	s.inflight = append(s.inflight, r)
	start := !s.answering
	s.answering = true
	s.mu.Unlock()
	if start && !e.goStart(s.answer) {
		// Closing: nobody will wait for these answers.
		s.mu.Lock()
		s.answering = false
		pending := s.inflight
		s.inflight = nil
		s.mu.Unlock()
		for _, r := range pending {
			for _, b := range r.batches {
				b.p.abandonAnswer(b, r.pending != nil)
			}
		}
	}
}

// answer handles answers in the order the requests were written.
func (s *sink) answer() {
	for {
		s.mu.Lock()
		if len(s.inflight) == 0 {
			s.answering = false
			s.mu.Unlock()
			return
		}
		r := s.inflight[0]
		s.mu.Unlock()

		var resp *kmsg.ProduceResponse
		err := r.err
		if err == nil {
			var kr kmsg.Response
			kr, err = r.pending.Wait(s.e.ctx)
			if err == nil {
				resp = kr.(*kmsg.ProduceResponse)
			}
		}
		// A reported batch goes back to the engine's free list and may
		// carry another partition's records at once: take its partition
		// first.
		parts := s.partsScratch[:0]
		for _, b := range r.batches {
			parts = append(parts, b.p)
		}
		s.handle(r, resp, err)
		// A partition that moved to another broker while these batches
		// were in flight waits for their answers; now tell its new sink.
		for _, p := range parts {
			if p.currentSink() != s {
				p.wake()
			}
		}
		clear(parts)
		s.partsScratch = parts[:0]

		s.mu.Lock()
		s.inflight = s.inflight[1:]
		s.mu.Unlock()
		s.maybeDrain()
	}
}

func (s *sink) finishUnacked(batches []*batch) {
	for _, b := range batches {
		// Written is all Kafka tells with acks=0: delivered, offset
		// unknown, never sent again.
		b.p.resolve(b, "", kmsg.ProduceResponseTopicPartition{})
	}
}

// handle resolves every batch of one request from its answer, or from the
// error that stopped the request.
func (s *sink) handle(r *request, resp *kmsg.ProduceResponse, reqErr error) {
	e := s.e
	if reqErr != nil {
		if e.isClosing() {
			for _, b := range r.batches {
				b.p.abandonAnswer(b, r.pending != nil)
			}
			return
		}
		e.meta.RefreshSoon()
		e.cfg.Warn(fmt.Sprintf("produce request to broker %d failed; retrying its %d batches", s.id, len(r.batches)), reqErr)
		for _, b := range r.batches {
			b.p.retry(b, reqErr, r.pending != nil)
		}
		return
	}
	type key struct {
		topic string
		part  int32
	}
	results := make(map[key]kmsg.ProduceResponseTopicPartition, len(r.batches))
	for _, t := range resp.Topics {
		for _, pr := range t.Partitions {
			results[key{t.Topic, pr.Partition}] = pr
		}
	}
	for _, b := range r.batches {
		pr, ok := results[key{b.p.t.name, b.p.id}]
		if !ok {
			err := &errs.Error{Broker: r.addr, Retriable: true, Detail: fmt.Sprintf("broker's produce answer left out %s/%d", b.p.t.name, b.p.id), Err: errs.ErrProtocol}
			b.p.retry(b, err, true)
			continue
		}
		b.p.resolve(b, r.addr, pr)
	}
}
