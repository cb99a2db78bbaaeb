package fetch

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/internal/topicpart"
)

// Of fetches the partitions assigned to it from their leaders and buffers
// their records, decoded into R (see Shape), for Poll. Fetcher, its
// instance for Records, is what New returns. Its methods are safe for
// concurrent use.
//
// Goroutines exist only while there is work: one per broker that leads an
// assigned, unpaused partition while the buffer budget has room, one that
// resolves start offsets (ListOffsets) while any partition needs one, and
// short-lived ones for metadata lookups and retry timers. Close stops them
// all.
type Of[R any] struct {
	shape Shape[R]
	cfg   Config
	pool  *conn.Pool
	meta  *meta.Meta
	dec   *record.Decompressor

	ctx    context.Context // ended by Close: abandons requests in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup
	unsub  func()

	// mu guards everything below and every partition's state. Work
	// under it is proportional to what changed — the partitions of one
	// fetch answer, of one Poll — never to every assigned partition, except
	// on metadata changes and retry timers; decoding and I/O run outside
	// it.
	mu        sync.Mutex
	parts     map[topicpart.TP]*partition[R]
	ready     partQueue[R] // partitions with data for Poll, oldest first
	sources   map[int32]*source[R]
	topics    map[string]*topicLookup
	resolving bool
	seq       uint64        // last sequence number given by Assign or Seek
	buffered  int64         // decompressed bytes fetched and not yet polled
	ratio     float64       // decompressed/wire bytes of recent fetches
	notify    chan struct{} // closed when Poll may find something new
	timer     *time.Timer   // next retry of partitions in backoff
	timerAt   time.Time
	closed    bool
}

// topicLookup is the metadata lookup of a topic named by Assign.
type topicLookup struct {
	pending bool
	err     error
}

// New returns a Fetcher that reaches brokers through pool and finds leaders
// through m. Nothing is fetched until Assign.
func New(cfg Config, pool *conn.Pool, m *meta.Meta) *Fetcher {
	return NewOf(cfg, pool, m, RecordShape)
}

// NewOf is New for a Fetcher that makes records of type R with sh.
func NewOf[R any](cfg Config, pool *conn.Pool, m *meta.Meta, sh Shape[R]) *Of[R] {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	f := &Of[R]{
		shape:   sh,
		cfg:     cfg,
		pool:    pool,
		meta:    m,
		dec:     record.NewDecompressor(cfg.MaxDecompressed),
		ctx:     ctx,
		cancel:  cancel,
		parts:   make(map[topicpart.TP]*partition[R]),
		sources: make(map[int32]*source[R]),
		topics:  make(map[string]*topicLookup),
		ratio:   1,
	}
	// Leaders that moved show up here first; partitions waiting for a
	// leader are routed at once rather than at their next retry.
	f.unsub = m.Subscribe(func(*meta.Snapshot) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.routeLocked()
	})
	return f
}

// Assign starts fetching tp at start: an exact offset, Earliest or Latest
// (resolved with ListOffsets first). Assigning a partition already assigned
// is Seek. It returns the sequence number that every Fetch of tp from this
// start carries (Fetch.Seq), and no Fetch from before it: a consumer that
// moves a partition tells the records of the new position from those taken
// from the fetcher before by it. 0 after Close.
func (f *Of[R]) Assign(tp topicpart.TP, start Offset) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.assignLocked(tp)
	if p == nil {
		return 0
	}
	f.startAtLocked(p, start)
	f.routeSomeLocked(p)
	return p.seq
}

// AssignAtTime starts fetching tp at the first record whose timestamp is at
// or after ts, or at the end of the partition if there is none. It returns
// the sequence number as Assign does.
func (f *Of[R]) AssignAtTime(tp topicpart.TP, ts time.Time) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.assignLocked(tp)
	if p == nil {
		return 0
	}
	f.startAtLocked(p, Earliest)
	p.resolveTo, p.byTime = ts.UnixMilli(), true
	f.routeSomeLocked(p)
	return p.seq
}

// Seek drops what is buffered for tp and continues from o (an exact
// offset, Earliest or Latest). It also restarts a partition stopped by an
// error. Seeking a partition not assigned assigns it. It returns the
// sequence number as Assign does.
func (f *Of[R]) Seek(tp topicpart.TP, o Offset) uint64 { return f.Assign(tp, o) }

// SeekAssigned is Seek for a partition that is assigned; it does nothing
// and reports false for one that is not (unassigned meanwhile: a consumer
// giving a partition up must not get it back by a late seek).
func (f *Of[R]) SeekAssigned(tp topicpart.TP, o Offset) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.parts[tp]
	if p == nil || f.closed {
		return 0, false
	}
	f.startAtLocked(p, o)
	f.routeSomeLocked(p)
	return p.seq, true
}

// Unassign stops fetching the partitions and drops what is buffered for
// them.
func (f *Of[R]) Unassign(tps ...topicpart.TP) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tp := range tps {
		p := f.parts[tp]
		if p == nil {
			continue
		}
		f.dropBufferLocked(p)
		p.gen++
		p.removed = true
		f.setLeaderLocked(p, -1)
		delete(f.parts, tp)
	}
	f.kickLocked() // budget may have been freed
}

