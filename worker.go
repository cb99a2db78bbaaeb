package keel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/keel-go/keel/internal/fetch"
)

// worker is the lane of a partition processed one record at a time, in
// offset order, on its own goroutine (the default, PartitionOrder). The
// dispatcher pushes each fetched run of records as one chunk; the worker
// takes a whole chunk per lock, calls the handler for its records and
// marks each processed record on the partition (see markCell). Taking
// chunks rather than single records keeps the queue's lock off the
// per-record path (issue 6).
//
// Only the worker's goroutine marks the partition, so a Seek is applied by
// it too, between two records: that way no record handled before the seek
// can mark the partition after it (see seek).
type worker struct {
	r  *runPath
	c  *memberCore
	ps *partitionState
	tp TopicPartition
	h  Handler
	// ctx is the handlers' ctx (from the Run's), cancelled with the
	// cause (ErrRevoked, ErrLost, ErrConsumerClosed) when the worker must
	// stop.
	ctx       context.Context
	cancelCtx context.CancelCauseFunc

	mu         sync.Mutex
	queue      []workChunk
	records    int    // queued, in all chunks
	bytes      int    // of the queued messages' keys and values
	paused     bool   // flow control paused fetching this partition
	userPaused bool   // GroupConsumer.Pause: stays paused whatever flow control says
	seq        uint64 // fetches with another sequence are from before a move
	nextOffset int64  // offset expected next; older records are stale refetches (-1: any)
	from       int64  // first offset this worker processes; -1 until known
	failure    error  // a fetch error to report after the queued records
	halted     bool   // stopped on a handler failure or a fetch error, until Seek
	pending    *seekRequest
	exited     bool
	atExit     []func()
	// skip: records processed already (see partitionState.skip); set
	// under mu, read by the worker's goroutine, which alone writes it.
	skip   doneRanges
	skipAt int
	wake   chan struct{}
	// slot shows the watch what the handler runs (consumer_watch.go);
	// the worker's goroutine alone uses it.
	slot *handlerSlot
	// stopping: Close began; finish the current record, take no more.
	// Atomic because the worker checks it before every record, as it
	// checks seekPending.
	stopping    atomic.Bool
	seekPending atomic.Bool
	doneCh      chan struct{}
}

// seekRequest is a Seek waiting for the worker to apply it.
type seekRequest struct {
	to      int64
	applied chan struct{} // closed once applied (or superseded)
}

// newWorker makes ps's worker (under core.mu) for the Run r runs now.
func newWorker(r *runPath, ps *partitionState) *worker {
	w := &worker{r: r, c: r.core, ps: ps, tp: ps.tp, h: r.handler, seq: ps.seq,
		nextOffset: max(ps.start, -1), from: max(ps.start, -1), skip: ps.skip,
		userPaused: ps.userPaused, wake: make(chan struct{}, 1), doneCh: make(chan struct{})}
	w.ctx, w.cancelCtx = laneCtx(r.runCtx, w)
	return w
}

func (w *worker) done() <-chan struct{} { return w.doneCh }

func (w *worker) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// push queues f's records (one partition's records in offset order),
// dropping any fetched before the worker's position moved and any below
// the offset expected next, and pauses fetching when the queue is full.
func (w *worker) push(f *fetch.FetchOf[Message]) {
	w.mu.Lock()
	if f.Seq != w.seq {
		w.mu.Unlock()
		return
	}
	msgs, bytes := f.Records, int(f.Bytes)
	if len(msgs) > 0 && msgs[0].Offset < w.nextOffset {
		msgs = dropBefore(msgs, w.nextOffset)
		bytes = msgBytes(msgs)
	}
	if len(msgs) > 0 {
		if w.from < 0 {
			w.from = msgs[0].Offset
		}
		w.nextOffset = msgs[len(msgs)-1].Offset + 1
	}
	var tail fetch.Offset
	tail, w.nextOffset = tailOf(f, w.nextOffset)
	switch {
	case len(msgs) > 0:
		w.queue = append(w.queue, workChunk{msgs: msgs, bytes: bytes, tail: tail})
		w.records += len(msgs)
		w.bytes += bytes
	case tail.At > 0 && len(w.queue) > 0:
		w.queue[len(w.queue)-1].tail = tail // no records between
	case tail.At > 0:
		w.queue = append(w.queue, workChunk{tail: tail})
	}
	if f.Err != nil && w.failure == nil {
		w.failure = f.Err
	}
	if !w.paused && (w.records >= w.c.cfg.queueRecords || w.bytes >= queueHighBytes) {
		w.paused = true
		w.c.fetcher.Pause(w.tp)
	}
	w.mu.Unlock()
	w.wakeUp()
}

