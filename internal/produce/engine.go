// Package produce is keel's produce pipeline:
//
//	record → partitioner → per-partition batches (in order)
//	       → per-broker sink: drains ready batches into one ProduceRequest,
//	         at most MaxInFlight requests outstanding per broker
//	       → response → one Result per record
//
// Goroutines exist only while there is work: a sink drains on its own
// goroutine while it has ready batches, each request in flight has one
// goroutine waiting for its answer, and a timer goroutine expires records
// while any are buffered. Per-partition state lives in plain structs guarded
// by the partition's mutex.
package produce

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/internal/partition"
	"github.com/keel-go/keel/internal/record"
)

// Rec is one record on its way through the pipeline.
type Rec struct {
	Topic     string
	Partition int32         // explicit partition, or partition.Unassigned
	Record    record.Record // a nil Key is Kafka's null key
	// Ctx cancels the record while it is unsent; nil means never.
	Ctx context.Context
	// Owner is the caller's handle, returned untouched in Complete.
	Owner any

	size int // encoded size, for batch accounting
	// deadline: Add time plus the delivery timeout, bounded by its
	// batch's. Zero until the record is placed (see partState.append).
	deadline time.Time
	gen      uint64 // flush generation it was added in
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
	// MaxBufferedBytes is the producer's buffer budget; it sizes the
	// engine's cache of batch buffers.
	MaxBufferedBytes int64
	Compression      record.Compression
	RetryBackoff     conn.Backoff
	Partitioner      partition.Partitioner
	// Complete receives each record's outcome exactly once: res(i, recs[i])
	// is the outcome of recs[i]. It is called from keel's goroutines, in
	// order per partition, and must not block. Records come a batch at a
	// time so that the caller can hand their reports on with one lock per
	// batch rather than per record.
	Complete func(recs []*Rec, res func(i int, r *Rec) Result)
	// Warn reports trouble keel is working around (retries, epoch bumps).
	Warn   func(msg string, err error)
	Logger *slog.Logger
}

// Engine runs the produce pipeline of one producer.
type Engine struct {
	cfg  Config
	pool *conn.Pool
	meta *meta.Meta

	ctx    context.Context // ended by Close: abandons requests in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	idem *idempotence
	bufs recycler // builders and wire buffers for the next batches

	mu       sync.Mutex
	topics   map[string]*topicState
	sinks    map[int32]*sink
	pending  int            // records added and not yet completed
	gen      uint64         // flush generation of records added now
	genCount int            // records of generation gen not yet completed
	perGen   map[uint64]int // the same for older generations (Flush moves genCount here)
	last     *topicState    // the topic of the last Add: most producers write one
	drained  chan struct{}  // closed and replaced when a generation empties
	flushing int
	closed   bool
	reaping  bool

	unsubscribe func()
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
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		cfg:     cfg,
		pool:    pool,
		meta:    m,
		ctx:     ctx,
		cancel:  cancel,
		topics:  make(map[string]*topicState),
		sinks:   make(map[int32]*sink),
		perGen:  make(map[uint64]int),
		drained: make(chan struct{}),
	}
	e.bufs.keep = keepFor(&cfg)
	if cfg.Idempotent {
		e.idem = newIdempotence(e)
	}
	e.unsubscribe = m.Subscribe(e.onMetadata)
	return e
}

// Add takes a record into the pipeline. Its outcome arrives through
// Config.Complete, possibly before Add returns.
func (e *Engine) Add(r *Rec) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.cfg.Complete([]*Rec{r}, func(int, *Rec) Result {
			return Result{Partition: r.Partition, Offset: -1, Err: ErrClosed}
		})
		return
	}
	e.pending++
	r.gen = e.gen
	e.genCount++
	// No clock read here: a record that joins an open batch takes the
	// batch's deadline, which is earlier; the clock is read when a
	// record opens a batch or waits for metadata. (Two clock reads per
	// record were a tenth of the producer's CPU time, issue 6.)
	r.deadline = time.Time{}
	startReaper := !e.reaping
	e.reaping = true
	t := e.last
	if t == nil || t.name != r.Topic {
		if t = e.topics[r.Topic]; t == nil {
			t = newTopicState(e, r.Topic)
			e.topics[r.Topic] = t
		}
		e.last = t
	}
	e.mu.Unlock()
	if startReaper {
		e.wg.Add(1)
		go e.reap()
	}
	t.add(r)
}

