package keel

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-go/keel/internal/produce"
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
	ledger *produce.Ledger // the budget reports give back
	events chan Event

	mu        sync.Mutex
	backlogs  map[chan<- Delivery]*backlog[Delivery]
	evBacklog *backlog[Event]
	callbacks []cbEntry
	cbSpare   []cbEntry         // the emptied queue, reused (see runCallbacks)
	cbQueued  int               // callbacks waiting in callbacks (records, not entries)
	spare     backlog[Delivery] // an emptied channel backlog's slices, reused (see feed)
	cbRunning bool
	closed    bool

	abort   chan struct{}  // closed when Close stops waiting for readers
	wg      sync.WaitGroup // channel and Events() feeders
	cbWG    sync.WaitGroup // the callback runner
	dropped atomic.Uint64  // operational events dropped
	unread  atomic.Uint64  // reports abandoned at Close
	inHand  atomic.Int64   // reports taken off a queue, not yet handed over
	onPanic func(error)
	// recycle gives the engine back a report kept until its callbacks
	// ran (keep).
	recycle func(*produce.Report)
}

// cbEntry is one entry of the callback queue: a delivered report kept
// with its records until their callbacks ran (rep; n of its records have
// a callback), or one report on its own (item).
type cbEntry struct {
	rep  *produce.Report
	n    int
	item callbackItem
}

// callbackItem is one callback to run (56 B; it held a whole Delivery,
// 80 B, before issue 11's eighth pass).
type callbackItem struct {
	fn   func(Delivery)
	o    outcome
	size int64
}

type backlog[T any] struct {
	items []T
	sizes []int64
}

func newDispatcher(l *produce.Ledger, eventsBuffer int, onPanic func(error), recycle func(*produce.Report)) *dispatcher {
	return &dispatcher{
		ledger:   l,
		recycle:  recycle,
		events:   make(chan Event, eventsBuffer),
		backlogs: make(map[chan<- Delivery]*backlog[Delivery]),
		abort:    make(chan struct{}),
		onPanic:  onPanic,
	}
}

// report is one delivery report on its way to its target; size is the
// budget it holds.
type report struct {
	t    target
	o    outcome
	size int64
}

// outcome is what a Delivery is made of, in 40 B instead of its 64 (a
// time.Time is 24 B, an error 16): reports wait in the callback queue by
// the tens of thousands when records are small, and the queue's bytes
// per record were a tenth of the producer's heap (issue 11). The
// Delivery is made when it is handed over.
type outcome struct {
	msg    *Message
	err    *ProduceError // nil when delivered
	offset int64
	ts     int64 // milliseconds; -1 when unknown
	part   int32
}

// delivery is the report as its target sees it.
func (o *outcome) delivery() Delivery {
	d := Delivery{Message: o.msg, Partition: o.part, Offset: o.offset}
	if o.ts >= 0 {
		d.Timestamp = time.UnixMilli(o.ts)
	}
	if o.err != nil {
		d.Err = o.err
	}
	return d
}

// deliver routes one report.
func (d *dispatcher) deliver(t target, o outcome, size int64) {
	d.deliverAll([]report{{t, o, size}})
}

// deliverAll routes reports in order, under one hold of the lock: the
// engine completes records a batch at a time, and a lock (and a budget
// release) per report was a large share of the producer's CPU time with
// small records (issue 6). The budget of the reports handed over at once
// is released in one go afterwards.
func (d *dispatcher) deliverAll(rs []report) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		for i := range rs {
			d.deliverAfterClose(rs[i].t, &rs[i].o, rs[i].size)
		}
		return
	}
	var (
		handed      int   // reports already in their channel
		handedBytes int64 // and their budget
		startCB     bool
		startEvents *backlog[Event]
		feeders     []feeder
		lastCh      chan<- Delivery // the channel last looked up, and its backlog
		lastQ       *backlog[Delivery]
		haveLast    bool
	)
	for i := range rs {
		r := &rs[i]
		switch {
		case r.t.fn != nil:
			d.callbacks = append(d.callbacks, cbEntry{item: callbackItem{r.t.fn, r.o, r.size}})
			d.cbQueued++
			if !d.cbRunning {
				d.cbRunning = true
				d.cbWG.Add(1)
				startCB = true
			}
		case r.t.ch != nil:
			// Reports of one call nearly always share a channel: look
			// its backlog up once (only this loop changes the map
			// while we hold the lock).
			if !haveLast || r.t.ch != lastCh {
				lastCh, lastQ, haveLast = r.t.ch, d.backlogs[r.t.ch], true
			}
			dv := r.o.delivery()
			if q := lastQ; q != nil {
				q.items = append(q.items, dv)
				q.sizes = append(q.sizes, r.size)
				continue
			}
			select {
			case r.t.ch <- dv:
				handed++
				handedBytes += r.size
				continue
			default:
			}
			q := &backlog[Delivery]{items: append(d.spare.items, dv), sizes: append(d.spare.sizes, r.size)}
			d.spare = backlog[Delivery]{}
			d.backlogs[r.t.ch] = q
			lastQ = q
			d.wg.Add(1)
			feeders = append(feeders, feeder{r.t.ch, q})
		default:
			ev := Event(DeliveryEvent{r.o.delivery()})
			if q := d.evBacklog; q != nil {
				q.items = append(q.items, ev)
				q.sizes = append(q.sizes, r.size)
				continue
			}
			select {
			case d.events <- ev:
				handed++
				handedBytes += r.size
				continue
			default:
			}
			q := &backlog[Event]{items: []Event{ev}, sizes: []int64{r.size}}
			d.evBacklog = q
			d.wg.Add(1)
			startEvents = q
		}
	}
	d.mu.Unlock()
	if handed > 0 {
		d.ledger.Release(handed, handedBytes)
	}
	if startCB {
		go d.runCallbacks()
	}
	for _, f := range feeders {
		go d.feed(f.ch, f.q)
	}
	if startEvents != nil {
		go d.feedEvents(startEvents)
	}
}

