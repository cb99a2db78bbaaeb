package keel

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/keel-go/keel/internal/fetch"
)

// parallelLane processes up to limit records of one partition at once
// (Parallel): with KeyOrder, records of the same key one after another in
// offset order and records of different keys concurrently; with NoOrder,
// any records concurrently. Whatever finishes when, the partition's
// position to commit is the contiguous processed prefix (offsetTrack):
// never past a record that has not finished. Records processed beyond it
// travel in the commit's metadata (doneRanges) so that whoever continues
// the partition does not process them again.
//
// The lane's goroutine takes records from the queue in offset order and
// starts a runner for each record whose key is free; a runner handles its
// record, then the records that queued behind the same key meanwhile, and
// ends when the key has none waiting. Records whose key is busy wait in
// their key's queue and still count against the lane's flow control, so
// memory stays bounded as in sequential processing.
type parallelLane struct {
	r         *runPath
	c         *memberCore
	ps        *partitionState
	tp        TopicPartition
	h         Handler
	byKey     bool
	limit     int // records handled at once
	ctx       context.Context
	cancelCtx context.CancelCauseFunc
	wake      chan struct{}
	doneCh    chan struct{}
	stopping  atomic.Bool // Close began: start nothing new

	mu         sync.Mutex
	queue      []workChunk // fetched, not yet taken
	qi         int         // next record of queue[0]
	records    int         // queued or waiting for their key: what flow control counts
	bytes      int
	paused     bool // by flow control
	userPaused bool
	seq        uint64 // fetches with another sequence are from before a move
	next       int64  // offset expected next (-1: any)
	from       int64  // first offset the lane processes; -1 until known
	lastTaken  int64  // offset of the last record taken; -1 for none
	failure    error
	halted     bool   // stopped on a handler failure or a fetch error, until Seek
	gen        uint64 // moved by Seek: what finishes from before does not count
	track      offsetTrack
	skip       doneRanges // processed already (see partitionState.skip)
	skipAt     int
	maxTrack   int // records taken past the prefix at most (maxUntracked)
	// base, baseSkip: where the lane started (its first record's offset
	// when it started at a symbolic one; -1 until known) and the records
	// after it processed before: with ExactlyOnce, where an abort takes
	// the partition back to when no transaction committed it since.
	base     int64
	baseSkip doneRanges
	keys     map[string]*keyQueue
	nullKey  *keyQueue // KeyOrder: records without a key are one key
	running  int       // runners alive
	exited   bool
	atExit   []func()
}

// keyQueue is one key's records taken and not yet handled: while busy, a
// runner handles the key's records; the others wait here in offset order.
type keyQueue struct {
	key     string
	null    bool
	busy    bool
	waiting []laneTask
	head    int
}

// laneTask is one record taken by the lane.
type laneTask struct {
	m     *Message
	seq   uint64 // its offsetTrack entry
	gen   uint64
	bytes int
}

func (q *keyQueue) push(t laneTask) { q.waiting = append(q.waiting, t) }

func (q *keyQueue) pop() (laneTask, bool) {
	if q.head == len(q.waiting) {
		return laneTask{}, false
	}
	t := q.waiting[q.head]
	q.waiting[q.head] = laneTask{}
	q.head++
	if q.head == len(q.waiting) {
		q.waiting, q.head = q.waiting[:0], 0
	}
	return t, true
}

func (q *keyQueue) empty() bool { return q.head == len(q.waiting) }

// maxUntracked bounds the records of a partition taken past its committed
// prefix: a record that does not finish holds its partition's progress
// once this many behind it are taken. It also bounds what a member killed
// without Close leaves to be processed again, and the tracking memory (16
// bytes a record).
const maxUntracked = 10_000

// eosMaxUntracked is maxUntracked with ExactlyOnce, far lower: every run
// of records finished past the prefix is a range in the transaction's
// commit metadata, and ranges that do not fit would have their committed
// outputs produced again by the next owner. Taken records alternate
// finished and not at worst, so at most half of these are ranges, a few
// bytes each: well within maxDoneMetadata.
const eosMaxUntracked = 256

// newParallelLane makes ps's parallel lane (under core.mu).
func newParallelLane(r *runPath, ps *partitionState) *parallelLane {
	l := &parallelLane{r: r, c: r.core, ps: ps, tp: ps.tp, h: r.handler,
		byKey: r.order == KeyOrder, limit: r.perPartition,
		seq: ps.seq, next: max(ps.start, -1), from: max(ps.start, -1), lastTaken: -1,
		skip: ps.skip, userPaused: ps.userPaused, maxTrack: maxUntracked,
		base: max(ps.start, -1), baseSkip: ps.skip,
		wake: make(chan struct{}, 1), doneCh: make(chan struct{})}
	if r.core.eos != nil {
		l.maxTrack = eosMaxUntracked
	}
	if l.byKey {
		l.keys = make(map[string]*keyQueue)
	}
	l.ctx, l.cancelCtx = laneCtx(r.runCtx, l)
	return l
}

