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

	mu       sync.Mutex
	queue    []*Message
	failure  error // a fetch error to report after the queued records
	wake     chan struct{}
	stopping bool // Close: finish the current record, take no more
	done     chan struct{}
}

func (g *GroupConsumer) startWorkerLocked(ps *partitionState) {
	w := &worker{g: g, ps: ps, tp: ps.tp, wake: make(chan struct{}, 1), done: make(chan struct{})}
	ps.w = w
	g.wg.Add(1)
	go w.run()
}

// push queues records and returns the queue length.
func (w *worker) push(msgs []*Message, err error) int {
	w.mu.Lock()
	w.queue = append(w.queue, msgs...)
	if err != nil && w.failure == nil {
		w.failure = err
	}
	n := len(w.queue)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return n
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
			resume := len(w.queue) == w.g.cfg.queueRecords/2
			w.mu.Unlock()
			if resume {
				w.g.fetcher.Resume(fetch.TP{Topic: w.tp.Topic, Partition: w.tp.Partition})
			}
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
