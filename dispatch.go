package keel

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// target is where a record's delivery report goes: a channel, a callback,
// or (neither) the producer's Events().
type target struct {
	ch chan<- Delivery
	fn func(Delivery)
}

// dispatcher hands delivery reports to their targets without ever making
// the network path wait for user code:
//   - a report for a channel is sent at once if the channel has room;
//     otherwise it joins that channel's backlog, which one goroutine per
//     backlogged channel feeds in order;
//   - callbacks run one at a time, in order, on one goroutine;
//   - reports for Events() are backlogged like a channel's and never
//     dropped; operational events are dropped (and counted) when Events()
//     is full.
//
// Goroutines exist only while a backlog does. A report's budget is
// released once its target has it.
type dispatcher struct {
	budget *budget
	events chan Event

	mu        sync.Mutex
	backlogs  map[chan<- Delivery]*backlog[Delivery]
	evBacklog *backlog[Event]
	callbacks []callbackItem
	cbRunning bool
	closed    bool

	abort   chan struct{}  // closed when Close stops waiting for readers
	wg      sync.WaitGroup // channel and Events() feeders
	cbWG    sync.WaitGroup // the callback runner
	dropped atomic.Uint64  // operational events dropped
	unread  atomic.Uint64  // reports abandoned at Close
	onPanic func(error)
}

type callbackItem struct {
	fn   func(Delivery)
	d    Delivery
	size int64
}

type backlog[T any] struct {
	items []T
	sizes []int64
}

func newDispatcher(b *budget, eventsBuffer int, onPanic func(error)) *dispatcher {
	return &dispatcher{
		budget:   b,
		events:   make(chan Event, eventsBuffer),
		backlogs: make(map[chan<- Delivery]*backlog[Delivery]),
		abort:    make(chan struct{}),
		onPanic:  onPanic,
	}
}

// deliver routes one report; size is the budget it holds.
func (d *dispatcher) deliver(t target, dv Delivery, size int64) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.deliverAfterClose(t, dv, size)
		return
	}
	switch {
	case t.fn != nil:
		d.callbacks = append(d.callbacks, callbackItem{t.fn, dv, size})
		start := !d.cbRunning
		d.cbRunning = true
		if start {
			d.cbWG.Add(1)
		}
		d.mu.Unlock()
		if start {
			go d.runCallbacks()
		}
	case t.ch != nil:
		if q := d.backlogs[t.ch]; q != nil {
			q.items = append(q.items, dv)
			q.sizes = append(q.sizes, size)
			d.mu.Unlock()
			return
		}
		select {
		case t.ch <- dv:
			d.mu.Unlock()
			d.budget.release(size)
			return
		default:
		}
		q := &backlog[Delivery]{items: []Delivery{dv}, sizes: []int64{size}}
		d.backlogs[t.ch] = q
		d.wg.Add(1)
		d.mu.Unlock()
		go d.feed(t.ch, q)
	default:
		d.mu.Unlock()
		d.deliverEvent(DeliveryEvent{dv}, size)
	}
}

// deliverAfterClose hands out a report produced after Close (a record
// produced too late): a callback runs on the caller's goroutine, a channel
// gets it if it has room; otherwise it is counted as unread.
func (d *dispatcher) deliverAfterClose(t target, dv Delivery, size int64) {
	defer d.budget.release(size)
	switch {
	case t.fn != nil:
		d.call(callbackItem{t.fn, dv, size})
	case t.ch != nil:
		select {
		case t.ch <- dv:
		default:
			d.unread.Add(1)
		}
	default:
		d.unread.Add(1)
	}
}

// deliverEvent queues an event that must not be dropped.
func (d *dispatcher) deliverEvent(ev Event, size int64) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.unread.Add(1)
		d.budget.release(size)
		return
	}
	if q := d.evBacklog; q != nil {
		q.items = append(q.items, ev)
		q.sizes = append(q.sizes, size)
		d.mu.Unlock()
		return
	}
	select {
	case d.events <- ev:
		d.mu.Unlock()
		d.budget.release(size)
		return
	default:
	}
	q := &backlog[Event]{items: []Event{ev}, sizes: []int64{size}}
	d.evBacklog = q
	d.wg.Add(1)
	d.mu.Unlock()
	go d.feedEvents(q)
}