// setUserPaused applies GroupConsumer.Pause/Resume: fetching resumes
// only when flow control does not hold the partition paused too.
func (w *worker) setUserPaused(paused bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.userPaused = paused
	if paused {
		w.c.fetcher.Pause(w.tp)
	} else if !w.paused && !w.halted {
		w.c.fetcher.Resume(w.tp)
	}
}

func (w *worker) stop() {
	w.stopping.Store(true)
	w.wakeUp()
}

func (w *worker) cancel(cause error) { w.cancelCtx(cause) }

// quit reports whether the worker must take no further record: Close
// began, or its partition was revoked, lost or its Run ended.
func (w *worker) quit() bool {
	return w.stopping.Load() || w.ctx.Err() != nil
}

// seek moves the worker to the offset to. The worker applies it between
// records: Seek waits for that under ctx, except from a handler of this
// same partition, where it returns at once and applies when that handler
// returns (the record it handles then still counts as processed, and the
// position moves right after).
func (w *worker) seek(ctx context.Context, to int64) error {
	req, err := w.seekRequested(to)
	if err != nil {
		return err
	}
	if fromOwnHandler(ctx, w) {
		return nil
	}
	select {
	case <-req.applied:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("keel: Seek of %v: %w (it still takes effect once the record being handled returns)", w.tp, context.Cause(ctx))
	}
}

// requestSeek asks the worker to move to to between two records, without
// waiting: ExactlyOnce's abort asks it while holding the gate its handler
// calls wait for.
func (w *worker) requestSeek(to int64) error {
	_, err := w.seekRequested(to)
	return err
}

func (w *worker) seekRequested(to int64) (*seekRequest, error) {
	req := &seekRequest{to: to, applied: make(chan struct{})}
	w.mu.Lock()
	if w.exited {
		w.mu.Unlock()
		return nil, errLaneExited
	}
	if w.pending != nil {
		close(w.pending.applied) // superseded by this one
	}
	w.pending = req
	w.seekPending.Store(true)
	w.mu.Unlock()
	w.wakeUp()
	return req, nil
}

// errLaneExited: the lane asked to seek has stopped; the caller seeks the
// partition itself.
var errLaneExited = errors.New("keel: lane exited")

// applySeekLocked applies the pending seek (under mu): the fetcher starts
// at its offset, records queued are dropped, the partition's position to
// commit becomes the offset, and a halted worker goes on.
func (w *worker) applySeekLocked(moveFetcher bool) {
	req := w.pending
	w.pending = nil
	w.seekPending.Store(false)
	if moveFetcher {
		if seq, ok := w.c.fetcher.SeekAssigned(w.tp, fetch.At(req.to)); ok {
			w.seq = seq
		}
	}
	clear(w.queue)
	w.queue, w.records, w.bytes = w.queue[:0], 0, 0
	w.failure, w.halted = nil, false
	w.nextOffset, w.from = req.to, req.to
	w.skip, w.skipAt = nil, 0
	w.paused = false
	if moveFetcher && !w.userPaused {
		w.c.fetcher.Resume(w.tp) // undoes flow control's and a stop's pause
	}
	w.ps.marks.reset(req.to, -1)
	close(req.applied)
}

// next waits for the next chunk of records; false when the worker must
// exit.
func (w *worker) next() (workChunk, bool) {
	for {
		if w.quit() {
			return workChunk{}, false
		}
		w.mu.Lock()
		if w.pending != nil {
			w.applySeekLocked(true)
		}
		if !w.halted && len(w.queue) > 0 {
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
			return c, true
		}
		if err := w.failure; err != nil && !w.halted {
			w.halted = true
			w.c.partitionStopped(w.tp, err)
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-w.ctx.Done():
		}
	}
}

