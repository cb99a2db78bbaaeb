package fetch

import (
	"time"

	"github.com/keel-go/keel/internal/meta"

	"github.com/keel-go/keel/internal/topicpart"
)

// partState is where a partition stands.
type partState uint8

const (
	// stResolve: the start offset is symbolic (earliest, latest, a
	// timestamp) and a ListOffsets answer must turn it into an offset.
	stResolve partState = iota
	// stFetch: fetching at fetchOffset.
	stFetch
	// stStopped: an error was queued for Poll; nothing more is fetched
	// until Seek or Unassign.
	stStopped
	// stValidate: the leader changed (or the position came with an epoch
	// from outside) and the position must be checked against the new
	// leader's log with OffsetForLeaderEpoch before fetching (KIP-320):
	// the log may have been truncated below it. See validate.go.
	stValidate
)

// partition is the fetcher's state for one assigned partition. Every field
// is guarded by Fetcher.mu.
type partition[R any] struct {
	tp topicpart.TP
	// gen changes whenever the partition's position is set from outside
	// (Assign, Seek, reset) or it is unassigned, so that an answer to a
	// request sent before is recognised as stale and dropped.
	gen     uint64
	seq     uint64 // from the last Assign or Seek; every Fetch carries it
	removed bool
	state   partState

	// resolveTo is what stResolve resolves: OffsetEarliest, OffsetLatest,
	// or a timestamp in milliseconds when byTime.
	resolveTo int64
	byTime    bool

	fetchOffset int64  // next offset to ask the broker for
	fetchEpoch  int32  // leader epoch of the last batch before fetchOffset, -1 unknown (LastFetchedEpoch)
	position    Offset // next offset Poll returns, and the epoch before it
	maxBytes    int32  // this partition's max bytes in a fetch request
	hwm         int64

	paused   bool
	inflight bool // in a Fetch or ListOffsets request right now

	leader      int32          // broker to ask; -1 while unknown
	src         *source[R]     // the leader's source, whose fetches include it; nil while unknown
	srcIdx      int            // index in src.parts
	leaderEpoch int32          // from metadata, sent as CurrentLeaderEpoch
	routedBy    *meta.Snapshot // the snapshot its leader came from
	retryAt     time.Time
	failures    int

	buf    []*chunk[R] // fetched data not yet returned by Poll, oldest first
	queued bool        // in the fetcher's ready queue
}

// chunk is one fetch answer's data for a partition, waiting for Poll.
type chunk[R any] struct {
	records []R
	spans   []span
	i       int   // next record to return
	sp      int   // next span whose bytes are still counted in the budget
	next    int64 // the partition's position once the chunk is drained
	epoch   int32 // the position's epoch once the chunk is drained (its last batch's), -1 unknown
	err     error // reported after the records; the partition is stopped
}

// markerOnly reports whether c only moves the position: no records, no
// error (control batches or aborted data), so that a later such chunk can
// extend it instead of queueing another.
func (c *chunk[R]) markerOnly() bool { return len(c.records) == 0 && c.err == nil }

// fetchable reports whether the partition can go into a fetch request to
// its leader now.
func (p *partition[R]) fetchable(now time.Time) bool {
	return p.state == stFetch && !p.paused && !p.inflight && p.leader >= 0 && !p.retryAt.After(now)
}

// resolvable reports whether the partition's start offset can be asked for
// now.
func (p *partition[R]) resolvable(now time.Time) bool {
	return p.state == stResolve && !p.inflight && p.leader >= 0 && !p.retryAt.After(now)
}

// validatable reports whether the partition's position can be checked
// with its leader now.
func (p *partition[R]) validatable(now time.Time) bool {
	return p.state == stValidate && !p.inflight && p.leader >= 0 && !p.retryAt.After(now)
}

// partQueue is the fetcher's ready queue: partitions that may have data
// for Poll, in the order it arrived, each at most once (partition.queued).
// Poll takes from its head instead of looking at every partition. An entry
// whose partition was paused, unassigned or seeked meanwhile is skipped
// when its turn comes.
type partQueue[R any] struct {
	items []*partition[R]
	head  int
}

// add queues p unless it is queued already or has nothing to return now.
func (q *partQueue[R]) add(p *partition[R]) {
	if p.queued || p.paused || p.removed || len(p.buf) == 0 {
		return
	}
	p.queued = true
	if q.head > 0 && q.head >= len(q.items)/2 {
		// Reuse the consumed front rather than growing forever.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	q.items = append(q.items, p)
}

// pop takes the partition at the head, nil when the queue is empty.
func (q *partQueue[R]) pop() *partition[R] {
	if q.head == len(q.items) {
		return nil
	}
	p := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	p.queued = false
	return p
}

func (q *partQueue[R]) len() int { return len(q.items) - q.head }
