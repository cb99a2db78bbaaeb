// Package produce is keel's produce pipeline:
//
//	record → partitioner → its partition's queue of batches (in order)
//	       → per-broker sink: seals ready batches (encodes them then, from
//	         the caller's values) into one ProduceRequest, at most
//	         MaxInFlight requests outstanding per broker
//	       → response → one report per batch, in order per partition
//
// Goroutines exist only while there is work: a sink drains on its own
// goroutine while it has ready batches, a responder per sink waits for the
// answers in order, and a timer goroutine expires records while any are
// buffered.
//
// # What a record costs
//
// A record touches its partition's mutex (to join the open batch) and
// atomics (Ledger: budget and flush generation). No lock shared by all
// partitions is taken per record: topics, partition lists and sinks are
// published as immutable views read with an atomic load, wake-ups are per
// batch, and reports are handed on a batch at a time. Records are kept by
// value in their batch (no allocation per record) and hold the caller's
// key and value until their report: a batch is encoded when it is sent,
// not when its records are produced (see docs/BENCHMARKS.md, "copy at
// Produce or encode at send", for the measurements behind that choice).
//
// # Lock order
//
// A goroutine holding a lock may take only locks below it, never above:
//
//	topicState.mu   metadata wait queue, the topic's partition list
//	partState.mu    batches, sequence state, the report queue (outbox)
//	Engine.mu, sink.mu, idempotence.mu, recycler.mu, Ledger.mu
//	                leaves: none of them is held while taking another
//
// No lock is held while Config.Complete or Config.Warn runs: reports are
// queued under partState.mu and handed over after it is released, by one
// goroutine at a time per partition (partState.deliver), which keeps them
// in the order they were decided.
package produce

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/internal/partition"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/internal/wait"
)

// Rec is one record on its way through the pipeline. The engine keeps it
// by value in its batch; Record's key, value and headers stay the caller's
// until the record is reported (they are encoded when the batch is sent).
type Rec struct {
	Record    record.Record // a nil Key is Kafka's null key
	Partition int32         // explicit partition, or partition.Unassigned
	size      int32         // encoded size in its batch (beside Partition: one word for both)
	// Ctx cancels the record while it is unsent; nil means never.
	Ctx context.Context
	// Owner and Notify are the caller's, returned untouched in reports
	// (the producer keeps the message and its report target there).
	Owner  any
	Notify any
	// Held is the budget the record holds, returned untouched.
	Held int64

	// deadline (engine clock, ns): Add time plus the delivery timeout,
	// bounded by its batch's. Zero until the record is placed.
	deadline int64
	gen      *generation // flush generation it was added in
}

// Result is the outcome of one record.
type Result struct {
	Partition int32
	Offset    int64 // -1 when unknown (acks=0, failures)
	Timestamp int64 // milliseconds; the broker's when the topic uses LogAppendTime
	Err       error // nil when delivered
	// MaybeWritten is set on a failure when the record was sent and no
	// answer settled its fate: it may have been written.
	MaybeWritten bool
}

// Report is the outcome of a run of records of one partition (usually a
// batch), handed to Config.Complete. Result(i) is the outcome of Recs[i].
type Report struct {
	Topic     string
	Partition int32
	Recs      Recs

	base       int64 // offset of the first delivered record; -1 unknown
	appendTime int64 // the broker's timestamp (LogAppendTime), or -1
	err        error // the failure of every record, nil if delivered
	maybe      bool  // failures may have been written
	// preset holds, for a batch some of whose records had already failed
	// (INVALID_RECORD named them), each record's own failure; nil for
	// most reports. Records with a preset failure took no offset.
	preset []error

	recycle *batch // returned to the engine's free list once reported
}

// Delivered reports whether every record of r was delivered.
func (r *Report) Delivered() bool { return r.err == nil && r.preset == nil }

// Result returns the outcome of r.Recs[i].
func (r *Report) Result(i int) Result {
	res := Result{Partition: r.Partition, Offset: -1, Timestamp: r.Recs.At(i).Record.Timestamp}
	if r.preset != nil {
		if err := r.preset[i]; err != nil {
			res.Err, res.Timestamp = err, -1
			return res
		}
	}
	if r.err != nil {
		res.Err, res.MaybeWritten, res.Timestamp = r.err, r.maybe, -1
		return res
	}
	if r.base >= 0 {
		delta := int64(i)
		if r.preset != nil {
			delta = 0
			for _, e := range r.preset[:i] {
				if e == nil {
					delta++
				}
			}
		}
		res.Offset = r.base + delta
	}
	if r.appendTime >= 0 {
		res.Timestamp = r.appendTime
	}
	return res
}