func (w *worker) run() {
	defer w.exit()
	w.slot = w.c.watch.handlers.add(w.tp)
	defer w.c.watch.handlers.remove(w.slot)
	for {
		c, ok := w.next()
		if !ok {
			return
		}
		if w.handle(c.msgs) && c.tail.At > 0 {
			w.markTail(c.tail)
		}
	}
}

// markTail moves the partition's position to tail once the records
// before it are all processed. With ExactlyOnce it does so inside the
// open transaction, under the gate, unless an abort rewound the partition
// meanwhile (a seek waits): the move is committed with the next
// transaction's offsets.
func (w *worker) markTail(tail fetch.Offset) {
	if eos := w.c.eos; eos != nil {
		if err := eos.enter(); err != nil {
			w.c.failMember(err)
			return
		}
		defer eos.leave(false)
		if w.seekPending.Load() || w.quit() {
			return
		}
	}
	w.ps.marks.mark(tail.At-1, tail.Epoch)
}

// exit ends the worker: a seek still pending applies to the position (the
// next lane, or the commit of a revoke, starts there), then what waits for
// the exit runs.
func (w *worker) exit() {
	w.mu.Lock()
	if w.pending != nil {
		w.applySeekLocked(false)
	}
	w.exited = true
	fns := w.atExit
	w.atExit = nil
	w.mu.Unlock()
	close(w.doneCh)
	for _, fn := range fns {
		fn()
	}
}

func (w *worker) afterExit(fn func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.exited {
		return false
	}
	w.atExit = append(w.atExit, fn)
	return true
}

func (w *worker) resume() (int64, doneRanges, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.from < 0 {
		return 0, nil, false
	}
	at := w.from
	if pos, ok := w.ps.marks.position(); ok && pos.At > at {
		at = pos.At
	}
	return at, w.skip.after(at), true
}

// doneMetadata is the commit metadata: the skipped ranges not reached yet.
func (w *worker) doneMetadata(committed int64) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.skip.encode(committed)
}

// handle calls the handler for msgs in order, marking each one processed,
// and reports whether it did so for all of them. It returns early when
// the worker must stop, a seek waits, or the partition stopped on a
// handler failure; the records after the one it stopped at are dropped:
// they were never processed, so nothing commits them.
func (w *worker) handle(msgs []Message) bool {
	r := w.r
	for i := range msgs {
		if w.quit() || w.seekPending.Load() {
			return false
		}
		m := &msgs[i]
		// Read before the handler runs: it may change m (to forward it,
		// say), and what is committed is where the record was read.
		offset, epoch := m.Offset, m.leaderEpoch
		if w.skip != nil && w.skip.contains(offset, &w.skipAt) {
			w.ps.marks.mark(offset, epoch) // processed before the partition came here
			continue
		}
		if r.sem != nil {
			select {
			case r.sem <- struct{}{}:
			case <-w.ctx.Done():
				return false
			}
		}
		eos := w.c.eos
		if eos != nil {
			// The handler and the mark of its record happen inside one
			// transaction (group_eos.go); an abort while waiting for it
			// rewound the partition.
			if err := eos.enter(); err != nil {
				if r.sem != nil {
					<-r.sem
				}
				w.c.failMember(err)
				return false
			}
			if w.seekPending.Load() || w.quit() {
				eos.leave(false)
				if r.sem != nil {
					<-r.sem
				}
				return false
			}
			eos.touch(w.tp, offset)
		}
		err := w.c.handle(w.slot, w.h, w.ctx, m)
		if r.sem != nil {
			<-r.sem
		}
		if err == nil { // the common case, without a call
			w.ps.marks.mark(offset, epoch)
			if eos != nil {
				eos.leave(true)
			}
			continue
		}
		out := r.outcome(w.ctx, m, offset, err)
		if out == recordDone {
			w.ps.marks.mark(offset, epoch)
		}
		if eos != nil {
			eos.leave(out == recordDone)
		}
		switch out {
		case recordDone:
		case recordLeft:
			return false
		case recordFailed:
			w.mu.Lock()
			w.halted = true
			w.c.fetcher.Pause(w.tp)
			w.mu.Unlock()
			return false
		}
	}
	return true
}
