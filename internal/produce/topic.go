package produce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/internal/partition"
	"github.com/keel-go/keel/internal/topicname"
)

// topicState holds the partitions of one topic this producer writes to.
// Until the topic's metadata is known, records wait in `waiting`.
type topicState struct {
	e    *Engine
	name string
	// invalid is set when name is not a legal topic name: its records
	// fail at once, never sent (a permissive broker would take them).
	invalid error

	mu        sync.Mutex
	parts     []*partState
	available []int32 // partitions with a known leader
	waiting   []Rec
	loading   bool // a goroutine loads metadata or replays `waiting`

	// ready is parts and available as add uses them, set once the
	// metadata is loaded and no record waits for it: add reads it
	// without taking mu (issue 6). Cleared when the topic is gone.
	ready atomic.Pointer[topicView]

	checking atomic.Bool // a goroutine checks whether the topic still exists
}

type topicView struct {
	parts []*partState
	avail []int32
}

// publishLocked makes the current partitions the ones add uses without
// the lock, unless records still wait for metadata (they go first).
func (t *topicState) publishLocked() {
	if t.parts != nil && !t.loading {
		t.ready.Store(&topicView{t.parts, t.available})
	}
}

func newTopicState(e *Engine, name string) *topicState {
	return &topicState{e: e, name: name, invalid: topicname.Validate(name)}
}

// add partitions r and appends it to its partition's batches, or parks it
// until the topic's metadata arrives.
func (t *topicState) add(r *Rec) {
	if v := t.ready.Load(); v != nil {
		t.place(r, v.parts, v.avail)
		return
	}
	if t.invalid != nil {
		t.e.failNow(t.name, r, t.invalid)
		return
	}
	t.mu.Lock()
	if t.e.closed.Load() {
		t.mu.Unlock()
		t.e.failNow(t.name, r, ErrClosed)
		return
	}
	// While earlier records wait (for metadata, or to be replayed after
	// it came), later ones queue behind them to keep produce order.
	if t.parts == nil || t.loading {
		if r.deadline == 0 {
			// Its delivery timeout runs while it waits.
			r.deadline = t.e.now() + int64(t.e.cfg.DeliveryTimeout)
		}
		t.waiting = append(t.waiting, *r)
		if !t.loading {
			t.loading = t.e.goStart(t.load)
		}
		t.mu.Unlock()
		return
	}
	parts, avail := t.parts, t.available
	t.mu.Unlock()
	t.place(r, parts, avail)
}

// place partitions r and appends it to its partition.
func (t *topicState) place(r *Rec, parts []*partState, avail []int32) {
	hasKey := r.Record.Key != nil
	n := int32(len(parts))
	p, err := partition.Pick(t.e.cfg.Partitioner, t.name, r.Partition, r.Record.Key, hasKey, n, avail)
	if err != nil {
		t.e.failNow(t.name, r, err)
		return
	}
	if parts[p].append(r, false) {
		return
	}
	// KIP-480: the record would open a new batch on p; a sticky
	// partitioner may send it (and the batches after it) elsewhere.
	if r.Partition == partition.Unassigned {
		t.e.cfg.Partitioner.OnNewBatch(t.name, p)
		if p2, err := partition.Pick(t.e.cfg.Partitioner, t.name, r.Partition, r.Record.Key, hasKey, n, avail); err == nil {
			p = p2
		}
	}
	parts[p].append(r, true)
}

// load fetches the topic's metadata for the records waiting on it. A topic
// that does not exist fails them with the client's ErrUnknownTopic error.
func (t *topicState) load() {
	ctx, cancel := context.WithTimeout(t.e.ctx, t.e.cfg.DeliveryTimeout)
	defer cancel()
	_, err := t.e.meta.Topic(ctx, t.name)
	var snap *meta.Snapshot
	if err == nil {
		snap = t.e.meta.Current()
	}

	if err != nil {
		t.mu.Lock()
		t.loading = false
		waiting := t.waiting
		t.waiting = nil
		t.mu.Unlock()
		switch {
		case t.e.isClosing():
			err = ErrClosed
		case errors.Is(err, context.DeadlineExceeded):
			err = &errs.Error{Detail: fmt.Sprintf("no metadata for topic %q within the delivery timeout (%v)", t.name, t.e.cfg.DeliveryTimeout), Err: ErrDeliveryTimeout}
		}
		t.e.report(&Report{Topic: t.name, Partition: partition.Unassigned, Recs: LooseRecs(waiting), base: -1, appendTime: -1, err: err})
		return
	}
	t.mu.Lock()
	t.applyLocked(snap)
	t.mu.Unlock()
	// Replay the waiting records in order; records added meanwhile join
	// the end of the queue, so the queue is empty only when we are done.
	for {
		t.mu.Lock()
		waiting := t.waiting
		t.waiting = nil
		if len(waiting) == 0 || t.parts == nil {
			t.loading = false
			t.publishLocked()
			t.mu.Unlock()
			if len(waiting) > 0 { // the topic went away again meanwhile
				t.e.report(&Report{Topic: t.name, Partition: partition.Unassigned, Recs: LooseRecs(waiting), base: -1, appendTime: -1, err: topicGoneErr(t.name)})
			}
			return
		}
		parts, avail := t.parts, t.available
		t.mu.Unlock()
		for i := range waiting {
			t.place(&waiting[i], parts, avail)
		}
	}
}

