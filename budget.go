package keel

import (
	"context"
	"sync"
	"sync/atomic"
)

// budget bounds the records and bytes a producer holds: from Produce until
// the record's delivery report has been handed to its target. A report
// nobody reads keeps its place, so a user who never reads slows Produce
// down instead of growing memory without bound.
//
// Releases come from the report path once per record, so they take no
// lock: they subtract atomically and only wake waiting producers. Taking
// room is serialised by mu, so two producers cannot both take the last
// room; a release running at the same time only makes the check more
// conservative.
type budget struct {
	maxRecords int64
	maxBytes   int64
	// lowRecords and lowBytes are the levels a release must bring the
	// budget down to before it wakes waiting producers: waking them for
	// every single released record made the producer and the report path
	// hand the lock back and forth per record and allocated a channel per
	// wake-up (issue 6). Waking at an eighth free lets a producer take a
	// run of records per wake-up.
	lowRecords int64
	lowBytes   int64

	records atomic.Int64
	bytes   atomic.Int64
	waiters atomic.Int32

	// The counters above are written by the report path on other cores
	// all the time; mu is taken and let go by Produce per record. On the
	// counters' cache line, Produce's Unlock of mu stalled on that line
	// (110 of Produce's 580 ms per 3 M records of 100 B in a profile;
	// 50 ms apart), so mu starts a line of its own.
	_ [64]byte

	// mu serialises taking room and swapping freed; the producer also
	// guards its cache of record bookkeeping with it (acquireHeld).
	mu    sync.Mutex
	freed chan struct{} // closed and replaced to wake waiters
}

func newBudget(maxRecords int, maxBytes int64) *budget {
	return &budget{
		maxRecords: int64(maxRecords),
		maxBytes:   maxBytes,
		lowRecords: int64(maxRecords) - int64(maxRecords)/8,
		lowBytes:   maxBytes - maxBytes/8,
		freed:      make(chan struct{}),
	}
}

// fits says whether a record of size bytes fits now. A record larger than
// the whole byte budget fits when nothing else is held, so it cannot wait
// forever.
func (b *budget) fits(size int64) bool {
	records := b.records.Load()
	return records < b.maxRecords && (b.bytes.Load()+size <= b.maxBytes || records == 0)
}

// take records one record of size bytes as held. Callers hold mu.
func (b *budget) take(size int64) {
	b.records.Add(1)
	b.bytes.Add(size)
}

// acquire takes room for one record of size bytes, waiting under ctx.
func (b *budget) acquire(ctx context.Context, size int64) error {
	if err := b.acquireHeld(ctx, size); err != nil {
		return err
	}
	b.mu.Unlock()
	return nil
}

// acquireHeld is acquire that, when it succeeds, returns with mu still
// held, so that the caller can do other per-record work under the same
// lock (the producer takes its record bookkeeping there) and then
// unlocks mu. On error mu is not held.
func (b *budget) acquireHeld(ctx context.Context, size int64) error {
	b.mu.Lock()
	for !b.fits(size) {
		// Count ourselves as a waiter before checking again: a release
		// either sees the waiter (and wakes the channel taken below,
		// since it swaps it under mu, after we let go) or happened
		// before the check, which then sees its room.
		b.waiters.Add(1)
		if b.fits(size) {
			b.waiters.Add(-1)
			break
		}
		ch := b.freed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			b.waiters.Add(-1)
			return ctx.Err()
		}
		b.mu.Lock()
		b.waiters.Add(-1)
	}
	b.take(size)
	return nil
}

// tryAcquire takes room without waiting.
func (b *budget) tryAcquire(size int64) bool {
	if !b.tryAcquireHeld(size) {
		return false
	}
	b.mu.Unlock()
	return true
}

// tryAcquireHeld is tryAcquire that, when it succeeds, returns with mu
// still held (see acquireHeld). When it fails mu is not held.
func (b *budget) tryAcquireHeld(size int64) bool {
	b.mu.Lock()
	if !b.fits(size) {
		b.mu.Unlock()
		return false
	}
	b.take(size)
	return true
}

// holdUnbudgeted counts a record that never took room (an invalid message,
// or one whose wait ended), so that its report's release balances out.
func (b *budget) holdUnbudgeted() { b.records.Add(1) }

// release gives back the room of n records totalling size bytes.
func (b *budget) release(n int, size int64) {
	records := b.records.Add(-int64(n))
	bytes := b.bytes.Add(-size)
	if b.waiters.Load() == 0 {
		return
	}
	// Wake waiters once an eighth of the budget is free, or when the
	// budget is empty (a record larger than an eighth of the bytes still
	// gets its turn).
	if records > b.lowRecords || bytes > b.lowBytes && records > 0 {
		return
	}
	b.mu.Lock()
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}
