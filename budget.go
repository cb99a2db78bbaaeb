package keel

import (
	"context"
	"sync"
)

// budget bounds the records and bytes a producer holds: from Produce until
// the record's delivery report has been handed to its target. A report
// nobody reads keeps its place, so a user who never reads slows Produce
// down instead of growing memory without bound.
type budget struct {
	maxRecords int
	maxBytes   int64

	mu      sync.Mutex
	records int
	bytes   int64
	waiters int
	freed   chan struct{} // closed and replaced when room is released
}

func newBudget(maxRecords int, maxBytes int64) *budget {
	return &budget{maxRecords: maxRecords, maxBytes: maxBytes, freed: make(chan struct{})}
}

func (b *budget) fits(size int64) bool {
	return b.records < b.maxRecords && (b.bytes+size <= b.maxBytes || b.records == 0)
}

// acquire takes room for one record of size bytes, waiting under ctx.
func (b *budget) acquire(ctx context.Context, size int64) error {
	b.mu.Lock()
	for !b.fits(size) {
		ch := b.freed
		b.waiters++
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			b.mu.Lock()
			b.waiters--
			b.mu.Unlock()
			return ctx.Err()
		}
		b.mu.Lock()
		b.waiters--
	}
	b.records++
	b.bytes += size
	b.mu.Unlock()
	return nil
}

// tryAcquire takes room without waiting.
func (b *budget) tryAcquire(size int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.fits(size) {
		return false
	}
	b.records++
	b.bytes += size
	return true
}

func (b *budget) release(size int64) {
	b.mu.Lock()
	b.records--
	b.bytes -= size
	if b.waiters > 0 {
		close(b.freed)
		b.freed = make(chan struct{})
	}
	b.mu.Unlock()
}
