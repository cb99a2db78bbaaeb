package keel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/partition"
	"github.com/keel-go/keel/internal/produce"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/internal/wait"
)

// Producer sends records to Kafka. Every record ends in exactly one
// outcome — delivered, not written, or outcome unknown — within its
// delivery timeout, reported once to the target given when it was
// produced: a channel, a callback, or (with neither) Events().
//
// The defaults are the safe ones: acks from all in-sync replicas,
// idempotence on with up to 5 requests in flight per broker and order
// kept, retries with exponential backoff bounded by a 2 minute delivery
// timeout.
//
// A Producer is safe for concurrent use. Close it before its Client.
type Producer struct {
	client *Client
	cfg    producerConfig
	engine *produce.Engine
	// ledger is the engine's account of held records: the buffer budget
	// Produce takes room from and reports give back (issue 11: one
	// bookkeeping component, atomics only on the way of a record).
	ledger *produce.Ledger
	disp   *dispatcher
	txn    *txnState // nil unless TransactionalID (producer_txn.go)
	// hooks are the client's (nil without WithHooks); outcomes counts
	// reports for Stats; stalls watches for stuck partitions.
	hooks    *hookSet
	outcomes outcomeCounts
	stalls   *produceStalls

	stopEvents func()

	closed    atomic.Bool // Produce refuses records once set
	closeOnce sync.Once
	closeErr  error
}

// NewProducer returns a producer that sends through client. Options are
// checked together; an invalid combination is an error matching
// ErrInvalidConfig that says what to change.
func NewProducer(client *Client, opts ...ProducerOption) (*Producer, error) {
	if client == nil {
		return nil, &ConfigError{Option: "client", Problem: "nil client", Fix: "pass the *Client from NewClient"}
	}
	cfg := defaultProducerConfig(client)
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Producer{client: client, cfg: cfg, hooks: client.hooks}
	var txnHooks *produce.TxnHooks
	if cfg.txnIDSet {
		p.txn = newTxnState(p, cfg.txnID, cfg.txnTimeout)
		txnHooks = p.txn.hooks()
	}
	var disp *dispatcher
	var onBatch func(produce.Batch)
	if h := client.hooks; h != nil && len(h.produceBatch) > 0 {
		onBatch = func(b produce.Batch) { h.onProduceBatch(ProduceBatch(b)) }
	}
	p.engine = produce.New(produce.Config{
		Acks:               int16(cfg.acks),
		Idempotent:         cfg.idempotent,
		MaxInFlight:        cfg.maxInFlight,
		DeliveryTimeout:    cfg.deliveryTimeout,
		RequestTimeout:     cfg.requestTimeout,
		Linger:             cfg.linger,
		MaxBatchBytes:      cfg.maxBatchBytes,
		MaxRequestBytes:    cfg.maxRequestBytes,
		MaxBufferedRecords: cfg.maxRecords,
		MaxBufferedBytes:   cfg.maxBytes,
		Compression:        cfg.compression,
		RetryBackoff:       wait.Backoff{Min: cfg.retryMin, Max: cfg.retryMax},
		Partitioner:        cfg.partitioner,
		Complete:           p.complete,
		Warn: func(msg string, err error) {
			client.logger.Warn("keel: "+msg, "err", err)
			disp.emit(Warning{Message: msg, Err: err})
		},
		Logger:  client.logger,
		Txn:     txnHooks,
		OnBatch: onBatch,
	}, client.pool, client.meta)
	p.ledger = p.engine.Ledger()
	disp = newDispatcher(p.ledger, cfg.eventsBuffer, func(err error) { p.disp.emit(ErrorEvent{Err: err}) }, p.engine.Recycle)
	p.disp = disp
	p.stopEvents = client.events.add(p.disp.emit)
	p.stalls = startProduceStalls(p)
	return p, nil
}