// Config configures an Engine. Durations and sizes must be validated by
// the caller.
type Config struct {
	Acks            int16 // -1 all, 1 leader, 0 none
	Idempotent      bool
	MaxInFlight     int
	DeliveryTimeout time.Duration
	RequestTimeout  time.Duration // also the broker-side produce timeout
	Linger          time.Duration
	MaxBatchBytes   int
	MaxRequestBytes int
	// MaxBufferedRecords and MaxBufferedBytes are the producer's buffer
	// budget (the Ledger's).
	MaxBufferedRecords int
	MaxBufferedBytes   int64
	Compression        record.Compression
	RetryBackoff       wait.Backoff
	Partitioner        partition.Partitioner
	// Complete receives each record's outcome exactly once, a run of
	// records at a time: it is called from keel's goroutines, in order
	// per partition, never with a lock of the engine held, and must not
	// block. It returns whether it kept rep: a kept report and its
	// records stay valid until the producer gives it back with
	// Engine.Recycle (which it must, once); otherwise Complete must not
	// keep rep or rep.Recs after it returns.
	Complete func(rep *Report) (kept bool)
	// Warn reports trouble keel is working around (retries, epoch bumps).
	Warn   func(msg string, err error)
	Logger *slog.Logger
	// Txn, when set, makes the producer transactional (txn.go).
	Txn *TxnHooks
	// OnBatch, when set, is told of every batch written (observe.go).
	OnBatch func(Batch)
}

// Engine runs the produce pipeline of one producer.
type Engine struct {
	cfg    Config
	pool   *conn.Pool
	meta   *meta.Meta
	ledger *Ledger
	start  time.Time // the engine clock's origin (monotonic)

	ctx    context.Context // ended by Close: abandons requests in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	idem *idempotence
	bufs recycler // wire buffers and record slices for the next batches

	closed  atomic.Bool
	reaping atomic.Bool
	last    atomic.Pointer[topicState]             // the topic of the last Add: most producers write one
	topics  atomic.Pointer[map[string]*topicState] // read without a lock; copied on write under mu
	sinks   atomic.Pointer[map[int32]*sink]

	mu sync.Mutex // serialises adding topics and sinks, and Close

	unsubscribe func()

	obs counters // observe.go
}

// ErrClosed is the cause of records failed because the producer closed.
var ErrClosed = errs.NewSentinel("keel: producer closed before the record was delivered", false)

// New starts an engine.
func New(cfg Config, pool *conn.Pool, m *meta.Meta) *Engine {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Warn == nil {
		cfg.Warn = func(string, error) {}
	}
	e := newEngine(cfg)
	e.pool, e.meta = pool, m
	e.unsubscribe = m.Subscribe(e.onMetadata)
	return e
}

func newEngine(cfg Config) *Engine {
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{cfg: cfg, ctx: ctx, cancel: cancel, start: time.Now(),
		ledger: NewLedger(max(cfg.MaxBufferedRecords, 1), max(cfg.MaxBufferedBytes, 1))}
	e.topics.Store(&map[string]*topicState{})
	e.sinks.Store(&map[int32]*sink{})
	e.bufs.init(&cfg)
	if cfg.Idempotent {
		e.idem = newIdempotence(e)
	}
	e.unsubscribe = func() {}
	return e
}

// Ledger returns the engine's account of held records (the producer's
// buffer budget).
func (e *Engine) Ledger() *Ledger { return e.ledger }

// now is the engine clock: nanoseconds since the engine started.
func (e *Engine) now() int64 { return int64(time.Since(e.start)) }

// at converts an engine clock reading to a time.
func (e *Engine) at(ns int64) time.Time { return e.start.Add(time.Duration(ns)) }

// Add takes a record into the pipeline; the engine copies *r. Its outcome
// arrives through Config.Complete, possibly before Add returns.
func (e *Engine) Add(topic string, r *Rec) {
	// No clock read here: a record that joins an open batch takes the
	// batch's deadline, which is earlier; the clock is read when a
	// record opens a batch or waits for metadata. (Two clock reads per
	// record were a tenth of the producer's CPU time, issue 6.)
	r.deadline = 0
	r.gen = e.ledger.enter()
	if !e.reaping.Load() {
		e.startReaper()
	}
	t := e.last.Load()
	if t == nil || t.name != topic {
		t = e.topic(topic)
		if t == nil { // closed
			e.failNow(topic, r, ErrClosed)
			return
		}
		e.last.Store(t)
	}
	t.add(r)
}

// failNow reports one record that never reached a partition.
func (e *Engine) failNow(topic string, r *Rec, err error) {
	e.report(&Report{Topic: topic, Partition: r.Partition, Recs: LooseRecs([]Rec{*r}), base: -1, appendTime: -1, err: err})
}