// applyLocked takes the partition count and leaders from a snapshot. A
// topic can only grow, so existing partition states are kept.
func (t *topicState) applyLocked(s *meta.Snapshot) {
	mt := s.Topics[t.name]
	if mt == nil || mt.ErrCode != errs.CodeNone {
		// Deleted, or unreadable for now: keep what we know. A topic the
		// cluster says it does not know is checked (checkGone).
		return
	}
	for len(t.parts) < len(mt.Partitions) {
		t.parts = append(t.parts, newPartState(t, int32(len(t.parts))))
	}
	avail := make([]int32, 0, len(t.parts))
	for i, p := range t.parts {
		leader := int32(-1)
		if i < len(mt.Partitions) {
			mp := mt.Partitions[i]
			if _, ok := s.Brokers[mp.Leader]; ok && mp.Leader >= 0 {
				leader = mp.Leader
				avail = append(avail, int32(i))
			}
		}
		p.setLeader(leader)
	}
	t.available = avail
	t.publishLocked()
}

func (t *topicState) onMetadata(s *meta.Snapshot) {
	t.mu.Lock()
	known := t.parts != nil
	if known {
		t.applyLocked(s)
	}
	t.mu.Unlock()
	if mt := s.Topics[t.name]; known && mt != nil && mt.ErrCode == errs.CodeUnknownTopicOrPartition {
		t.checkGone()
	}
}

// checkGone makes sure the topic still exists after the cluster said it
// does not (a produce answer or a metadata answer of
// UNKNOWN_TOPIC_OR_PARTITION): the same check as for a topic's first use,
// bounded by the client's UnknownTopicRetries. A topic confirmed gone
// (deleted) fails its records with ErrUnknownTopic instead of retrying
// them until their delivery timeout (issue 18); records produced to it
// later look it up again, and fail the same way unless it was re-created.
func (t *topicState) checkGone() {
	if t.e.isClosing() || !t.checking.CompareAndSwap(false, true) {
		return
	}
	started := t.e.goStart(func() {
		defer t.checking.Store(false)
		ctx, cancel := context.WithTimeout(t.e.ctx, t.e.cfg.DeliveryTimeout)
		defer cancel()
		_, err := t.e.meta.Topic(ctx, t.name)
		if err == nil || !errors.Is(err, errs.ErrUnknownTopic) {
			return // still there (leaders moving), or no answer: retries go on
		}
		t.gone(err)
	})
	if !started {
		t.checking.Store(false)
	}
}

// topicGoneErr is the failure of records for a topic deleted while they
// waited.
func topicGoneErr(name string) error {
	return &errs.Error{
		Code:   errs.CodeUnknownTopicOrPartition,
		Name:   errs.Lookup(errs.CodeUnknownTopicOrPartition).Name,
		Detail: fmt.Sprintf("topic %q was deleted while records waited for it", name),
		Err:    errs.ErrUnknownTopic,
	}
}

// gone forgets the topic's partitions and fails what they hold.
func (t *topicState) gone(err error) {
	t.mu.Lock()
	parts := t.parts
	t.parts, t.available = nil, nil
	t.ready.Store(nil)
	t.mu.Unlock()
	for _, p := range parts {
		p.topicGone(err)
	}
}

func (t *topicState) partitions() []*partState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.parts
}

func (t *topicState) wakeAll() {
	for _, p := range t.partitions() {
		p.wake()
	}
}

func (t *topicState) expire(now int64) {
	t.expireWaiting(now)
	for _, p := range t.partitions() {
		p.expire(now)
	}
}

// expireWaiting fails records that waited for metadata past their
// delivery timeout. (The metadata lookup itself is bounded by the delivery
// timeout too; this covers records queued behind a replay.)
func (t *topicState) expireWaiting(now int64) {
	t.mu.Lock()
	if len(t.waiting) == 0 || t.waiting[0].deadline > now {
		t.mu.Unlock()
		return
	}
	n := 0
	for n < len(t.waiting) && t.waiting[n].deadline <= now {
		n++
	}
	expired := append([]Rec(nil), t.waiting[:n]...)
	t.waiting = append(t.waiting[:0], t.waiting[n:]...)
	t.mu.Unlock()
	t.e.report(&Report{Topic: t.name, Partition: partition.Unassigned, Recs: LooseRecs(expired), base: -1, appendTime: -1,
		err: &errs.Error{Detail: fmt.Sprintf("no metadata for topic %q within the delivery timeout (%v)", t.name, t.e.cfg.DeliveryTimeout), Err: ErrDeliveryTimeout}})
}

// dropCancelledWaiting fails the records waiting for metadata whose ctx
// ended: they were never sent.
func (t *topicState) dropCancelledWaiting() {
	t.mu.Lock()
	var cancelled []Rec
	kept := t.waiting[:0]
	for _, r := range t.waiting {
		if r.Ctx != nil && r.Ctx.Err() != nil {
			cancelled = append(cancelled, r)
		} else {
			kept = append(kept, r)
		}
	}
	clear(t.waiting[len(kept):])
	t.waiting = kept
	t.mu.Unlock()
	for i := range cancelled {
		t.e.failNow(t.name, &cancelled[i], cancelledErr(cancelled[i].Ctx))
	}
}

func cancelledErr(ctx context.Context) error {
	return fmt.Errorf("record cancelled before it was sent: %w", context.Cause(ctx))
}

// failAll fails every record of the topic: those waiting for metadata and
// every batch of every partition.
func (t *topicState) failAll(err error) {
	t.mu.Lock()
	waiting := t.waiting
	t.waiting = nil
	parts := t.parts
	t.mu.Unlock()
	t.e.report(&Report{Topic: t.name, Partition: partition.Unassigned, Recs: LooseRecs(waiting), base: -1, appendTime: -1, err: err})
	for _, p := range parts {
		p.failAll(err)
	}
}