// Produce sends msg asynchronously. Its delivery report goes to deliveries,
// or to Events() when deliveries is nil. Produce waits, under ctx, only for
// room in the producer's buffer; ctx also cancels the record while it has
// not been sent (its report then says NotWritten with ctx's error). Once
// sent, a record keeps its own delivery timeout whatever ctx does.
//
// Every call leads to exactly one report, including for invalid messages,
// a nil ctx (ErrNilContext), and ctx ending while waiting for room. Reports
// to one channel arrive in order per partition. Do not close deliveries
// while producing to it.
//
// The producer keeps msg and does not copy its Key, Value or Headers: they
// are encoded when the record's batch is sent (and again if it is resent).
// Do not modify them until the record's report; the report's Message is
// msg.
func (p *Producer) Produce(ctx context.Context, msg *Message, deliveries chan<- Delivery) {
	p.produceChecked("Producer.Produce", ctx, msg, target{ch: deliveries})
}

// ProduceFunc is Produce with a callback: fn gets the delivery report. Callbacks
// run one at a time, in order, on a goroutine of the producer's, never on
// the network path; a slow callback slows only the callbacks behind it (and,
// through the buffer bound, Produce).
func (p *Producer) ProduceFunc(ctx context.Context, msg *Message, fn func(Delivery)) {
	if fn == nil {
		p.produceChecked("Producer.ProduceFunc", ctx, msg, target{})
		return
	}
	p.produceChecked("Producer.ProduceFunc", ctx, msg, target{fn: fn})
}

// produceChecked is produce for the waiting entry points, which turn a
// nil ctx into a NotWritten report instead of a crash later.
func (p *Producer) produceChecked(method string, ctx context.Context, msg *Message, t target) {
	if ctx == nil {
		p.reportUnheld(t, msg,
			&ProduceError{Topic: topicOf(msg), Partition: -1, Outcome: NotWritten, Err: errs.NilContext(method)})
		return
	}
	p.produce(ctx, msg, t, true)
}

func topicOf(m *Message) string {
	if m == nil {
		return ""
	}
	return m.Topic
}

// TryProduce is Produce without waiting: when the buffer is full it returns
// ErrBufferFull and sends no report. Otherwise it returns nil and the report
// goes to deliveries (or Events()).
func (p *Producer) TryProduce(msg *Message, deliveries chan<- Delivery) error {
	return p.produce(context.Background(), msg, target{ch: deliveries}, false)
}

// Send produces msg and waits for its outcome: a thin wait over Produce.
// The error is the delivery's error. If ctx ends first, Send returns at
// once with the record's real outcome when that is known by then (a
// record not yet sent is withdrawn: NotWritten, with ctx's error), and
// otherwise OutcomeUnknown: the record was already sent, keeps its own
// delivery timeout and may still be stored. The error matches ctx's error
// either way.
func (p *Producer) Send(ctx context.Context, msg *Message) (Delivery, error) {
	if ctx == nil {
		err := &ProduceError{Topic: topicOf(msg), Partition: -1, Outcome: NotWritten, Err: errs.NilContext("Producer.Send")}
		return Delivery{Message: msg, Partition: -1, Offset: -1, Err: err}, err
	}
	ch := make(chan Delivery, 1)
	p.produce(ctx, msg, target{ch: ch}, true)
	select {
	case d := <-ch:
		return d, d.Err
	case <-ctx.Done():
	}
	// Withdraw what was not sent yet: those reports land in ch now.
	p.engine.DropCancelled()
	select {
	case d := <-ch:
		return d, d.Err
	default:
	}
	d := abandonedDelivery(msg, ctx)
	return d, d.Err
}

// abandonedDelivery is the report Send and SendAll give for a record whose
// ctx ended after it was sent: its fate is not known to the caller.
func abandonedDelivery(msg *Message, ctx context.Context) Delivery {
	return Delivery{Message: msg, Partition: -1, Offset: -1, Err: &ProduceError{
		Topic: topicOf(msg), Partition: -1, Outcome: OutcomeUnknown,
		Err: fmt.Errorf("ctx ended after the record was sent and before the broker answered; it may still be stored (it keeps its own delivery timeout): %w", context.Cause(ctx)),
	}}
}

