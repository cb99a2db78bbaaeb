package fetch

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/topicpart"
	"github.com/keel-go/keel/internal/wait"
)

// source fetches the partitions one broker leads. Its goroutine runs while
// the broker leads fetchable partitions and the buffer budget has room,
// with one fetch request in flight at a time; it owns the fetch session.
type source[R any] struct {
	f  *Of[R]
	id int32
	// Guarded by f.mu: the partitions this broker leads, whether the
	// goroutine runs, and whether it stopped for want of budget (so that
	// Poll freeing some restarts it).
	parts   []*partition[R]
	running bool
	starved bool
	sess    session
	// sessionErrs counts session errors in a row, so that a broker that
	// keeps rejecting our sessions is not asked again in a tight loop.
	sessionErrs int
}

// inReq is one partition of a fetch request as it was sent.
type inReq[R any] struct {
	p      *partition[R]
	gen    uint64
	offset int64 // fetch offset, or what ListOffsets resolves
	epoch  int32 // current leader epoch sent with it
}

func (s *source[R]) add(p *partition[R]) {
	p.src, p.srcIdx = s, len(s.parts)
	s.parts = append(s.parts, p)
}

func (s *source[R]) remove(p *partition[R]) {
	last := len(s.parts) - 1
	s.parts[p.srcIdx] = s.parts[last]
	s.parts[p.srcIdx].srcIdx = p.srcIdx
	s.parts[last] = nil
	s.parts = s.parts[:last]
}

// startSourceLocked starts s's goroutine unless it runs already.
func (f *Of[R]) startSourceLocked(s *source[R]) {
	if s.running || f.closed {
		return
	}
	s.running = true
	f.wg.Add(1)
	go s.run()
}

func (s *source[R]) run() {
	defer s.f.wg.Done()
	for s.fetchOnce() {
	}
}

// fetchOnce sends one fetch request and handles its answer. It returns
// false, having marked the source stopped, when there is nothing to fetch.
func (s *source[R]) fetchOnce() bool {
	f := s.f
	f.mu.Lock()
	want, parts, maxBytes := s.collectLocked()
	if len(parts) == 0 {
		s.running = false
		f.mu.Unlock()
		return false
	}
	f.mu.Unlock()

	c, err := s.conn()
	if err != nil {
		s.failed(parts, err)
		return true
	}
	s.sess.disabled = c.Versions().Version(int16(kmsg.Fetch)) < 7
	sr := s.sess.build(want)
	req := s.request(sr, maxBytes)
	kr, err := c.Request(f.ctx, req)
	if err != nil {
		s.sess.failed()
		s.failed(parts, err)
		return true
	}
	s.handle(sr, parts, kr.(*kmsg.FetchResponse), c.Addr())
	return true
}

// collectLocked picks the partitions to fetch from this broker now and
// marks them in flight. It returns none while the budget is used up.
func (s *source[R]) collectLocked() (map[topicpart.TP]sessionPart, map[topicpart.TP]inReq[R], int32) {
	f := s.f
	if f.closed {
		return nil, nil, 0
	}
	if f.buffered >= f.cfg.MaxBufferedBytes {
		s.starved = true
		return nil, nil, 0
	}
	now := time.Now()
	// Sized up front: growing them was most of a round's cost with
	// thousands of partitions (BenchmarkFetchAnswer).
	want := make(map[topicpart.TP]sessionPart, len(s.parts))
	parts := make(map[topicpart.TP]inReq[R], len(s.parts))
	for _, p := range s.parts {
		if !p.fetchable(now) {
			continue
		}
		p.inflight = true
		want[p.tp] = sessionPart{Offset: p.fetchOffset, LeaderEpoch: p.leaderEpoch, LastEpoch: p.fetchEpoch, MaxBytes: p.maxBytes}
		parts[p.tp] = inReq[R]{p: p, gen: p.gen, offset: p.fetchOffset}
	}
	// The response may not be larger than the room left in the budget
	// (the broker still returns one batch if the first is larger). The
	// budget counts decompressed bytes and the broker's limit compressed
	// ones, so the room is scaled by the compression seen so far.
	room := float64(f.cfg.MaxBufferedBytes-f.buffered) / max(f.ratio, 1)
	return want, parts, int32(max(min(room, float64(f.cfg.MaxBytes)), 1))
}

