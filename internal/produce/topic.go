package produce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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
	waiting   []*Rec
	loading   bool // a goroutine loads metadata or replays `waiting`

	// ready is parts and available as add uses them, set once the
	// metadata is loaded and no record waits for it (it then stays set):
	// add reads it without taking mu, one lock less per record (issue 6).
	ready atomic.Pointer[topicView]
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
		t.e.fail([]*Rec{r}, r.Partition, false, t.invalid)
		return
	}
	t.mu.Lock()
	// While earlier records wait (for metadata, or to be replayed after
	// it came), later ones queue behind them to keep produce order.
	if t.parts == nil || t.loading {
		if r.deadline.IsZero() {
			// Its delivery timeout runs while it waits.
			r.deadline = time.Now().Add(t.e.cfg.DeliveryTimeout)
		}
		t.waiting = append(t.waiting, r)
		if !t.loading {
			t.loading = true
			t.e.wg.Add(1)
			go t.load()
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
		t.e.fail([]*Rec{r}, r.Partition, false, err)
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
	defer t.e.wg.Done()
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
		t.e.fail(waiting, partition.Unassigned, false, err)
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
		if len(waiting) == 0 {
			t.loading = false
			t.publishLocked()
			t.mu.Unlock()
			return
		}
		parts, avail := t.parts, t.available
		t.mu.Unlock()
		for _, r := range waiting {
			t.place(r, parts, avail)
		}
	}
}

// applyLocked takes the partition count and leaders from a snapshot. A
// topic can only grow, so existing partition states are kept.
func (t *topicState) applyLocked(s *meta.Snapshot) {
	mt := s.Topics[t.name]
	if mt == nil || mt.ErrCode != 0 {
		// Deleted, or unreadable for now: keep what we know; records
		// fail by their delivery timeout if it does not come back.
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
	defer t.mu.Unlock()
	if t.parts != nil {
		t.applyLocked(s)
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

func (t *topicState) expire(now timeNow) {
	for _, p := range t.partitions() {
		p.expire(now)
	}
}

// dropCancelledWaiting fails the records waiting for metadata whose ctx
// ended: they were never sent.
func (t *topicState) dropCancelledWaiting() {
	t.mu.Lock()
	var cancelled []*Rec
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
	for _, r := range cancelled {
		t.e.fail([]*Rec{r}, partition.Unassigned, false, fmt.Errorf("record cancelled before it was sent: %w", context.Cause(r.Ctx)))
	}
}

// failAll fails every record of the topic: those waiting for metadata and
// every batch of every partition.
func (t *topicState) failAll(err error) {
	t.mu.Lock()
	waiting := t.waiting
	t.waiting = nil
	parts := t.parts
	t.mu.Unlock()
	t.e.fail(waiting, partition.Unassigned, false, err)
	for _, p := range parts {
		p.failAll(err)
	}
}
