package keel

import (
	"sync"
	"sync/atomic"

	"github.com/keel-go/keel/internal/group"
)

// markCell is a partition's processed position: the offset after the last
// record processed, which is what a commit sends, with the leader epoch of
// that record. Each partition has its own, and marking is lock-free in the
// common case, so that marking a record (once per record in Run mode) is
// one compare-and-swap instead of the consumer's lock and a map update
// (issue 6).
//
// word packs both: (next+1)<<markEpochBits | epoch+1, for offsets below
// 2^43-1 and epochs below 2^20-1, which is every real partition. A
// position that does not fit is kept in slow under mu, and word is then
// markSlow until a reset. Zero is nothing marked.
type markCell struct {
	word atomic.Int64
	mu   sync.Mutex
	slow group.Offset // when word == markSlow
	// last is the position last committed from this cell (lastSet: any);
	// only commitMarked touches it, under commitMu.
	last    group.Offset
	lastSet bool
}

const (
	markEpochBits       = 20
	markSlow      int64 = -1
	markMaxNext         = 1<<(63-markEpochBits) - 2
)

// pack returns the word for position next with epoch, if it fits.
func pack(next int64, epoch int32) (int64, bool) {
	if next < 0 || next > markMaxNext || epoch < -1 || epoch >= 1<<markEpochBits-1 {
		return 0, false
	}
	return (next+1)<<markEpochBits | int64(epoch+1), true
}

// packedNext is the position a packed word holds.
func packedNext(w int64) int64 { return w>>markEpochBits - 1 }

// mark records that the record at offset, of a batch of leader epoch
// epoch, was processed. Positions never move back, and marking a record
// again changes nothing. Safe for concurrent use.
func (c *markCell) mark(offset int64, epoch int32) {
	next := offset + 1
	if next <= 0 {
		return // not a record's offset
	}
	if w, ok := pack(next, epoch); ok {
		for {
			old := c.word.Load()
			if old == markSlow {
				break
			}
			if old != 0 && packedNext(old) >= next {
				return
			}
			if c.word.CompareAndSwap(old, w) {
				return
			}
		}
	}
	c.markSlow(next, epoch)
}

// markSlow is mark for positions word cannot hold (or once it holds none).
func (c *markCell) markSlow(next int64, epoch int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		old := c.word.Load()
		if old == markSlow {
			if c.slow.At < next {
				c.slow = group.Offset{At: next, Epoch: epoch}
			}
			return
		}
		if old != 0 && packedNext(old) >= next {
			return
		}
		c.slow = group.Offset{At: next, Epoch: epoch}
		if c.word.CompareAndSwap(old, markSlow) {
			return
		}
		// A lock-free mark moved word meanwhile: look again.
	}
}

// reset sets the position to next (the offset of the next record to
// process) with epoch, also backwards: the one way a position moves other
// than forward, for Seek. The caller makes sure no mark of a record from
// before the seek can come after it.
func (c *markCell) reset(next int64, epoch int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := pack(next, epoch); ok {
		c.word.Store(w)
		return
	}
	c.slow = group.Offset{At: next, Epoch: epoch}
	c.word.Store(markSlow)
}

// position returns the processed position, if any record was marked.
func (c *markCell) position() (group.Offset, bool) {
	switch w := c.word.Load(); {
	case w == 0:
		return group.Offset{}, false
	case w == markSlow:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.slow, true
	default:
		return group.Offset{At: packedNext(w), Epoch: int32(w&(1<<markEpochBits-1)) - 1}, true
	}
}

// pending returns the position to commit, with metadata md, if either
// changed since the last commit.
func (c *markCell) pending(md func(committed int64) string) (group.Offset, bool) {
	o, ok := c.position()
	if !ok {
		return group.Offset{}, false
	}
	if md != nil {
		o.Metadata = md(o.At)
	}
	if c.lastSet && c.last == o {
		return group.Offset{}, false
	}
	return o, true
}

// lastCommitted returns the offset and metadata last committed from this
// cell; false before the first commit. Under the member's commitMu, as
// committed.
func (c *markCell) lastCommitted() (int64, string, bool) {
	return c.last.At, c.last.Metadata, c.lastSet
}

// committed records that o was committed.
func (c *markCell) committed(o group.Offset) { c.last, c.lastSet = o, true }