func (s *source[R]) conn() (*conn.Conn, error) {
	addr, ok := s.f.meta.BrokerAddr(s.id)
	if !ok {
		return nil, &errs.Error{Retriable: true, Detail: fmt.Sprintf("broker %d is not in the metadata", s.id), Err: errs.ErrBrokerUnreachable}
	}
	return s.f.pool.Get(s.f.ctx, addr, conn.Fetch)
}

// request builds the fetch request for sr.
func (s *source[R]) request(sr sessionReq, maxBytes int32) *kmsg.FetchRequest {
	cfg := &s.f.cfg
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = int32(cfg.MaxWait / time.Millisecond)
	req.MinBytes = cfg.MinBytes
	req.MaxBytes = maxBytes
	if cfg.ReadCommitted {
		req.IsolationLevel = 1
	}
	req.SessionID, req.SessionEpoch = sr.id, sr.epoch
	topics := make(map[string]int)
	for _, tp := range sr.send {
		sp := sr.want[tp]
		i, ok := topics[tp.Topic]
		if !ok {
			i = len(req.Topics)
			topics[tp.Topic] = i
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = tp.Topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = tp.Partition
		rp.FetchOffset = sp.Offset
		rp.PartitionMaxBytes = sp.MaxBytes
		rp.CurrentLeaderEpoch = sp.LeaderEpoch
		rp.LogStartOffset = -1
		rp.LastFetchedEpoch = sp.LastEpoch // lets a v12+ leader say where our log diverged (KIP-595)
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	forgotten := make(map[string]int)
	for _, tp := range sr.forget {
		i, ok := forgotten[tp.Topic]
		if !ok {
			i = len(req.ForgottenTopics)
			forgotten[tp.Topic] = i
			ft := kmsg.NewFetchRequestForgottenTopic()
			ft.Topic = tp.Topic
			req.ForgottenTopics = append(req.ForgottenTopics, ft)
		}
		req.ForgottenTopics[i].Partitions = append(req.ForgottenTopics[i].Partitions, tp.Partition)
	}
	return req
}

// failed handles a request that got no answer: the partitions back off and
// look for their leader again (the broker may be gone).
func (s *source[R]) failed(parts map[topicpart.TP]inReq[R], err error) {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range parts {
		r.p.inflight = false
		if !f.closed && !r.p.removed {
			f.backoffLocked(r.p, true)
		}
	}
	if f.closed || f.ctx.Err() != nil {
		return
	}
	f.cfg.Logger.Debug("keel: fetch failed", "broker", s.id, "err", err)
	f.meta.RefreshSoon()
}

// result is one partition's part of an answer, decoded outside the lock.
type result[R any] struct {
	r    inReq[R]
	code int16
	hwm  int64
	d    decoded[R]
	// diverged: the leader says the log of the epoch we last fetched in
	// ends at divergedAt in epoch divergedEpoch, below our fetch offset
	// (KIP-595 DivergingEpoch); the answer has no records then.
	diverged      bool
	divergedEpoch int32
	divergedAt    int64
}

// handle applies a fetch answer.
func (s *source[R]) handle(sr sessionReq, parts map[topicpart.TP]inReq[R], resp *kmsg.FetchResponse, addr string) {
	f := s.f
	s.sess.answered(sr, resp.ErrorCode, resp.SessionID)
	if resp.ErrorCode == errs.CodeFetchSessionIdNotFound || resp.ErrorCode == errs.CodeInvalidFetchSessionEpoch {
		s.sessionErrs++
		f.cfg.Logger.Debug("keel: fetch session reset", "broker", s.id, "code", resp.ErrorCode)
		s.release(parts, nil)
		if s.sessionErrs > 1 {
			wait.Sleep(f.ctx, f.cfg.RetryBackoff.Delay(s.sessionErrs-1))
		}
		return
	}
	s.sessionErrs = 0
	var results []result[R]
	var wire, plain int64 // for the compression ratio
	if resp.ErrorCode != errs.CodeNone {
		// A top-level error concerns every partition of the request.
		for _, r := range parts {
			results = append(results, result[R]{r: r, code: resp.ErrorCode, hwm: -1})
		}
	}
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			r, ok := parts[topicpart.TP{Topic: rt.Topic, Partition: rp.Partition}]
			if !ok || resp.ErrorCode != errs.CodeNone {
				continue
			}
			res := result[R]{r: r, code: rp.ErrorCode, hwm: rp.HighWatermark}
			if de := rp.DivergingEpoch; rp.ErrorCode == errs.CodeNone && de.EndOffset >= 0 && de.Epoch >= 0 {
				res.diverged, res.divergedEpoch, res.divergedAt = true, de.Epoch, de.EndOffset
			} else if rp.ErrorCode == errs.CodeNone {
				res.d = decodeAs(&f.shape, r.p.tp, rp.RecordBatches, r.offset, f.cfg.ReadCommitted, abortedOf(rp), f.dec)
				if res.d.bytes > 0 {
					wire += int64(len(rp.RecordBatches))
					plain += res.d.bytes
				}
			}
			results = append(results, res)
		}
	}
	s.release(parts, func() {
		if wire > 0 {
			// Smoothed, so that one odd batch does not swing it.
			f.ratio = (f.ratio + float64(plain)/float64(wire)) / 2
		}
		for _, res := range results {
			s.applyLocked(res, addr)
		}
	})
	if f.cfg.OnBatch != nil {
		noteBatches(f.cfg.OnBatch, addr, results)
	}
}