func (l *parallelLane) done() <-chan struct{} { return l.doneCh }

func (l *parallelLane) wakeUp() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *parallelLane) push(f *fetch.FetchOf[Message]) {
	l.mu.Lock()
	if f.Seq != l.seq {
		l.mu.Unlock()
		return
	}
	msgs := f.Records
	if len(msgs) > 0 && msgs[0].Offset < l.next {
		msgs = dropBefore(msgs, l.next)
	}
	if len(msgs) > 0 {
		if l.from < 0 {
			l.from = msgs[0].Offset
		}
		if l.base < 0 {
			l.base = msgs[0].Offset
		}
		l.next = msgs[len(msgs)-1].Offset + 1
	}
	var tail fetch.Offset
	tail, l.next = tailOf(f, l.next)
	switch {
	case len(msgs) > 0:
		n := msgBytes(msgs)
		l.queue = append(l.queue, workChunk{msgs: msgs, bytes: n, tail: tail})
		l.records += len(msgs)
		l.bytes += n
	case tail.At > 0 && len(l.queue) > 0:
		l.queue[len(l.queue)-1].tail = tail // no records between
	case tail.At > 0:
		l.queue = append(l.queue, workChunk{tail: tail})
	}
	if f.Err != nil && l.failure == nil {
		l.failure = f.Err
	}
	if !l.paused && (l.records >= l.c.cfg.queueRecords || l.bytes >= queueHighBytes) {
		l.paused = true
		l.c.fetcher.Pause(l.tp)
	}
	l.mu.Unlock()
	l.wakeUp()
}

// startedLocked takes a task out of flow control's count: it is being
// handled now.
func (l *parallelLane) startedLocked(t laneTask) {
	l.records--
	l.bytes -= t.bytes
	if l.paused && l.records <= l.c.cfg.queueRecords/2 && l.bytes <= queueLowBytes {
		l.paused = false
		if !l.userPaused && !l.halted {
			l.c.fetcher.Resume(l.tp)
		}
	}
}

func (l *parallelLane) setUserPaused(paused bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.userPaused = paused
	if paused {
		l.c.fetcher.Pause(l.tp)
	} else if !l.paused && !l.halted {
		l.c.fetcher.Resume(l.tp)
	}
}

func (l *parallelLane) stop() {
	l.stopping.Store(true)
	l.wakeUp()
}

func (l *parallelLane) cancel(cause error) { l.cancelCtx(cause) }

func (l *parallelLane) quit() bool { return l.stopping.Load() || l.ctx.Err() != nil }

// keyQueueLocked returns m's key's queue, made on first use.
func (l *parallelLane) keyQueueLocked(m *Message) *keyQueue {
	if m.Key == nil {
		if l.nullKey == nil {
			l.nullKey = &keyQueue{null: true}
		}
		return l.nullKey
	}
	if q := l.keys[string(m.Key)]; q != nil {
		return q
	}
	q := &keyQueue{key: string(m.Key)}
	l.keys[q.key] = q
	return q
}

// dropKeyLocked forgets q once it is neither busy nor has records waiting.
func (l *parallelLane) dropKeyLocked(q *keyQueue) {
	if q.busy || !q.empty() {
		return
	}
	if q.null {
		l.nullKey = nil
	} else {
		delete(l.keys, q.key)
	}
}

// laneStart is a record to start a runner with.
type laneStart struct {
	q *keyQueue // nil with NoOrder
	t laneTask
}