// complete reports the outcome of records and updates the pending count.
func (e *Engine) complete(recs []*Rec, res func(i int, r *Rec) Result) {
	// Complete may recycle a record, so count the generations first.
	// Almost always every record is of one generation (unless a Flush
	// began while they were buffered): then no map is needed.
	var gen uint64
	mixed := false
	if len(recs) > 0 {
		gen = recs[0].gen
	}
	for _, r := range recs {
		if r.gen != gen {
			mixed = true
			break
		}
	}
	var counts map[uint64]int
	if mixed {
		counts = make(map[uint64]int, 2)
		for _, r := range recs {
			counts[r.gen]++
		}
	}
	e.cfg.Complete(recs, res)
	e.mu.Lock()
	e.pending -= len(recs)
	emptied := false
	settle := func(g uint64, n int) {
		if g == e.gen {
			e.genCount -= n // no Flush waits for the current generation
			return
		}
		if e.perGen[g] -= n; e.perGen[g] == 0 {
			delete(e.perGen, g)
			emptied = true
		}
	}
	if !mixed {
		if len(recs) > 0 {
			settle(gen, len(recs))
		}
	} else {
		for g, n := range counts {
			settle(g, n)
		}
	}
	if emptied {
		close(e.drained)
		e.drained = make(chan struct{})
	}
	e.mu.Unlock()
}

func (e *Engine) fail(recs []*Rec, partition int32, maybeWritten bool, err error) {
	e.complete(recs, func(int, *Rec) Result {
		return Result{Partition: partition, Offset: -1, Err: err, MaybeWritten: maybeWritten}
	})
}

// Flush makes every buffered record ready to send at once and waits until
// all records added before it have an outcome, or ctx ends. Records added
// while it waits do not hold it up: they belong to a later generation.
func (e *Engine) Flush(ctx context.Context) error {
	e.mu.Lock()
	if e.pending == 0 {
		e.mu.Unlock()
		return nil
	}
	upTo := e.gen
	if e.genCount > 0 {
		e.perGen[upTo] += e.genCount
		e.genCount = 0
	}
	e.gen++
	e.flushing++
	sinks := e.allSinksLocked()
	topics := e.allTopicsLocked()
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.flushing--
		e.mu.Unlock()
	}()
	for _, t := range topics {
		t.wakeAll()
	}
	for _, s := range sinks {
		s.maybeDrain()
	}
	for {
		e.mu.Lock()
		left := false
		for g := range e.perGen {
			if g <= upTo {
				left = true
				break
			}
		}
		ch := e.drained
		e.mu.Unlock()
		if !left {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (e *Engine) isFlushing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.flushing > 0
}

func (e *Engine) allSinksLocked() []*sink {
	out := make([]*sink, 0, len(e.sinks))
	for _, s := range e.sinks {
		out = append(out, s)
	}
	return out
}

func (e *Engine) allTopicsLocked() []*topicState {
	out := make([]*topicState, 0, len(e.topics))
	for _, t := range e.topics {
		out = append(out, t)
	}
	return out
}

// Close stops the engine: records still buffered or in flight fail with
// ErrClosed (outcome unknown for those already sent). Call Flush first to
// deliver what can be delivered. Close waits for the engine's goroutines.
func (e *Engine) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.wg.Wait()
		return
	}
	e.closed = true
	topics := e.allTopicsLocked()
	e.mu.Unlock()
	e.unsubscribe()
	e.cancel() // requests in flight return at once, abandoned
	for _, t := range topics {
		t.failAll(ErrClosed)
	}
	e.wg.Wait()
	// Requests that were in flight returned with ctx errors and their
	// batches were failed by failAll or by their own handlers; anything
	// that raced in is failed here.
	for _, t := range topics {
		t.failAll(ErrClosed)
	}
	e.bufs.release()
}

// sinkFor returns the sink of broker id, creating it.
func (e *Engine) sinkFor(id int32) *sink {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.sinks[id]
	if s == nil {
		s = newSink(e, id)
		e.sinks[id] = s
	}
	return s
}

// onMetadata moves partitions whose leader changed and wakes partitions
// that were waiting for a leader.
func (e *Engine) onMetadata(s *meta.Snapshot) {
	e.mu.Lock()
	topics := e.allTopicsLocked()
	e.mu.Unlock()
	for _, t := range topics {
		t.onMetadata(s)
	}
}

// reap expires records past their delivery timeout. It runs while records
// are buffered.
func (e *Engine) reap() {
	defer e.wg.Done()
	every := min(max(e.cfg.DeliveryTimeout/20, 5*time.Millisecond), 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case now := <-t.C:
			e.mu.Lock()
			if e.pending == 0 {
				e.reaping = false
				e.mu.Unlock()
				e.bufs.release() // idle: hold no batch memory
				return
			}
			topics := e.allTopicsLocked()
			e.mu.Unlock()
			for _, tp := range topics {
				tp.expire(now)
			}
		}
	}
}

// DropCancelled fails now, as not written, every record whose ctx ended
// before it was sent (the reaper would on its next tick): Send and SendAll
// call it when their ctx ends, so that the reports they return say what
// happened to each record rather than guess.
func (e *Engine) DropCancelled() {
	e.mu.Lock()
	topics := e.allTopicsLocked()
	e.mu.Unlock()
	now := time.Now()
	for _, t := range topics {
		t.dropCancelledWaiting()
		t.expire(now)
	}
}

// isClosing reports whether Close has begun.
func (e *Engine) isClosing() bool { return e.ctx.Err() != nil }

var errNoLeader = errors.New("no leader known for the partition")