// emit offers an operational event; it is dropped if Events() is full.
func (d *dispatcher) emit(ev Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	if n := d.dropped.Load(); n > 0 {
		select {
		case d.events <- EventsDropped{Count: n}:
		default:
			d.dropped.Add(1)
			return
		}
	}
	select {
	case d.events <- ev:
	default:
		d.dropped.Add(1)
	}
}

func (d *dispatcher) feed(ch chan<- Delivery, q *backlog[Delivery]) {
	feedBacklog(d, ch, q, func() { delete(d.backlogs, ch) })
}

func (d *dispatcher) feedEvents(q *backlog[Event]) {
	feedBacklog(d, d.events, q, func() { d.evBacklog = nil })
}

// feedBacklog sends q's items to ch in order, releasing each one's budget
// once ch took it, until q is empty (then forget runs under the lock) or
// Close gives up on readers (the rest are counted unread).
func feedBacklog[T any](d *dispatcher, ch chan<- T, q *backlog[T], forget func()) {
	defer d.wg.Done()
	var zero T
	for {
		d.mu.Lock()
		if len(q.items) == 0 {
			forget()
			d.mu.Unlock()
			return
		}
		item, size := q.items[0], q.sizes[0]
		d.mu.Unlock()
		select {
		case ch <- item:
		case <-d.abort:
			d.abandon(func() []int64 { sz := q.sizes; q.items, q.sizes = nil, nil; forget(); return sz })
			return
		}
		d.budget.release(size)
		d.mu.Lock()
		q.items[0] = zero
		q.items, q.sizes = q.items[1:], q.sizes[1:]
		d.mu.Unlock()
	}
}

// abandon gives up on a backlog at Close: its reports are counted as
// unread and their budget released. clear runs under the lock and returns
// the sizes it removed.
func (d *dispatcher) abandon(clear func() []int64) {
	d.mu.Lock()
	sizes := clear()
	d.mu.Unlock()
	d.unread.Add(uint64(len(sizes)))
	for _, s := range sizes {
		d.budget.release(s)
	}
}

func (d *dispatcher) runCallbacks() {
	defer d.cbWG.Done()
	for {
		d.mu.Lock()
		if len(d.callbacks) == 0 {
			d.cbRunning = false
			d.mu.Unlock()
			return
		}
		item := d.callbacks[0]
		d.callbacks[0] = callbackItem{}
		d.callbacks = d.callbacks[1:]
		d.mu.Unlock()
		// The record's budget is released before its callback runs, so
		// a callback may Produce without waiting on itself.
		d.budget.release(item.size)
		select {
		case <-d.abort:
			d.unread.Add(1) // Close gave up waiting: the rest are unread
			continue
		default:
		}
		d.call(item)
	}
}

func (d *dispatcher) call(item callbackItem) {
	defer func() {
		if r := recover(); r != nil {
			d.onPanic(fmt.Errorf("keel: delivery callback panicked: %v", r))
		}
	}()
	item.fn(item.d)
}

// pendingReports is how many reports are waiting for their targets.
func (d *dispatcher) pendingReports() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(d.callbacks)
	for _, q := range d.backlogs {
		n += len(q.items)
	}
	if d.evBacklog != nil {
		n += len(d.evBacklog.items)
	}
	return n
}

// stop abandons backlogs nobody reads, waits for the feeders and, until
// ctx ends, for a callback still running; then closes Events(). Reports
// that arrive later go through deliverAfterClose. A callback that never
// returns keeps its goroutine until it does: Close does not wait for it
// past ctx.
func (d *dispatcher) stop(ctx context.Context) {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	close(d.abort)
	d.wg.Wait()
	done := make(chan struct{})
	go func() { d.cbWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	d.mu.Lock()
	close(d.events)
	d.mu.Unlock()
}