// takeLocked takes records from the queue, in offset order, while fewer
// than limit are being handled (running, plus want-len(out) runners about
// to start), until out has want tasks to start: each record becomes a
// task, started when its key is free and queued behind its key otherwise.
// Records processed already (skip) are finished at once.
func (l *parallelLane) takeLocked(out []laneStart, want int) []laneStart {
	for len(out) < want && !l.halted && l.track.len() < l.maxTrack && len(l.queue) > 0 {
		c := &l.queue[0]
		if l.qi == len(c.msgs) {
			// Every record of the chunk is taken: its tail is a
			// finished entry after them, so the position reaches it
			// once they all finish (past a commit marker).
			if c.tail.At > 0 {
				l.track.push(c.tail.At-1, c.tail.Epoch, true)
				l.lastTaken = c.tail.At - 1
				l.retireLocked()
			}
			l.queue[0] = workChunk{}
			l.queue = l.queue[1:]
			l.qi = 0
			continue
		}
		m := &c.msgs[l.qi]
		l.qi++
		l.lastTaken = m.Offset
		size := len(m.Key) + len(m.Value)
		if l.skip != nil && l.skip.contains(m.Offset, &l.skipAt) {
			// Processed before the partition came here: finished, and
			// the key is not held (all its records before were too).
			l.track.push(m.Offset, m.leaderEpoch, true)
			l.records--
			l.bytes -= size
			l.retireLocked()
			continue
		}
		t := laneTask{m: m, seq: l.track.push(m.Offset, m.leaderEpoch, false), gen: l.gen, bytes: size}
		if !l.byKey {
			l.startedLocked(t)
			out = append(out, laneStart{t: t})
			continue
		}
		q := l.keyQueueLocked(m)
		if q.busy {
			q.push(t)
			continue
		}
		q.busy = true
		l.startedLocked(t)
		out = append(out, laneStart{q: q, t: t})
	}
	if len(l.queue) == 0 && l.failure != nil && !l.halted {
		l.halted = true
		l.c.partitionStopped(l.tp, l.failure)
	}
	return out
}

// retireLocked moves the partition's position over the finished prefix.
func (l *parallelLane) retireLocked() {
	if last, ok := l.track.retire(); ok {
		l.ps.marks.mark(last.offset, last.epoch)
	}
}

func (l *parallelLane) run() {
	defer l.exit()
	var starts []laneStart
	for {
		l.mu.Lock()
		if l.quit() {
			// Wait for the runners: the lane is done once every handler
			// returned.
			for l.running > 0 {
				l.mu.Unlock()
				<-l.wake
				l.mu.Lock()
			}
			l.mu.Unlock()
			return
		}
		starts = l.takeLocked(starts[:0], l.limit-l.running)
		l.running += len(starts)
		l.mu.Unlock()
		for _, s := range starts {
			go l.runKey(s.q, s.t)
		}
		clear(starts)
		select {
		case <-l.wake:
		case <-l.ctx.Done():
		}
	}
}

// runKey handles t, then the records queued behind its key (q, nil with
// NoOrder), then takes the lane's next startable record itself, until
// there is none, the lane stops or a handler fails. Taking the next record
// on the goroutine that just finished one, rather than handing back to the
// lane's goroutine to start another, saves two goroutine switches a
// record, which on a busy machine are most of what a short handler waits.
func (l *parallelLane) runKey(q *keyQueue, t laneTask) {
	r := l.r
	// One watch slot per runner, not per record (consumer_watch.go).
	slot := l.c.watch.handlers.add(l.tp)
	defer l.c.watch.handlers.remove(slot)
	acquired := true
	if r.sem != nil {
		select {
		case r.sem <- struct{}{}:
		case <-l.ctx.Done():
			acquired = false
		}
	}
	eos := l.c.eos
	var eosErr error
	l.mu.Lock()
	for acquired && !l.quit() && !l.halted {
		if eos != nil {
			// The handler and the finish of its record happen inside one
			// transaction (group_eos.go): enter waits while a commit or
			// an abort runs, so it is taken without the lane's lock (an
			// abort seeks the lane under the gate).
			l.mu.Unlock()
			if eosErr = eos.enter(); eosErr != nil {
				l.mu.Lock()
				break
			}
			l.mu.Lock()
			if t.gen != l.gen || l.quit() || l.halted {
				eos.leave(false)
				if t.gen == l.gen {
					break
				}
				// An abort rewound the partition while this waited: t
				// is dropped; the key's records queued since are not.
				var ok bool
				if q, t, ok = l.nextLocked(q); !ok {
					break
				}
				continue
			}
			eos.touch(l.tp, t.m.Offset)
		}
		l.mu.Unlock()
		offset := t.m.Offset
		err := l.c.handle(slot, l.h, l.ctx, t.m)
		out := r.outcome(l.ctx, t.m, offset, err)
		l.mu.Lock()
		current := t.gen == l.gen
		if current {
			switch out {
			case recordDone:
				l.track.finish(t.seq)
				l.retireLocked()
			case recordFailed:
				l.halted = true
				l.c.fetcher.Pause(l.tp)
			}
		}
		if eos != nil {
			eos.leave(out == recordDone && current)
		}
		if out != recordDone {
			break
		}
		var ok bool
		if q, t, ok = l.nextLocked(q); !ok {
			break
		}
	}
	if q != nil {
		q.busy = false
		l.dropKeyLocked(q)
	}
	l.running--
	l.mu.Unlock()
	if acquired && r.sem != nil {
		<-r.sem
	}
	if eosErr != nil {
		l.c.failMember(eosErr)
	}
	l.wakeUp() // a slot is free, or the lane waits for its last runner
}

