package keel

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/keel-go/keel/internal/errs"
)

// worker processes one partition's records in order on its own goroutine.
// The dispatcher pushes each fetched run of records as one chunk; the
// worker takes a whole chunk per lock, calls the handler for its records
// and marks each processed record on the partition (see markCell). Taking
// chunks rather than single records keeps the queue's lock off the
// per-record path (issue 6).
type worker struct {
	r  *runPath
	c  *memberCore
	ps *partitionState
	tp TopicPartition
	// ctx is the handlers' ctx, cancelled with the cause (ErrRevoked,
	// ErrLost, ErrConsumerClosed) when the worker must stop.
	ctx    context.Context
	cancel context.CancelCauseFunc
	h      Handler // the Run's handler

	mu         sync.Mutex
	queue      []workChunk
	records    int   // queued, in all chunks
	bytes      int   // of the queued messages' keys and values
	paused     bool  // flow control paused fetching this partition
	userPaused bool  // GroupConsumer.Pause: stays paused whatever flow control says
	nextOffset int64 // offset expected next; older records are stale refetches (-1: any)
	failure    error // a fetch error to report after the queued records
	wake       chan struct{}
	// stopping: Close began; finish the current record, take no more.
	// Atomic because the worker checks it before every record.
	stopping atomic.Bool
	done     chan struct{}
}

// workChunk is one pushed run of a partition's records, in offset order.
type workChunk struct {
	msgs  []Message
	bytes int // of the messages' keys and values
}

// startWorkerLocked starts ps's worker (under core.mu), expecting records
// from offset next on (-1: from wherever the fetcher is).
func (r *runPath) startWorkerLocked(ps *partitionState, next int64) {
	w := &worker{r: r, c: r.core, ps: ps, tp: ps.tp, wake: make(chan struct{}, 1), done: make(chan struct{}), nextOffset: max(next, -1), h: r.handler}
	w.ctx, w.cancel = context.WithCancelCause(context.Background())
	ps.w = w
	r.wg.Add(1)
	go w.run()
}

// Flow control: a partition whose worker falls behind stops being fetched
// until its queue drains, so fetched data does not pile up in memory. The
// chunk the worker is on no longer counts, so at most one more chunk (one
// partition's share of a fetch answer) is held beyond these.
const (
	queueHighBytes = 4 << 20
	queueLowBytes  = 1 << 20
)

