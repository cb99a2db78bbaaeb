package fetch

import (
	"context"
	"slices"

	"github.com/keel-go/keel/internal/errs"
)

// ErrClosed is returned by Poll after Close.
var ErrClosed = errs.ErrClosed

// Poll waits until records (or a partition error, or a move of a
// partition's position past offsets without records) are buffered, or ctx
// ends, and returns up to max records in total (0: no limit), one Fetch per
// partition with its records in offset order; a Fetch without records and
// error only moves the position (Fetch.Next). Partitions take turns across
// calls so that one busy partition cannot starve the others. The records
// returned no longer count against the buffer budget; they are the
// caller's to keep.
//
// Poll returns ctx's error when ctx ends first and ErrClosed after Close.
// Paused partitions' buffered records are kept for after Resume.
func (f *Of[R]) Poll(ctx context.Context, max int) ([]FetchOf[R], error) {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return nil, ErrClosed
		}
		if out := f.takeLocked(max); len(out) > 0 {
			f.mu.Unlock()
			return out, nil
		}
		if f.notify == nil {
			f.notify = make(chan struct{})
		}
		wait := f.notify
		f.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// takeLocked hands out buffered records, advancing positions and releasing
// the budget. It visits the partitions of the ready queue in turn; one cut
// short by the limit goes to the back, so that a busy partition cannot
// starve the others.
func (f *Of[R]) takeLocked(limit int) []FetchOf[R] {
	var out []FetchOf[R]
	left := limit
	drained := false
	for n := f.ready.len(); n > 0 && (limit <= 0 || left > 0); n-- {
		p := f.ready.pop()
		if p.paused || p.removed || len(p.buf) == 0 {
			continue // Resume or new data queues it again
		}
		fe := FetchOf[R]{TP: p.tp, Seq: p.seq, HighWatermark: p.hwm}
		before := p.position
		for len(p.buf) > 0 && (limit <= 0 || left > 0) {
			c := p.buf[0]
			take := len(c.records) - c.i
			if limit > 0 {
				take = min(take, left)
			}
			if take > 0 {
				recs := c.records[c.i : c.i+take]
				if fe.Records == nil {
					// Clipped, so that appending the next chunk
					// copies rather than writing into this one.
					fe.Records = slices.Clip(recs)
				} else {
					fe.Records = append(fe.Records, recs...)
				}
				c.i += take
				left -= take
				last := &recs[len(recs)-1]
				at, epoch := f.shape.Pos(last)
				p.position = Offset{At: at + 1, Epoch: epoch}
				for ; c.sp < len(c.spans) && c.spans[c.sp].end <= c.i; c.sp++ {
					f.buffered -= c.spans[c.sp].bytes
					fe.Bytes += c.spans[c.sp].bytes
				}
			}
			if c.i < len(c.records) {
				break
			}
			// Drained: the position moves past what the chunk skipped
			// (control batches, aborted transactions).
			p.position = Offset{At: c.next, Epoch: c.epoch}
			// The slot is cleared: a slice shifted from the front keeps
			// its array alive, and the array its old elements, so each
			// partition kept its last chunk (records, and through them
			// the whole fetch answer they point into) until its next
			// chunk came; at 64 partitions that was half the consumer's
			// live heap (TestPollForgetsDrainedChunks). Emptied, the
			// array is reused.
			p.buf[0] = nil
			if len(p.buf) == 1 {
				p.buf = p.buf[:0]
			} else {
				p.buf = p.buf[1:]
			}
			drained = true
			if c.err != nil {
				fe.Err = c.err
				p.buf = nil
				break
			}
		}
		f.ready.add(p) // what the limit left
		fe.Next = p.position
		if len(fe.Records) > 0 || fe.Err != nil || p.position.At != before.At {
			out = append(out, fe)
		}
	}
	if drained || len(out) > 0 {
		f.kickLocked() // the budget may have room again
	}
	return out
}