// nextLocked is the record a runner handles after one of q's (nil with
// NoOrder or when it has none): the key's next waiting record, or else the
// lane's next startable one; false when there is none or the lane stops.
func (l *parallelLane) nextLocked(q *keyQueue) (*keyQueue, laneTask, bool) {
	if q != nil {
		if next, ok := q.pop(); ok {
			l.startedLocked(next)
			return q, next, true
		}
		q.busy = false
		l.dropKeyLocked(q)
	}
	if l.quit() || l.halted {
		return nil, laneTask{}, false
	}
	var one [1]laneStart
	got := l.takeLocked(one[:0], 1)
	if len(got) == 0 {
		return nil, laneTask{}, false
	}
	return got[0].q, got[0].t, true
}

// seek moves the lane to the offset to at once: the fetcher starts there,
// records taken or queued are dropped (their keys stay held until their
// handlers return, so order per key holds across the seek), records being
// handled finish but no longer count, and the position to commit becomes
// to.
func (l *parallelLane) seek(_ context.Context, to int64) error {
	return l.seekSkipping(to, nil, true)
}

// rewind is ExactlyOnce's abort: the lane goes back to its last committed
// offset, to, and skips the records after it that the committed metadata
// says were processed (done), whose outputs are committed.
func (l *parallelLane) rewind(to int64, done doneRanges) error {
	return l.seekSkipping(to, done, true)
}

// forget is rewind for a lane whose partition is being released (it stops
// or has exited): only what it says it processed goes back, to what was
// committed, so that the release's commit does not claim records of the
// aborted transaction; the fetcher is left alone.
func (l *parallelLane) forget(to int64, done doneRanges) {
	l.seekSkipping(to, done, false)
}

// rewindPoint is where an ExactlyOnce abort takes the lane when no
// transaction committed its partition since the lane started: where it
// started and the records after that processed before; false while it
// has received no record.
func (l *parallelLane) rewindPoint() (int64, doneRanges, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.base, l.baseSkip, l.base >= 0
}

func (l *parallelLane) seekSkipping(to int64, done doneRanges, moveFetcher bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if moveFetcher {
		if l.exited {
			return errLaneExited
		}
		seq, ok := l.c.fetcher.SeekAssigned(l.tp, fetch.At(to))
		if !ok {
			return ErrNotAssigned
		}
		l.seq = seq
	}
	l.gen++
	clear(l.queue)
	l.queue, l.qi = l.queue[:0], 0
	for _, q := range l.keys {
		clear(q.waiting)
		q.waiting, q.head = q.waiting[:0], 0
		l.dropKeyLocked(q)
	}
	if q := l.nullKey; q != nil {
		clear(q.waiting)
		q.waiting, q.head = q.waiting[:0], 0
		l.dropKeyLocked(q)
	}
	l.records, l.bytes = 0, 0
	l.failure, l.halted = nil, false
	l.track.reset()
	l.skip, l.skipAt = done, 0
	l.base, l.baseSkip = to, done
	l.next, l.from, l.lastTaken = to, to, -1
	if moveFetcher {
		l.paused = false
		if !l.userPaused {
			l.c.fetcher.Resume(l.tp) // undoes flow control's and a stop's pause
		}
	}
	l.ps.marks.reset(to, -1)
	l.wakeUp()
	return nil
}

func (l *parallelLane) exit() {
	l.mu.Lock()
	l.exited = true
	fns := l.atExit
	l.atExit = nil
	l.mu.Unlock()
	close(l.doneCh)
	for _, fn := range fns {
		fn()
	}
}

func (l *parallelLane) afterExit(fn func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exited {
		return false
	}
	l.atExit = append(l.atExit, fn)
	return true
}

// doneLocked is every record known processed past the prefix: finished
// out of order here, and skipped ranges not reached yet.
func (l *parallelLane) doneLocked() doneRanges {
	d := doneRanges(l.track.doneRuns(nil))
	return append(d, l.skip.after(l.lastTaken+1)...)
}

func (l *parallelLane) resume() (int64, doneRanges, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.from < 0 {
		return 0, nil, false
	}
	at := l.from
	if pos, ok := l.ps.marks.position(); ok && pos.At > at {
		at = pos.At
	}
	return at, l.doneLocked().after(at), true
}

func (l *parallelLane) doneMetadata(committed int64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.doneLocked().encode(committed)
}

// doneMetadataFit is doneMetadata, and whether every range fit in it.
func (l *parallelLane) doneMetadataFit(committed int64) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.doneLocked().encodeFit(committed)
}