// Pause leaves the partitions out of fetch requests (and out of the
// brokers' fetch sessions) until Resume. Their buffered records stay, but
// Poll does not return them while paused.
func (f *Of[R]) Pause(tps ...topicpart.TP) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tp := range tps {
		if p := f.parts[tp]; p != nil {
			p.paused = true
		}
	}
}

// Resume undoes Pause.
func (f *Of[R]) Resume(tps ...topicpart.TP) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var resumed []*partition[R]
	for _, tp := range tps {
		if p := f.parts[tp]; p != nil && p.paused {
			p.paused = false
			f.ready.add(p)
			resumed = append(resumed, p)
		}
	}
	f.wakePollLocked()
	f.routeSomeLocked(resumed...)
}

// Position returns the offset of the next record Poll will return for tp
// (the offset to commit once everything before it is processed) with the
// leader epoch of the record before it. It is false when tp is not
// assigned or its start offset is not resolved yet.
func (f *Of[R]) Position(tp topicpart.TP) (Offset, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.parts[tp]
	if p == nil || p.state == stResolve && len(p.buf) == 0 {
		return Offset{}, false
	}
	return p.position, true
}

// Buffered returns the decompressed bytes fetched and not yet returned by
// Poll, as counted against MaxBufferedBytes.
func (f *Of[R]) Buffered() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buffered
}

// Close stops fetching, abandons requests in flight and waits for every
// goroutine the Fetcher started. Poll calls waiting return ErrClosed.
func (f *Of[R]) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		f.wg.Wait()
		return
	}
	f.closed = true
	if f.timer != nil && f.timer.Stop() {
		f.wg.Done()
	}
	f.timer = nil
	f.wakePollLocked()
	f.mu.Unlock()
	f.unsub()
	f.cancel()
	f.wg.Wait()
}

func (f *Of[R]) assignLocked(tp topicpart.TP) *partition[R] {
	if f.closed {
		return nil
	}
	p := f.parts[tp]
	if p == nil {
		p = &partition[R]{tp: tp, leader: -1, leaderEpoch: -1, fetchEpoch: -1, maxBytes: f.cfg.PartitionMaxBytes, hwm: -1}
		f.parts[tp] = p
	}
	if t := f.topics[tp.Topic]; t == nil || !t.pending && t.err != nil {
		f.lookupTopicLocked(tp.Topic)
	}
	return p
}

// startAtLocked (re)starts p at o, dropping anything buffered or in flight
// for it.
func (f *Of[R]) startAtLocked(p *partition[R], o Offset) {
	f.dropBufferLocked(p)
	f.seq++
	p.seq = f.seq
	p.gen++
	p.retryAt, p.failures = time.Time{}, 0
	p.byTime = false
	if o.At >= 0 {
		p.state = stFetch
		p.fetchOffset, p.fetchEpoch = o.At, o.Epoch
		p.position = o
		// An offset with its epoch (a committed one) is checked
		// against the leader's log before fetching (KIP-320).
		f.validateLocked(p)
		return
	}
	p.state = stResolve
	p.resolveTo = o.At
}

// dropBufferLocked releases p's buffered records from the budget.
func (f *Of[R]) dropBufferLocked(p *partition[R]) {
	for _, c := range p.buf {
		for ; c.sp < len(c.spans); c.sp++ {
			f.buffered -= c.spans[c.sp].bytes
		}
	}
	p.buf = nil
}

// stopLocked queues err for Poll and stops p until Seek or Unassign.
func (f *Of[R]) stopLocked(p *partition[R], err error) {
	p.state = stStopped
	f.appendChunkLocked(p, &chunk[R]{next: p.fetchOffset, epoch: p.fetchEpoch, err: err})
	f.wakePollLocked()
}

// appendChunkLocked queues c after p's buffered data, for Poll.
func (f *Of[R]) appendChunkLocked(p *partition[R], c *chunk[R]) {
	p.buf = append(p.buf, c)
	f.ready.add(p)
}

// backoffLocked makes p wait before its next request; with unroute it
// also forgets p's leader, which must then come from metadata again.
func (f *Of[R]) backoffLocked(p *partition[R], unroute bool) {
	p.failures++
	p.retryAt = time.Now().Add(f.cfg.RetryBackoff.Delay(p.failures))
	if unroute {
		f.setLeaderLocked(p, -1)
	}
	f.armLocked(p.retryAt)
}

func (f *Of[R]) wakePollLocked() {
	if f.notify != nil {
		close(f.notify)
		f.notify = nil
	}
}

// lookupTopicLocked asks metadata about a topic newly assigned, which also
// makes every later metadata refresh include it.
func (f *Of[R]) lookupTopicLocked(topic string) {
	f.topics[topic] = &topicLookup{pending: true}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_, err := f.meta.Topic(f.ctx, topic)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.closed {
			return
		}
		f.topics[topic] = &topicLookup{err: err}
		if err != nil {
			for _, p := range f.parts {
				if p.tp.Topic == topic && p.state != stStopped {
					f.stopLocked(p, err)
				}
			}
		}
		f.routeLocked()
	}()
}