// release clears the in-flight mark of the request's partitions, running
// apply first under the lock, then routes again those that need it: a
// leader that moved while they were in flight (the metadata changed since
// they were routed) takes them over now, and a partition that left the
// fetch state gets what it needs next. The others stay with this source,
// whose goroutine goes on to its next fetch itself.
func (s *source[R]) release(parts map[topicpart.TP]inReq[R], apply func()) {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range parts {
		r.p.inflight = false
	}
	if apply != nil {
		apply()
	}
	snap := f.meta.Current()
	var ps []*partition[R]
	for _, r := range parts {
		if p := r.p; p.routedBy != snap || p.state != stFetch || p.src != s {
			ps = append(ps, p)
		}
	}
	f.routeSomeLocked(ps...)
}

func abortedOf(rp *kmsg.FetchResponseTopicPartition) []abortedTxn {
	if len(rp.AbortedTransactions) == 0 {
		return nil
	}
	out := make([]abortedTxn, len(rp.AbortedTransactions))
	for i, a := range rp.AbortedTransactions {
		out[i] = abortedTxn{pid: a.ProducerID, first: a.FirstOffset}
	}
	return out
}

// maxPartitionBytes bounds how far a partition's max bytes is raised when
// its next batch does not fit.
const maxPartitionBytes = 1 << 30

