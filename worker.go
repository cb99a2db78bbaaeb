package keel

import (
	"context"
	"errors"
	"sync"

	"github.com/keel-go/keel/internal/fetch"
)

// worker processes one partition's records in order on its own goroutine.
// The dispatcher pushes fetched records; the worker pops them, calls the
// handler, and marks each processed record.
type worker struct {
	g  *GroupConsumer
	ps *partitionState
	tp TopicPartition

	mu         sync.Mutex
	queue      []*Message
	bytes      int   // of the queued messages' keys and values
	paused     bool  // flow control paused fetching this partition
	userPaused bool  // GroupConsumer.Pause: stays paused whatever flow control says
	nextOffset int64 // offset expected next; older records are stale refetches (-1: any)
	failure    error // a fetch error to report after the queued records
	wake       chan struct{}
	stopping   bool // Close: finish the current record, take no more
	done       chan struct{}
}

func (g *GroupConsumer) startWorkerLocked(ps *partitionState) {
	w := &worker{g: g, ps: ps, tp: ps.tp, wake: make(chan struct{}, 1), done: make(chan struct{}), nextOffset: -1}
	ps.w = w
	g.wg.Add(1)
	go w.run()
}

// Flow control: a partition whose worker falls behind stops being fetched
// until its queue drains, so fetched data does not pile up in memory.
const (
	queueHighBytes = 4 << 20
	queueLowBytes  = 1 << 20
)

// push queues records, dropping any below the offset expected next (a
// stale fetch of this partition's previous assignment), and pauses
// fetching when the queue is full.
func (w *worker) push(msgs []*Message, err error) {
	w.mu.Lock()
	for _, m := range msgs {
		if w.nextOffset >= 0 && m.Offset < w.nextOffset {
			continue
		}
		w.nextOffset = m.Offset + 1
		w.queue = append(w.queue, m)
		w.bytes += len(m.Key) + len(m.Value)
	}
	if err != nil && w.failure == nil {
		w.failure = err
	}
	if !w.paused && (len(w.queue) >= w.g.cfg.queueRecords || w.bytes >= queueHighBytes) {
		w.paused = true
		w.g.fetcher.Pause(fetch.TP{Topic: w.tp.Topic, Partition: w.tp.Partition})
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// setUserPaused applies GroupConsumer.Pause/Resume: fetching resumes
// only when flow control does not hold the partition paused too.
func (w *worker) setUserPaused(paused bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.userPaused = paused
	tp := fetch.TP{Topic: w.tp.Topic, Partition: w.tp.Partition}
	if paused {
		w.g.fetcher.Pause(tp)
	} else if !w.paused {
		w.g.fetcher.Resume(tp)
	}
}

func (w *worker) stop() {
	w.mu.Lock()
	w.stopping = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// next waits for the next record; nil when the worker must exit.
func (w *worker) next() (*Message, error) {
	for {
		w.mu.Lock()
		if w.stopping || w.ps.ctx.Err() != nil {
			w.mu.Unlock()
			return nil, nil
		}
		if len(w.queue) > 0 {
			m := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			w.bytes -= len(m.Key) + len(m.Value)
			if w.paused && len(w.queue) <= w.g.cfg.queueRecords/2 && w.bytes <= queueLowBytes {
				w.paused = false
				if !w.userPaused {
					w.g.fetcher.Resume(fetch.TP{Topic: w.tp.Topic, Partition: w.tp.Partition})
				}
			}
			w.mu.Unlock()
			return m, nil
		}
		if err := w.failure; err != nil {
			w.mu.Unlock()
			return nil, err
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-w.ps.ctx.Done():
		}
	}
}

func (w *worker) run() {
	defer w.g.wg.Done()
	defer close(w.done)
	g := w.g
	for {
		m, ferr := w.next()
		if ferr != nil {
			g.client.logger.Error("keel: partition stopped: cannot read it", "group", g.group, "partition", w.tp, "err", ferr)
			return
		}
		if m == nil {
			return
		}
		if g.sem != nil {
			select {
			case g.sem <- struct{}{}:
			case <-w.ps.ctx.Done():
				return
			}
		}
		err := g.handler.Handle(w.ps.ctx, m)
		if g.sem != nil {
			<-g.sem
		}
		if err == nil {
			g.mark(m)
			continue
		}
		if cause := context.Cause(w.ps.ctx); cause != nil && (errors.Is(err, context.Canceled) || errors.Is(err, cause)) {
			return // revoked, lost or closing: the record stays unprocessed
		}
		if g.isStopping() && errors.Is(err, ErrConsumerClosed) {
			// The handler gave its record up because Close began (see
			// Stopping): unprocessed, and not a failure.
			return
		}
		action := StopPartition
		if g.cfg.onError != nil {
			action = g.cfg.onError(m, err)
		}
		if action == SkipMessage {
			g.client.logger.Warn("keel: handler failed; skipping the message", "group", g.group, "partition", w.tp, "offset", m.Offset, "err", err)
			g.mark(m)
			continue
		}
		g.client.logger.Error("keel: handler failed; partition stopped (its offset is not committed past the failed message)",
			"group", g.group, "partition", w.tp, "offset", m.Offset, "err", err)
		g.fetcher.Pause(fetch.TP{Topic: w.tp.Topic, Partition: w.tp.Partition})
		return
	}
}