// keep queues the callbacks of rep, a delivered report n of whose records
// have one: the records wait in their batch's chunks until their
// callbacks ran, instead of being copied into the queue one by one
// (franz-go too queues one item per batch), and rep goes back to the
// engine then. The records' budget is held until then, as for any report
// not yet handed over. It returns false, keeping nothing, once the
// dispatcher is closed.
func (d *dispatcher) keep(rep *produce.Report, n int) bool {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return false
	}
	d.callbacks = append(d.callbacks, cbEntry{rep: rep, n: n})
	d.cbQueued += n
	start := !d.cbRunning
	if start {
		d.cbRunning = true
		d.cbWG.Add(1)
	}
	d.mu.Unlock()
	if start {
		go d.runCallbacks()
	}
	return true
}

// feeder is a channel backlog whose goroutine is to be started.
type feeder struct {
	ch chan<- Delivery
	q  *backlog[Delivery]
}

// deliverAfterClose hands out a report produced after Close (a record
// produced too late): a callback runs on the caller's goroutine, a channel
// gets it if it has room; otherwise it is counted as unread.
func (d *dispatcher) deliverAfterClose(t target, o *outcome, size int64) {
	defer d.ledger.Release(1, size)
	switch {
	case t.fn != nil:
		d.call(callbackItem{t.fn, *o, size})
	case t.ch != nil:
		select {
		case t.ch <- o.delivery():
		default:
			d.unread.Add(1)
		}
	default:
		d.unread.Add(1)
	}
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
	feedBacklog(d, ch, q, func(emptied backlog[Delivery]) {
		delete(d.backlogs, ch)
		// Keep the emptied slices for the next backlog: a reader
		// slower than the brokers makes one per burst of reports, and
		// growing it from nothing each time was a third of the
		// producer's allocations (issue 6).
		if cap(emptied.items) > cap(d.spare.items) {
			d.spare = emptied
		}
	})
}

func (d *dispatcher) feedEvents(q *backlog[Event]) {
	feedBacklog(d, d.events, q, func(backlog[Event]) { d.evBacklog = nil })
}

// feedBacklog sends q's items to ch in order, releasing each one's budget
// once ch took it, until q is empty (then forget runs under the lock, with
// the emptied slices to keep if it wants) or
// Close gives up on readers (the rest are counted unread). It takes the
// whole backlog at a time and gives the emptied slices back for the next
// round, rather than popping item by item under the lock.
func feedBacklog[T any](d *dispatcher, ch chan<- T, q *backlog[T], forget func(emptied backlog[T])) {
	defer d.wg.Done()
	var items []T
	var sizes []int64
	for {
		d.mu.Lock()
		if len(q.items) == 0 {
			forget(backlog[T]{items: items[:0], sizes: sizes[:0]})
			d.mu.Unlock()
			return
		}
		items, q.items = q.items, items[:0]
		sizes, q.sizes = q.sizes, sizes[:0]
		d.inHand.Add(int64(len(items)))
		d.mu.Unlock()
		for i, item := range items {
			// Try a plain send first: a select over two channels locks
			// both, and was a tenth of the producer's CPU time.
			select {
			case ch <- item:
				d.ledger.Release(1, sizes[i])
				continue
			default:
			}
			select {
			case ch <- item:
			case <-d.abort:
				d.mu.Lock()
				rest := append(sizes[i:], q.sizes...)
				q.items, q.sizes = nil, nil
				forget(backlog[T]{})
				d.mu.Unlock()
				d.inHand.Add(-int64(len(items)))
				d.abandon(rest)
				return
			}
			d.ledger.Release(1, sizes[i])
		}
		clear(items) // the reports' messages belong to the user now
		d.inHand.Add(-int64(len(items)))
	}
}