// SendAll produces every message and waits for all their outcomes. The
// deliveries are in the order of msgs and each carries its record's
// outcome; the error joins the failures. When ctx ends first, records not
// yet sent are withdrawn (NotWritten) and records already sent report
// OutcomeUnknown (see Send); the error then matches ctx's error.
func (p *Producer) SendAll(ctx context.Context, msgs ...*Message) ([]Delivery, error) {
	out := make([]Delivery, len(msgs))
	if ctx == nil {
		var failed []error
		for i, m := range msgs {
			err := &ProduceError{Topic: topicOf(m), Partition: -1, Outcome: NotWritten, Err: errs.NilContext("Producer.SendAll")}
			out[i] = Delivery{Message: m, Partition: -1, Offset: -1, Err: err}
			failed = append(failed, err)
		}
		return out, errors.Join(failed...)
	}
	ch := make(chan Delivery, len(msgs))
	// Reports name their *Message; the same pointer may be passed more
	// than once, so each pointer maps to its slots in produce order.
	slots := make(map[*Message][]int, len(msgs))
	for i, m := range msgs {
		slots[m] = append(slots[m], i)
	}
	filled := make([]bool, len(msgs))
	var failed []error
	take := func(d Delivery) {
		idx := slots[d.Message]
		if len(idx) == 0 {
			return
		}
		i := idx[0]
		slots[d.Message] = idx[1:]
		out[i], filled[i] = d, true
		if d.Err != nil {
			failed = append(failed, d.Err)
		}
	}
	for _, m := range msgs {
		p.produce(ctx, m, target{ch: ch}, true)
	}
	for got := 0; got < len(msgs); got++ {
		select {
		case d := <-ch:
			take(d)
			continue
		case <-ctx.Done():
		}
		p.engine.DropCancelled()
		for drained := false; !drained; {
			select {
			case d := <-ch:
				take(d)
			default:
				drained = true
			}
		}
		for i, m := range msgs {
			if !filled[i] {
				out[i] = abandonedDelivery(m, ctx)
				failed = append(failed, out[i].Err)
			}
		}
		break
	}
	return out, errors.Join(failed...)
}

// Events returns the producer's event stream: deliveries of records produced
// without a target (never dropped), and operational events (connections,
// throttling, metadata changes, warnings), which are dropped — and counted
// in DroppedEvents and an EventsDropped event — when the channel is full.
// Reading it is optional. It is closed by Close.
func (p *Producer) Events() <-chan Event { return p.disp.events }

// DroppedEvents is how many operational events Events() had no room for.
func (p *Producer) DroppedEvents() uint64 { return p.disp.dropped.Load() }

// Flush sends everything buffered at once and waits until every record
// produced before the call has an outcome, or ctx ends. It waits for the
// brokers' answers, not for reports to be read.
func (p *Producer) Flush(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("Producer.Flush")
	}
	return p.engine.Flush(ctx)
}

// Close flushes within ctx, then fails whatever is left with
// ErrProducerClosed (NotWritten, or OutcomeUnknown for records in flight),
// hands out the reports that can still be handed out within ctx, and stops
// the producer. It returns when ctx ends at the latest, whatever the
// readers of delivery channels do; reports nobody took by then are dropped
// and counted in the error. Events() is closed.
func (p *Producer) Close(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("Producer.Close")
	}
	p.closeOnce.Do(func() { p.closeErr = p.close(ctx) })
	return p.closeErr
}

func (p *Producer) close(ctx context.Context) error {
	p.closed.Store(true)

	var problems []error
	if err := p.engine.Flush(ctx); err != nil {
		problems = append(problems, fmt.Errorf("flush: %w", err))
	}
	// Close returns promptly: requests in flight are abandoned and a
	// write stuck on a broker that stopped reading is cut off.
	p.engine.Close()
	p.stalls.stop()
	p.stopEvents()

	// Give readers until ctx ends to take the reports still queued.
	for p.disp.pendingReports() > 0 && wait.Sleep(ctx, 2*time.Millisecond) {
	}
	p.disp.stop(ctx)
	if n := p.disp.unread.Load(); n > 0 {
		problems = append(problems, fmt.Errorf("%d delivery reports were never read and were dropped", n))
	}
	if len(problems) > 0 {
		return fmt.Errorf("keel: producer close: %w", errors.Join(problems...))
	}
	return nil
}