// push queues msgs (one partition's records in offset order, of about
// bytes; see fetch.Fetch.Bytes), dropping any below the offset expected next (a
// stale fetch of this partition's previous assignment), and pauses
// fetching when the queue is full.
func (w *worker) push(msgs []Message, bytes int, err error) {
	w.mu.Lock()
	if w.nextOffset >= 0 && len(msgs) > 0 && msgs[0].Offset < w.nextOffset {
		skip := 0
		for skip < len(msgs) && msgs[skip].Offset < w.nextOffset {
			skip++
		}
		msgs = msgs[skip:]
		bytes = msgBytes(msgs)
	}
	if len(msgs) > 0 {
		w.nextOffset = msgs[len(msgs)-1].Offset + 1
		w.queue = append(w.queue, workChunk{msgs: msgs, bytes: bytes})
		w.records += len(msgs)
		w.bytes += bytes
	}
	if err != nil && w.failure == nil {
		w.failure = err
	}
	if !w.paused && (w.records >= w.c.cfg.queueRecords || w.bytes >= queueHighBytes) {
		w.paused = true
		w.c.fetcher.Pause(w.tp)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func msgBytes(msgs []Message) int {
	n := 0
	for i := range msgs {
		n += len(msgs[i].Key) + len(msgs[i].Value)
	}
	return n
}

// setUserPaused applies GroupConsumer.Pause/Resume: fetching resumes
// only when flow control does not hold the partition paused too.
func (w *worker) setUserPaused(paused bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.userPaused = paused
	tp := w.tp
	if paused {
		w.c.fetcher.Pause(tp)
	} else if !w.paused {
		w.c.fetcher.Resume(tp)
	}
}

func (w *worker) stop() {
	w.stopping.Store(true)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// halted reports whether the worker must take no further record: Close
// began, or its partition was revoked, lost or stopped.
func (w *worker) halted() bool {
	return w.stopping.Load() || w.ctx.Err() != nil
}

// next waits for the next chunk of records; nil when the worker must exit.
func (w *worker) next() ([]Message, error) {
	for {
		if w.halted() {
			return nil, nil
		}
		w.mu.Lock()
		if len(w.queue) > 0 {
			c := w.queue[0]
			w.queue[0] = workChunk{}
			w.queue = w.queue[1:]
			w.records -= len(c.msgs)
			w.bytes -= c.bytes
			if w.paused && w.records <= w.c.cfg.queueRecords/2 && w.bytes <= queueLowBytes {
				w.paused = false
				if !w.userPaused {
					w.c.fetcher.Resume(w.tp)
				}
			}
			w.mu.Unlock()
			return c.msgs, nil
		}
		if err := w.failure; err != nil {
			w.mu.Unlock()
			return nil, err
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-w.ctx.Done():
		}
	}
}

func (w *worker) run() {
	defer w.r.wg.Done()
	defer close(w.done)
	for {
		msgs, ferr := w.next()
		if ferr != nil {
			w.c.client.logger.Error("keel: partition stopped: cannot read it", "group", w.c.group, "partition", w.tp, "err", ferr)
			if isAuthorizationFailure(ferr) {
				w.c.failMember(ferr) // Run returns it (security.go)
			}
			return
		}
		if msgs == nil || !w.handle(msgs) {
			return
		}
	}
}

// handle calls the handler for msgs in order, marking each one processed;
// false when the worker must exit (halted, or the partition stopped on a
// handler failure). The records after the one it stopped at are dropped:
// they were never processed, so nothing commits them.
func (w *worker) handle(msgs []Message) bool {
	r, c := w.r, w.c
	for i := range msgs {
		if w.halted() {
			return false
		}
		m := &msgs[i]
		if r.sem != nil {
			select {
			case r.sem <- struct{}{}:
			case <-w.ctx.Done():
				return false
			}
		}
		// Read before the handler runs: it may change m (to forward it,
		// say), and what is committed is where the record was read.
		offset, epoch := m.Offset, m.leaderEpoch
		err := callHandler(w.h, w.ctx, m)
		if r.sem != nil {
			<-r.sem
		}
		if err == nil {
			w.ps.marks.mark(offset, epoch)
			continue
		}
		if cause := context.Cause(w.ctx); cause != nil && (errors.Is(err, context.Canceled) || errors.Is(err, cause)) {
			return false // revoked, lost or closing: the record stays unprocessed
		}
		if c.isStopping() && errors.Is(err, ErrConsumerClosed) {
			// The handler gave its record up because Close began (see
			// Stopping): unprocessed, and not a failure.
			return false
		}
		action := StopPartition
		if c.cfg.onError != nil {
			action = c.cfg.onError(m, err)
		}
		if action == SkipMessage {
			c.client.logger.Warn("keel: handler failed; skipping the message", "group", c.group, "partition", w.tp, "offset", offset, "err", err)
			w.ps.marks.mark(offset, epoch)
			continue
		}
		attrs := []any{"group", c.group, "partition", w.tp, "offset", offset, "err", err}
		if pe := (*errs.PanicError)(nil); errors.As(err, &pe) {
			attrs = append(attrs, "stack", string(pe.Stack))
		}
		c.client.logger.Error("keel: handler failed; partition stopped (its offset is not committed past the failed message)", attrs...)
		c.fetcher.Pause(w.tp)
		return false
	}
	return true
}

// callHandler runs h for m, turning a panic into a *PanicError (matching
// ErrPanicked, with the value and stack): the record then fails like any
// handler error and OnHandlerError decides, instead of the panic ending
// the user's process from a keel goroutine.
func callHandler(h Handler, ctx context.Context, m *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errs.Recovered("handler", r)
		}
	}()
	return h.Handle(ctx, m)
}