// abandon gives up on reports at Close: they are counted as unread and
// their budget released.
func (d *dispatcher) abandon(sizes []int64) {
	d.unread.Add(uint64(len(sizes)))
	var total int64
	for _, s := range sizes {
		total += s
	}
	d.ledger.Release(len(sizes), total)
}

// runCallbacks runs the queued callbacks until the queue is empty. It takes
// the whole queue at a time and keeps the emptied slice as the next
// queue's: popping the front of one slice made every refill reallocate it,
// 330 bytes allocated per record (issue 6). The spare slice stays with the
// dispatcher between runs; it is at most as long as the producer's record
// budget.
// callbackRun is how many callbacks' budget is released at once: the
// budget may be exceeded by at most that many records whose callbacks
// are about to run.
const callbackRun = 64

func (d *dispatcher) runCallbacks() {
	defer d.cbWG.Done()
	var batch []cbEntry
	for {
		d.mu.Lock()
		if batch != nil {
			d.cbSpare = batch[:0]
			batch = nil
		}
		if len(d.callbacks) == 0 {
			d.cbRunning = false
			d.mu.Unlock()
			return
		}
		batch, d.callbacks, d.cbSpare = d.callbacks, d.cbSpare, nil
		n := d.cbQueued
		d.cbQueued = 0
		d.inHand.Add(int64(n))
		d.mu.Unlock()
		for start := 0; start < len(batch); {
			if rep := batch[start].rep; rep != nil {
				batch[start] = cbEntry{}
				d.runReport(rep)
				start++
				continue
			}
			end := start + 1
			for end < len(batch) && end-start < callbackRun && batch[end].rep == nil {
				end++
			}
			run := batch[start:end]
			start = end
			// The records' budget is released before their callbacks
			// run, so a callback may Produce without waiting on
			// itself; a run at a time: a release per record made the
			// budget's counters bounce between this goroutine and the
			// producers' (issue 11).
			var size int64
			for i := range run {
				size += run[i].item.size
			}
			d.ledger.Release(len(run), size)
			for i := range run {
				item := run[i].item
				run[i] = cbEntry{}
				if d.aborted() {
					d.unread.Add(1) // Close gave up waiting: the rest are unread
					continue
				}
				d.call(item)
			}
		}
		d.inHand.Add(-int64(n))
	}
}

// runReport runs the callbacks of rep, a report keep queued, a run of
// callbackRun records at a time (budget first, as above), then gives rep
// back to the engine. Its other records went to their targets already.
func (d *dispatcher) runReport(rep *produce.Report) {
	total := rep.Recs.Len()
	for i := 0; i < total; {
		var size int64
		cnt, end := 0, i
		for ; end < total && cnt < callbackRun; end++ {
			if r := rep.Recs.At(end); isCallback(r) {
				size += r.Held
				cnt++
			}
		}
		if cnt > 0 {
			d.ledger.Release(cnt, size)
		}
		for ; i < end; i++ {
			r := rep.Recs.At(i)
			fn, ok := r.Notify.(func(Delivery))
			if !ok {
				continue
			}
			if d.aborted() {
				d.unread.Add(1)
				continue
			}
			d.call(callbackItem{fn: fn, o: outcomeOf(rep, r, i)})
		}
	}
	d.recycle(rep)
}

// isCallback reports whether r's report goes to a callback.
func isCallback(r *produce.Rec) bool {
	_, ok := r.Notify.(func(Delivery))
	return ok
}

// aborted reports whether Close gave up waiting for callbacks.
func (d *dispatcher) aborted() bool {
	select {
	case <-d.abort:
		return true
	default:
		return false
	}
}

func (d *dispatcher) call(item callbackItem) {
	defer func() {
		if r := recover(); r != nil {
			d.onPanic(fmt.Errorf("keel: delivery callback panicked: %v", r))
		}
	}()
	item.fn(item.o.delivery())
}

// pendingReports is how many reports are waiting for their targets.
func (d *dispatcher) pendingReports() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.cbQueued + int(d.inHand.Load())
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
