package keel

import "github.com/keel-go/keel/internal/fetch"

// pollTail is a GroupPoller partition's record of where its position may
// move once the records Poll handed out are processed: past the offsets
// after the last of them that hold no records for the reader (a commit
// marker, an aborted transaction; fetch.FetchOf.Next). Without it the
// committed offset of a fully read transactional partition would stay one
// short of its end, the marker, and the group would show a lag of 1.
// Guarded by core.mu, as the partition's Poll and MarkProcessed are.
type pollTail struct {
	// last is the offset after the last record Poll handed out (or
	// skipped as processed already) since the partition's start or
	// Seek; -1 for none.
	last int64
	// next is the position after them; At 0 when none is known yet.
	next fetch.Offset
}

func newPollTail() pollTail { return pollTail{last: -1} }

// handed records what Poll took from f (of this partition and its current
// position), then moves the position to f.Next if everything before it is
// processed already: a fetch that only skipped a marker has nothing left
// to wait for.
func (t *pollTail) handed(f *fetch.FetchOf[Message], marks *markCell) {
	if n := len(f.Records); n > 0 {
		t.last = f.Records[n-1].Offset + 1
	}
	if f.Next.At > t.next.At {
		t.next = f.Next
	}
	t.catchUp(marks)
}

// catchUp moves the processed position to next when it has reached the
// last record handed out (or nothing was handed out since the start).
func (t *pollTail) catchUp(marks *markCell) {
	if t.next.At <= 0 {
		return
	}
	pos, ok := marks.position()
	caughtUp := ok && pos.At >= t.last || !ok && t.last < 0
	if caughtUp && (!ok || pos.At < t.next.At) {
		marks.mark(t.next.At-1, t.next.Epoch)
	}
}