func (p *Producer) produce(ctx context.Context, msg *Message, t target, waitRoom bool) error {
	if msg == nil || msg.Topic == "" {
		why := "nil message"
		if msg != nil {
			why = "message has no topic"
		}
		p.reportUnheld(t, msg,
			&ProduceError{Partition: -1, Outcome: NotWritten, Err: errs.With(ErrInvalidMessage, errors.New("keel: "+why))})
		return nil
	}
	if p.closed.Load() {
		p.reportUnheld(t, msg,
			&ProduceError{Topic: msg.Topic, Partition: -1, Outcome: NotWritten, Err: ErrProducerClosed})
		return nil
	}
	if p.txn != nil {
		// Held to the engine's Add: a record is in its transaction's
		// flush or refused (txnState.gate).
		p.txn.gate.RLock()
		defer p.txn.gate.RUnlock()
		if err := p.txn.refuse(); err != nil {
			p.reportUnheld(t, msg,
				&ProduceError{Topic: msg.Topic, Partition: -1, Outcome: NotWritten, Err: err})
			return nil
		}
	}
	if h := p.hooks; h != nil && len(h.produce) > 0 {
		h.onProduce(ctx, msg) // before the size: it may add headers
	}
	size := messageSize(msg)
	if waitRoom {
		if err := p.ledger.Acquire(ctx, size); err != nil {
			p.reportUnheld(t, msg,
				&ProduceError{Topic: msg.Topic, Partition: -1, Outcome: NotWritten, Err: fmt.Errorf("waiting for room in the producer's buffer: %w", err)})
			return nil
		}
	} else if !p.ledger.TryAcquire(size) {
		if h := p.hooks; h != nil && len(h.produce) > 0 {
			h.onProduceNotTaken(msg, ErrBufferFull) // no report follows
		}
		return ErrBufferFull
	}
	if h := p.hooks; h != nil && len(h.buffer) > 0 {
		h.onBuffered(msg.Topic, 1, size)
	}
	rec := produce.Rec{Partition: partition.Unassigned, Owner: msg, Held: size}
	switch {
	case t.fn != nil:
		rec.Notify = t.fn
	case t.ch != nil:
		rec.Notify = t.ch
	}
	if p.cfg.manual {
		rec.Partition = msg.Partition
	}
	ts := msg.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	rec.Record = record.Record{Key: msg.Key, Value: msg.Value, Headers: msg.Headers, Timestamp: ts.UnixMilli()}
	if ctx.Done() != nil {
		rec.Ctx = ctx
	}
	// A record racing with Close is refused by the engine (ErrClosed,
	// which is ErrProducerClosed) and reported all the same.
	p.engine.Add(msg.Topic, &rec)
	return nil
}

// complete turns the engine's results into delivery reports and hands
// them to the dispatcher a chunk at a time (one lock per chunk, not per
// record). The chunk lives on the stack; its size bounds how long the
// dispatcher's lock is held at once. It returns whether the dispatcher
// kept rep (completeDelivered).
func (p *Producer) complete(rep *produce.Report) bool {
	if rep.Delivered() {
		return p.completeDelivered(rep)
	}
	var buf [64]report
	var tally outcomeTally
	h := p.hooks
	n := rep.Recs.Len()
	for start := 0; start < n; start += len(buf) {
		chunk := buf[:min(len(buf), n-start)]
		for i := range chunk {
			r := rep.Recs.At(start + i)
			chunk[i] = p.toReport(rep, r, start+i)
			tally.add(chunk[i].o.err, chunk[i].size, int64(len(r.Record.Key)+len(r.Record.Value)))
			if h != nil && len(h.produceRecord) > 0 {
				h.onProduceRecord(chunk[i].o.delivery())
			}
		}
		p.disp.deliverAll(chunk)
	}
	p.outcomes.add(&tally)
	if h != nil && len(h.buffer) > 0 {
		h.onUnbuffered(rep.Topic, n, tally.held)
	}
	return false
}