// routeLocked routes every assigned partition (see routeSomeLocked): after
// a metadata change, a topic lookup, or when a retry timer fires.
func (f *Of[R]) routeLocked() {
	if f.closed {
		return
	}
	var r router[R]
	r.begin(f)
	for _, p := range f.parts {
		r.route(p)
	}
	r.end()
}

// routeSomeLocked gives each of ps that is not busy its current leader
// from metadata, then starts the goroutines that have work: the sources of
// brokers with fetchable partitions and the offset resolver. Partitions in
// backoff are retried by a timer.
func (f *Of[R]) routeSomeLocked(ps ...*partition[R]) {
	if f.closed || len(ps) == 0 {
		return
	}
	var r router[R]
	r.begin(f)
	for _, p := range ps {
		if !p.removed {
			r.route(p)
		}
	}
	r.end()
}

// router is one routing pass.
type router[R any] struct {
	f         *Of[R]
	snap      *meta.Snapshot
	now, wake time.Time
	needMeta  bool
	resolve   bool
}

func (r *router[R]) begin(f *Of[R]) { *r = router[R]{f: f, snap: f.meta.Current(), now: time.Now()} }

func (r *router[R]) route(p *partition[R]) {
	f := r.f
	if p.state == stStopped || p.inflight {
		return
	}
	if p.retryAt.After(r.now) {
		r.wake = earliest(r.wake, p.retryAt)
		return
	}
	if t := f.topics[p.tp.Topic]; t == nil || t.pending || t.err != nil {
		return
	}
	b, mp, ok := r.snap.Leader(p.tp.Topic, p.tp.Partition)
	if !ok {
		if t := snapTopic(r.snap, p.tp.Topic); t != nil && t.ErrCode == errs.CodeNone && int(p.tp.Partition) >= len(t.Partitions) {
			f.stopLocked(p, &errs.Error{Code: errs.CodeUnknownTopicOrPartition, Name: errs.Lookup(errs.CodeUnknownTopicOrPartition).Name,
				Detail: fmt.Sprintf("partition %v does not exist (topic has %d partitions)", p.tp, len(t.Partitions))})
			return
		}
		r.needMeta = true
		f.backoffLocked(p, true)
		r.wake = earliest(r.wake, p.retryAt)
		return
	}
	f.setLeaderLocked(p, b.ID)
	if needsValidation(p.leaderEpoch, mp.LeaderEpoch) {
		f.validateLocked(p) // KIP-320: the new leader's log may be truncated
	}
	p.leaderEpoch = mp.LeaderEpoch
	p.routedBy = r.snap
	switch {
	case p.fetchable(r.now) && f.buffered < f.cfg.MaxBufferedBytes:
		f.startSourceLocked(p.src)
	case p.resolvable(r.now) || p.validatable(r.now):
		r.resolve = true
	}
}

func (r *router[R]) end() {
	f := r.f
	if r.needMeta {
		f.meta.RefreshSoon()
	}
	if r.resolve {
		f.startResolverLocked()
	}
	f.armLocked(r.wake)
}

// setLeaderLocked makes broker id (-1: none) p's leader and moves p to its
// source, whose fetches then include it.
func (f *Of[R]) setLeaderLocked(p *partition[R], id int32) {
	p.leader = id
	if p.src != nil && p.src.id == id {
		return
	}
	if p.src != nil {
		p.src.remove(p)
		p.src = nil
	}
	if id < 0 {
		return
	}
	s := f.sources[id]
	if s == nil {
		s = &source[R]{f: f, id: id}
		f.sources[id] = s
	}
	s.add(p)
}

// kickLocked restarts the sources that stopped because the buffer budget
// was used up, once it has room again.
func (f *Of[R]) kickLocked() {
	if f.closed || f.buffered >= f.cfg.MaxBufferedBytes {
		return
	}
	for _, s := range f.sources {
		if s.starved {
			s.starved = false
			f.startSourceLocked(s)
		}
	}
}

// startResolverLocked starts the offset resolver unless it runs already.
func (f *Of[R]) startResolverLocked() {
	if !f.resolving && !f.closed {
		f.resolving = true
		f.wg.Add(1)
		go f.resolveLoop()
	}
}

func snapTopic(s *meta.Snapshot, topic string) *meta.Topic {
	if s == nil {
		return nil
	}
	return s.Topics[topic]
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// armLocked makes sure routeLocked runs again by at.
func (f *Of[R]) armLocked(at time.Time) {
	if at.IsZero() || f.closed {
		return
	}
	if f.timer != nil {
		if !f.timerAt.After(at) {
			return
		}
		if f.timer.Stop() {
			f.wg.Done()
		}
	}
	f.wg.Add(1)
	var t *time.Timer
	// t is assigned under f.mu, which the callback takes before reading it.
	t = time.AfterFunc(time.Until(at), func() {
		defer f.wg.Done()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.timer == t {
			f.timer, f.timerAt = nil, time.Time{}
		}
		f.routeLocked()
	})
	f.timer, f.timerAt = t, at
}
