package produce

import (
	"context"
	"sync"
	"sync/atomic"
)

// Ledger is a producer's one account of the records it holds: the buffer
// budget (records and bytes from Produce until the record's delivery
// report has been handed to its target) and the flush generations (records
// added and not yet settled, per generation, so that Flush waits for the
// records produced before it and not for later ones).
//
// Before issue 11 this was three parts sharing each other's locks: the
// producer's budget (a mutex per record, which the producer also used to
// guard its cache of bookkeeping), and the engine's pending and
// per-generation counters under the engine-wide mutex of Engine.Add. With
// 16 goroutines producing at once those mutexes were most of the cost of
// a record. Here every per-record step is an atomic add on a counter:
//
//   - taking room adds to records and bytes and checks the result (and
//     takes it back on overshoot); only a producer that must wait takes
//     mu, to sleep on freed;
//   - entering a generation adds to the current generation's count;
//     settling subtracts a whole batch's worth at once;
//   - releases subtract a chunk of reports at once and wake waiters only
//     when a waiter exists and an eighth of the budget is free.
type Ledger struct {
	maxRecords int64
	maxBytes   int64
	// lowRecords and lowBytes are the levels a release must bring the
	// budget down to before it wakes waiting producers: waking them per
	// released record made producers and the report path hand the lock
	// back and forth (issue 6). An eighth free lets a woken producer take
	// a run of records.
	lowRecords int64
	lowBytes   int64

	records atomic.Int64
	bytes   atomic.Int64
	waiters atomic.Int32

	// The counters above are written by every Produce and every report;
	// what follows is read per record but written rarely: keep them on
	// separate cache lines so that reads do not miss on every write.
	_ [64]byte

	gen      atomic.Pointer[generation] // the generation records enter now
	flushing atomic.Int32               // Flush calls under way

	mu    sync.Mutex    // waiting producers only
	freed chan struct{} // closed and replaced to wake waiters
}

// generation counts the records added while it was current and not yet
// settled. While current it holds one extra count (its bias), so it can
// reach zero only after Flush moved on to the next one; done is closed
// then.
type generation struct {
	n      atomic.Int64
	closed atomic.Bool
	done   chan struct{}
}

func newGeneration() *generation {
	g := &generation{done: make(chan struct{})}
	g.n.Store(1)
	return g
}

// NewLedger returns a ledger for a budget of maxRecords records and
// maxBytes bytes.
func NewLedger(maxRecords int, maxBytes int64) *Ledger {
	l := &Ledger{
		maxRecords: int64(maxRecords),
		maxBytes:   maxBytes,
		lowRecords: int64(maxRecords) - int64(maxRecords)/8,
		lowBytes:   maxBytes - maxBytes/8,
		freed:      make(chan struct{}),
	}
	l.gen.Store(newGeneration())
	return l
}

// TryAcquire takes room for one record of size bytes if there is room now.
// A record larger than the whole byte budget fits when nothing else is
// held, so that it cannot wait forever.
func (l *Ledger) TryAcquire(size int64) bool {
	r := l.records.Add(1)
	b := l.bytes.Add(size)
	if r <= l.maxRecords && (b <= l.maxBytes || r == 1) {
		return true
	}
	// Overshot (perhaps only because of another producer's attempt that
	// is about to be taken back too): take ours back. A waiter that
	// failed only because of this attempt would sleep for nothing if
	// nothing else is held (no release would ever wake it): wake waiters
	// when taking back leaves the budget empty. Otherwise a real release
	// comes later.
	if l.records.Add(-1) == 0 {
		l.bytes.Add(-size)
		l.wake()
		return false
	}
	l.bytes.Add(-size)
	return false
}

// wake wakes the producers waiting for room, if any.
func (l *Ledger) wake() {
	if l.waiters.Load() == 0 {
		return
	}
	l.mu.Lock()
	close(l.freed)
	l.freed = make(chan struct{})
	l.mu.Unlock()
}

// Acquire takes room for one record of size bytes, waiting under ctx.
func (l *Ledger) Acquire(ctx context.Context, size int64) error {
	if l.TryAcquire(size) {
		return nil
	}
	for {
		// Count ourselves as a waiter before trying again: a release
		// either sees the waiter (and closes the channel taken below,
		// which it swaps under mu) or happened before the try, which
		// then sees its room.
		l.mu.Lock()
		l.waiters.Add(1)
		ch := l.freed
		l.mu.Unlock()
		ok := l.TryAcquire(size)
		if !ok {
			select {
			case <-ch:
			case <-ctx.Done():
				l.waiters.Add(-1)
				return ctx.Err()
			}
		}
		l.waiters.Add(-1)
		if ok {
			return nil
		}
		if l.TryAcquire(size) {
			return nil
		}
	}
}

// HoldUnbudgeted counts a record that never took room (an invalid
// message, or one whose wait ended) so that its report's release balances.
func (l *Ledger) HoldUnbudgeted() { l.records.Add(1) }

// Release gives back the room of n records totalling size bytes.
func (l *Ledger) Release(n int, size int64) {
	records := l.records.Add(-int64(n))
	bytes := l.bytes.Add(-size)
	if l.waiters.Load() == 0 {
		return
	}
	// Wake waiters once an eighth of the budget is free, or when the
	// budget is empty (a record larger than an eighth still gets its
	// turn).
	if records > l.lowRecords || bytes > l.lowBytes && records > 0 {
		return
	}
	l.wake()
}

// Held returns the records held now.
func (l *Ledger) Held() int64 { return l.records.Load() }

// enter counts one record into the current generation and returns it.
func (l *Ledger) enter() *generation {
	for {
		g := l.gen.Load()
		if g.n.Add(1) > 1 {
			return g
		}
		// g was current when loaded, but a Flush moved on and its last
		// record settled meanwhile: it is finished. Take the count back
		// (done is already closed) and enter the new current one.
		g.n.Add(-1)
	}
}

// settle counts n records of generation g as settled.
func (l *Ledger) settle(g *generation, n int64) {
	if g.n.Add(-n) == 0 && g.closed.CompareAndSwap(false, true) {
		close(g.done)
	}
}

// genRun is n records of generation g, to be settled.
type genRun struct {
	g *generation
	n int64
}

// runsOf appends to dst the generations of recs, which are nearly always
// of one: read before the records are reported, settled (settleRuns)
// after, since the producer may keep and recycle the records meanwhile.
func runsOf(recs *Recs, dst []genRun) []genRun {
	for i := range recs.Len() {
		g := recs.At(i).gen
		if g == nil {
			continue // never entered (tests that fill batches directly)
		}
		if k := len(dst) - 1; k >= 0 && dst[k].g == g {
			dst[k].n++
			continue
		}
		dst = append(dst, genRun{g, 1})
	}
	return dst
}

// settleRuns settles what runsOf counted.
func (l *Ledger) settleRuns(runs []genRun) {
	for _, r := range runs {
		l.settle(r.g, r.n)
	}
}

// startFlush ends the current generation and returns it: its done channel
// closes once every record added while it was current is settled.
func (l *Ledger) startFlush() *generation {
	next := newGeneration()
	old := l.gen.Swap(next)
	l.settle(old, 1) // its bias: it is no longer current
	return old
}

// unsettled reports whether the current generation has records.
func (l *Ledger) unsettled() bool { return l.gen.Load().n.Load() > 1 }