// completeDelivered is complete for a report whose records were all
// delivered, the common case. Records with a channel or Events() go on
// at once; those with a callback stay in rep, which the dispatcher keeps
// until their callbacks ran (dispatcher.keep): copying each report into
// the callback queue was a fifth of the producer's heap and most of its
// report-handling CPU with 100 B records (issue 11).
func (p *Producer) completeDelivered(rep *produce.Report) bool {
	var buf [64]report
	var tally outcomeTally
	h := p.hooks
	n := rep.Recs.Len()
	k, callbacks := 0, 0
	for i := range n {
		r := rep.Recs.At(i)
		tally.add(nil, r.Held, int64(len(r.Record.Key)+len(r.Record.Value)))
		if h != nil && len(h.produceRecord) > 0 {
			o := outcomeOf(rep, r, i)
			h.onProduceRecord(o.delivery())
		}
		if isCallback(r) {
			callbacks++
			continue
		}
		buf[k] = report{t: targetOf(r), o: outcomeOf(rep, r, i), size: r.Held}
		if k++; k == len(buf) {
			p.disp.deliverAll(buf[:k])
			k = 0
		}
	}
	if k > 0 {
		p.disp.deliverAll(buf[:k])
	}
	p.outcomes.add(&tally)
	if h != nil && len(h.buffer) > 0 {
		h.onUnbuffered(rep.Topic, n, tally.held)
	}
	if callbacks == 0 {
		return false
	}
	if p.disp.keep(rep, callbacks) {
		return true // rep belongs to the dispatcher now: not touched again
	}
	// Closed: the callbacks run here (deliverAfterClose).
	k = 0
	for i := range n {
		r := rep.Recs.At(i)
		if !isCallback(r) {
			continue
		}
		buf[k] = report{t: targetOf(r), o: outcomeOf(rep, r, i), size: r.Held}
		if k++; k == len(buf) {
			p.disp.deliverAll(buf[:k])
			k = 0
		}
	}
	if k > 0 {
		p.disp.deliverAll(buf[:k])
	}
	return false
}

// outcomeOf is the outcome of r, which is rep.Recs.At(i), without its
// error (toReport adds it).
func outcomeOf(rep *produce.Report, r *produce.Rec, i int) outcome {
	res := rep.Result(i)
	msg, _ := r.Owner.(*Message)
	return outcome{msg: msg, part: res.Partition, offset: res.Offset, ts: res.Timestamp}
}

// targetOf is where r's report goes.
func targetOf(r *produce.Rec) target {
	var t target
	switch n := r.Notify.(type) {
	case func(Delivery):
		t.fn = n
	case chan<- Delivery:
		t.ch = n
	}
	return t
}

// toReport makes the delivery report of r, which is rep.Recs.At(i).
func (p *Producer) toReport(rep *produce.Report, r *produce.Rec, i int) report {
	res := rep.Result(i)
	o := outcomeOf(rep, r, i)
	if res.Err != nil {
		kind := NotWritten
		if res.MaybeWritten {
			kind = OutcomeUnknown
		}
		o.err = &ProduceError{Topic: rep.Topic, Partition: res.Partition, Outcome: kind, Err: res.Err}
		o.offset = -1
		if p.txn != nil && !errors.Is(res.Err, ErrTxnAborted) {
			p.txn.recordFailed(o.err)
		}
	}
	return report{t: targetOf(r), o: o, size: r.Held}
}

// reportUnheld reports a record that never got budget: msg failed with
// err before it reached the engine.
func (p *Producer) reportUnheld(t target, msg *Message, err *ProduceError) {
	p.ledger.HoldUnbudgeted()
	var tally outcomeTally
	tally.add(err, 0, 0) // a failure: no bytes delivered
	p.outcomes.add(&tally)
	o := outcome{msg: msg, err: err, part: -1, offset: -1, ts: -1}
	if h := p.hooks; h != nil && len(h.produceRecord) > 0 {
		h.onProduceRecord(o.delivery())
	}
	p.disp.deliver(t, o, 0)
}

// messageSize is what a message holds of the buffer budget: its bytes plus
// the engine's bookkeeping for it (produce.RecordOverhead), so that
// MaxBufferedBytes bounds what keel keeps for its records, not only their
// payloads.
func messageSize(m *Message) int64 {
	n := int64(len(m.Key)+len(m.Value)) + produce.RecordOverhead
	for _, h := range m.Headers {
		n += int64(len(h.Key)+len(h.Value)) + 8
	}
	return n
}
