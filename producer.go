package keel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/partition"
	"github.com/keel-go/keel/internal/produce"
	"github.com/keel-go/keel/internal/record"
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
	budget *budget
	disp   *dispatcher
	// spare is written by the response goroutines a chunk at a time:
	// kept off the cache line of mu, which every Produce takes.
	spare *outgoingBin
	// handy is the producers' own share of spare records, guarded by
	// budget.mu, which every Produce holds anyway while it takes room:
	// taking bookkeeping from it costs no lock of its own, and it is
	// refilled from spare a run at a time (the free list's own lock per
	// record, shared with the response goroutines, was about 6 % of
	// Produce's CPU time with 100 B records).
	handy []*outgoing

	stopEvents func()

	mu        sync.RWMutex // held for reading while a Produce is entering the engine
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// outgoing is a record in flight with what the producer needs to report it.
type outgoing struct {
	rec    produce.Rec
	msg    *Message
	target target
	size   int64
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
	p := &Producer{client: client, cfg: cfg, spare: new(outgoingBin)}
	p.budget = newBudget(cfg.maxRecords, cfg.maxBytes)
	p.disp = newDispatcher(p.budget, cfg.eventsBuffer, func(err error) { p.disp.emit(ErrorEvent{Err: err}) })
	p.engine = produce.New(produce.Config{
		Acks:             int16(cfg.acks),
		Idempotent:       cfg.idempotent,
		MaxInFlight:      cfg.maxInFlight,
		DeliveryTimeout:  cfg.deliveryTimeout,
		RequestTimeout:   cfg.requestTimeout,
		Linger:           cfg.linger,
		MaxBatchBytes:    cfg.maxBatchBytes,
		MaxRequestBytes:  cfg.maxRequestBytes,
		MaxBufferedBytes: cfg.maxBytes,
		Compression:      cfg.compression,
		RetryBackoff:     conn.Backoff{Min: cfg.retryMin, Max: cfg.retryMax},
		Partitioner:      cfg.partitioner,
		Complete:         p.complete,
		Warn: func(msg string, err error) {
			client.logger.Warn("keel: "+msg, "err", err)
			p.disp.emit(Warning{Message: msg, Err: err})
		},
		Logger: client.logger,
	}, client.pool, client.meta)
	p.stopEvents = client.events.add(p.disp.emit)
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
		p.reportUnheld(t, Delivery{Message: msg, Partition: -1, Offset: -1,
			Err: &ProduceError{Topic: topicOf(msg), Partition: -1, Outcome: NotWritten, Err: errs.NilContext(method)}})
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
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()

	var problems []error
	if err := p.engine.Flush(ctx); err != nil {
		problems = append(problems, fmt.Errorf("flush: %w", err))
	}
	p.engine.Close()
	p.stopEvents()

	// Give readers until ctx ends to take the reports still queued.
	for p.disp.pendingReports() > 0 && ctx.Err() == nil {
		t := time.NewTimer(2 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
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

func (p *Producer) produce(ctx context.Context, msg *Message, t target, wait bool) error {
	if msg == nil || msg.Topic == "" {
		why := "nil message"
		if msg != nil {
			why = "message has no topic"
		}
		p.reportUnheld(t, Delivery{Message: msg, Partition: -1, Offset: -1,
			Err: &ProduceError{Partition: -1, Outcome: NotWritten, Err: errs.With(ErrInvalidMessage, errors.New("keel: "+why))}})
		return nil
	}
	size := messageSize(msg)
	if wait {
		if err := p.budget.acquireHeld(ctx, size); err != nil {
			p.reportUnheld(t, Delivery{Message: msg, Partition: -1, Offset: -1,
				Err: &ProduceError{Topic: msg.Topic, Partition: -1, Outcome: NotWritten, Err: fmt.Errorf("waiting for room in the producer's buffer: %w", err)}})
			return nil
		}
	} else if !p.budget.tryAcquireHeld(size) {
		return ErrBufferFull
	}
	o := p.takeOutgoingLocked()
	p.budget.mu.Unlock()

	o.msg, o.target, o.size = msg, t, size
	o.rec.Topic = msg.Topic
	o.rec.Partition = partition.Unassigned
	if p.cfg.manual {
		o.rec.Partition = msg.Partition
	}
	ts := msg.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	o.rec.Record = record.Record{Key: msg.Key, Value: msg.Value, Headers: msg.Headers, Timestamp: ts.UnixMilli()}
	o.rec.Ctx = nil
	if ctx.Done() != nil {
		o.rec.Ctx = ctx
	}
	o.rec.Owner = o

	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		p.report(t, Delivery{Message: msg, Partition: -1, Offset: -1,
			Err: &ProduceError{Topic: msg.Topic, Partition: -1, Outcome: NotWritten, Err: ErrProducerClosed}}, size)
		return nil
	}
	p.engine.Add(&o.rec)
	p.mu.RUnlock()
	return nil
}

// complete turns the engine's results into delivery reports and hands
// them to the dispatcher a chunk at a time (one lock per chunk, not per
// record). The chunk lives on the stack; its size bounds how long the
// dispatcher's lock is held at once.
func (p *Producer) complete(recs []*produce.Rec, res func(int, *produce.Rec) produce.Result) {
	var buf [64]report
	var done [len(buf)]*outgoing
	for start := 0; start < len(recs); start += len(buf) {
		chunk := buf[:min(len(buf), len(recs)-start)]
		for i := range chunk {
			r := recs[start+i]
			done[i] = r.Owner.(*outgoing)
			chunk[i] = p.toReport(r, res(start+i, r))
		}
		p.disp.deliverAll(chunk)
		p.spare.putAll(done[:len(chunk)])
	}
}

// toReport makes r's delivery report; the engine is done with r once it
// reported it.
func (p *Producer) toReport(r *produce.Rec, res produce.Result) report {
	o := r.Owner.(*outgoing)
	d := Delivery{Message: o.msg, Partition: res.Partition, Offset: res.Offset}
	if res.Timestamp >= 0 {
		d.Timestamp = time.UnixMilli(res.Timestamp)
	}
	if res.Err != nil {
		outcome := NotWritten
		if res.MaybeWritten {
			outcome = OutcomeUnknown
		}
		d.Err = &ProduceError{Topic: o.msg.Topic, Partition: res.Partition, Outcome: outcome, Err: res.Err}
		d.Offset = -1
	}
	rep := report{t: o.target, d: d, size: o.size}
	*o = outgoing{}
	return rep
}

// takeOutgoingLocked returns spare bookkeeping for one record. Callers
// hold budget.mu.
func (p *Producer) takeOutgoingLocked() *outgoing {
	if len(p.handy) == 0 {
		p.handy = p.spare.takeRun(p.handy)
		if len(p.handy) == 0 {
			return new(outgoing)
		}
	}
	n := len(p.handy) - 1
	o := p.handy[n]
	p.handy[n] = nil
	p.handy = p.handy[:n]
	return o
}

// outgoingBin recycles the per-record bookkeeping. Produce takes records
// a run at a time (into Producer.handy) and the response path gives them
// back a chunk at a time, each under one short hold of mu. A sync.Pool
// cost a tenth of the CPU time with 100 B records (issue 6): records are
// taken on the producing goroutine's P and given back on a response
// goroutine's, so every Get stole from another P and every Put grew the
// other P's ring. (Slabs of fresh records cost more still, in garbage
// collection.) The bin keeps at most keepOutgoing records; beyond that
// they are left to the garbage collector, and Produce allocates.
type outgoingBin struct {
	mu   sync.Mutex
	free []*outgoing
}

// keepOutgoing bounds the spare records the bin keeps: about 7 MB at
// most, and never more than the producer had in flight at once (its
// record budget bounds that). A response settling several 1 MB batches
// of 100 B records hands back tens of thousands of records at once; with
// room for only 8192 most went to the garbage collector and Produce
// allocated again for about a fifth of its records (produce 100 B in the
// cross-client benchmark: 1.27 allocations per record, 1.11 with 32768).
const keepOutgoing = 32768

// outgoingRun is how many spare records takeRun hands over at once.
const outgoingRun = 64

// takeRun appends up to outgoingRun spare records to dst (the caller's
// empty cache) under one hold of mu.
func (b *outgoingBin) takeRun(dst []*outgoing) []*outgoing {
	b.mu.Lock()
	n := len(b.free)
	from := max(n-outgoingRun, 0)
	dst = append(dst, b.free[from:]...)
	clear(b.free[from:])
	b.free = b.free[:from]
	b.mu.Unlock()
	return dst
}

// putAll takes back records the engine is done with, already cleared.
func (b *outgoingBin) putAll(os []*outgoing) {
	b.mu.Lock()
	if room := keepOutgoing - len(b.free); room > 0 {
		b.free = append(b.free, os[:min(room, len(os))]...)
	}
	b.mu.Unlock()
}

// report hands a report to its target; size is the budget it holds.
func (p *Producer) report(t target, d Delivery, size int64) { p.disp.deliver(t, d, size) }

// reportUnheld reports a record that never got budget.
func (p *Producer) reportUnheld(t target, d Delivery) {
	p.budget.holdUnbudgeted()
	p.disp.deliver(t, d, 0)
}

// messageSize is what a message holds of the buffer budget: its bytes plus
// a fixed overhead for the record's bookkeeping.
func messageSize(m *Message) int64 {
	n := int64(len(m.Key)+len(m.Value)) + 64
	for _, h := range m.Headers {
		n += int64(len(h.Key)+len(h.Value)) + 8
	}
	return n
}