// applyLocked applies one partition's result unless the partition moved on
// since the request was sent (Seek, Unassign, reset).
func (s *source[R]) applyLocked(res result[R], addr string) {
	f := s.f
	p := res.r.p
	if p.removed || p.gen != res.r.gen || p.state != stFetch || p.fetchOffset != res.r.offset {
		if res.code != errs.CodeNone {
			f.meta.HandleError(res.code)
		}
		return
	}
	if res.code != errs.CodeNone {
		f.partitionErrorLocked(p, res.code, addr)
		return
	}
	p.failures = 0
	p.hwm = res.hwm
	if res.diverged {
		f.divergedLocked(p, res.divergedEpoch, res.divergedAt, addr)
		return
	}
	d := res.d
	if d.epoch >= 0 {
		p.fetchEpoch = d.epoch
	}
	if d.tooSmall {
		if p.maxBytes < maxPartitionBytes {
			// A broker older than KIP-74 returns only what fits; ask
			// for more until the batch does.
			p.maxBytes = int32(min(2*int64(p.maxBytes), maxPartitionBytes))
			return
		}
		d.err = &errs.Error{Code: errs.CodeMessageTooLarge, Name: errs.Lookup(errs.CodeMessageTooLarge).Name, Broker: addr,
			Detail: fmt.Sprintf("the batch at offset %d of %v is larger than %d bytes", p.fetchOffset, p.tp, maxPartitionBytes)}
	}
	if len(d.records) == 0 && d.err == nil {
		// Only control batches, aborted data or nothing: move past it.
		// Poll hands the move out as a Fetch without records, so that a
		// consumer can commit past a commit marker (else a fully read
		// transactional partition shows a lag of 1).
		if d.next > p.fetchOffset {
			p.fetchOffset = d.next
			if n := len(p.buf); n > 0 && p.buf[n-1].markerOnly() {
				p.buf[n-1].next, p.buf[n-1].epoch = d.next, p.fetchEpoch
			} else {
				f.appendChunkLocked(p, &chunk[R]{next: d.next, epoch: p.fetchEpoch})
			}
			f.wakePollLocked()
		}
		return
	}
	f.appendChunkLocked(p, &chunk[R]{records: d.records, spans: d.spans, next: d.next, epoch: p.fetchEpoch, err: d.err})
	f.buffered += d.bytes
	p.fetchOffset = d.next
	if d.err != nil {
		p.state = stStopped
		f.cfg.Logger.Warn("keel: partition stopped", "partition", p.tp.String(), "err", d.err)
	}
	f.wakePollLocked()
}

// partitionErrorLocked handles a partition-level error code from a fetch.
func (f *Of[R]) partitionErrorLocked(p *partition[R], code int16, addr string) {
	info := errs.Lookup(code)
	switch {
	case code == errs.CodeOffsetOutOfRange:
		switch f.cfg.Reset {
		case ResetEarliest, ResetLatest:
			to := OffsetLatest
			if f.cfg.Reset == ResetEarliest {
				to = OffsetEarliest
			}
			f.cfg.Logger.Info("keel: fetch offset out of range; resetting", "partition", p.tp.String(), "offset", p.fetchOffset, "reset", f.cfg.Reset.String())
			p.gen++
			p.state, p.resolveTo, p.byTime = stResolve, to, false
			f.positionResetLocked(p, Offset{At: p.fetchOffset, Epoch: p.fetchEpoch}, to, &errs.Error{Code: code, Name: info.Name, Broker: addr,
				Detail: fmt.Sprintf("offset %d of %v is out of range; reset policy %v", p.fetchOffset, p.tp, f.cfg.Reset)})
		default:
			f.stopLocked(p, &errs.Error{Code: code, Name: info.Name, Broker: addr,
				Detail: fmt.Sprintf("offset %d of %v is out of range and the reset policy is none", p.fetchOffset, p.tp)})
		}
	case code == errs.CodeCorruptMessage: // from the broker: never skip data
		f.stopLocked(p, &errs.Error{Code: code, Name: info.Name, Broker: addr,
			Detail: fmt.Sprintf("broker reports corrupt data at offset %d of %v", p.fetchOffset, p.tp)})
	case info.Metadata:
		f.cfg.Logger.Debug("keel: fetch needs fresh metadata", "partition", p.tp.String(), "broker", addr, "error", info.Name)
		f.backoffLocked(p, true)
		f.meta.RefreshSoon()
	case info.Retriable:
		f.cfg.Logger.Debug("keel: fetch will be retried", "partition", p.tp.String(), "broker", addr, "error", info.Name)
		f.backoffLocked(p, false)
	default:
		f.stopLocked(p, &errs.Error{Code: code, Name: info.Name, Broker: addr, Retriable: false,
			Detail: fmt.Sprintf("fetching %v at offset %d", p.tp, p.fetchOffset)})
	}
}