// topic returns the state of topic name, creating it; nil once closed.
func (e *Engine) topic(name string) *topicState {
	if t := (*e.topics.Load())[name]; t != nil {
		return t
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return nil
	}
	old := *e.topics.Load()
	if t := old[name]; t != nil {
		return t
	}
	next := make(map[string]*topicState, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	t := newTopicState(e, name)
	next[name] = t
	e.topics.Store(&next)
	return t
}

func (e *Engine) allTopics() []*topicState {
	m := *e.topics.Load()
	out := make([]*topicState, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	return out
}

func (e *Engine) allSinks() []*sink {
	m := *e.sinks.Load()
	out := make([]*sink, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	return out
}

// sinkFor returns the sink of broker id, creating it.
func (e *Engine) sinkFor(id int32) *sink {
	if s := (*e.sinks.Load())[id]; s != nil {
		return s
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	old := *e.sinks.Load()
	if s := old[id]; s != nil {
		return s
	}
	next := make(map[int32]*sink, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	s := newSink(e, id)
	next[id] = s
	e.sinks.Store(&next)
	return s
}

// report hands rep to the producer and settles its records' generations;
// then its batch's memory may carry the next batch, unless the producer
// kept rep (it gives it back with Recycle once it is done with it).
func (e *Engine) report(rep *Report) {
	if rep.Recs.Len() == 0 {
		return
	}
	var buf [4]genRun
	runs := runsOf(&rep.Recs, buf[:0])
	// Settled after Complete, so that a Flush that returns has had its
	// records reported; rep is not touched once it was kept.
	kept := e.cfg.Complete(rep)
	e.ledger.settleRuns(runs)
	if !kept {
		e.Recycle(rep)
	}
}

// Recycle takes back a report Config.Complete kept, once the producer is
// done with it and its records: their memory carries later batches.
func (e *Engine) Recycle(rep *Report) {
	if rep.recycle != nil {
		e.bufs.putRecs(rep.recycle)
	}
}

// Flush makes every buffered record ready to send at once and waits until
// all records added before it have an outcome, or ctx ends. Records added
// while it waits do not hold it up: they belong to a later generation.
func (e *Engine) Flush(ctx context.Context) error {
	g := e.ledger.startFlush()
	select {
	case <-g.done:
		return nil
	default:
	}
	e.ledger.flushing.Add(1)
	defer e.ledger.flushing.Add(-1)
	for _, t := range e.allTopics() {
		t.wakeAll()
	}
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) isFlushing() bool { return e.ledger.flushing.Load() > 0 }

// Close stops the engine: records still buffered or in flight fail with
// ErrClosed (outcome unknown for those already sent). Call Flush first to
// deliver what can be delivered. Close waits for the engine's goroutines,
// which end promptly: requests in flight are abandoned and a request
// stuck in a socket write is cut off.
func (e *Engine) Close() {
	e.mu.Lock()
	already := e.closed.Swap(true)
	e.mu.Unlock()
	if !already {
		e.unsubscribe()
		e.cancel() // requests in flight return at once, abandoned
		// A record that was entering a partition when closed was set
		// either is there now (failAll takes the partition's lock) or
		// sees closed under that lock and fails itself.
		for _, t := range e.allTopics() {
			t.failAll(ErrClosed)
		}
	}
	e.wg.Wait()
	// Requests that were in flight returned with ctx errors and their
	// batches were failed by failAll or by their own handlers; anything
	// that raced in is failed here.
	for _, t := range e.allTopics() {
		t.failAll(ErrClosed)
	}
	e.bufs.release()
}

// onMetadata moves partitions whose leader changed, wakes partitions that
// were waiting for a leader, and checks topics the cluster no longer knows.
func (e *Engine) onMetadata(s *meta.Snapshot) {
	for _, t := range e.allTopics() {
		t.onMetadata(s)
	}
}

// goStart runs f on a goroutine of the engine's (Close waits for it),
// unless the engine is closed.
func (e *Engine) goStart(f func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return false
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
	return true
}

// startReaper starts the goroutine that expires records, unless it runs.
func (e *Engine) startReaper() {
	if e.reaping.CompareAndSwap(false, true) && !e.goStart(e.reap) {
		e.reaping.Store(false)
	}
}

// reap expires records past their delivery timeout. It runs while records
// are held.
func (e *Engine) reap() {
	every := min(max(e.cfg.DeliveryTimeout/20, 5*time.Millisecond), 100*time.Millisecond)
	for wait.Sleep(e.ctx, every) {
		if e.idle() {
			e.reaping.Store(false)
			// A record added between the check and the store saw the
			// reaper running and started none: look again.
			if e.idle() {
				e.bufs.release() // idle: hold no batch memory
				return
			}
			if !e.reaping.CompareAndSwap(false, true) {
				return // another reaper started meanwhile
			}
			continue
		}
		now := e.now()
		for _, t := range e.allTopics() {
			t.expire(now)
		}
	}
}

// idle reports whether no record is in the engine.
func (e *Engine) idle() bool { return e.ledger.Held() == 0 && !e.ledger.unsettled() }

// DropCancelled fails now, as not written, every record whose ctx ended
// before it was sent (the reaper would on its next tick): Send and SendAll
// call it when their ctx ends, so that the reports they return say what
// happened to each record rather than guess. When it returns, every such
// record has been reported.
func (e *Engine) DropCancelled() {
	now := e.now()
	for _, t := range e.allTopics() {
		t.dropCancelledWaiting()
		t.expire(now)
		// Reports another goroutine is handing on for these partitions
		// came first; wait for them too, so that ours have arrived.
		for _, p := range t.partitions() {
			p.awaitDelivered()
		}
	}
}

// isClosing reports whether Close has begun.
func (e *Engine) isClosing() bool { return e.ctx.Err() != nil }
