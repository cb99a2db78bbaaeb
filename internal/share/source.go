package share

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/wait"
)

// source runs this member's share session with one broker, the leader of
// some of its partitions, on one goroutine: a session's requests must go
// one at a time, each with the epoch the previous answer moved to.
type source struct {
	c    *Consumer
	id   int32 // broker node id
	wake chan struct{}
	done chan struct{}
	// ackVersion is the ShareAcknowledge version the broker speaks (-1
	// until connected): renewals need v2.
	ackVersion atomic.Int32

	// Guarded by c.mu.
	want     map[TP][16]byte // partitions to fetch here, with topic ids
	pending  map[TP][]pendingAck
	nPending int
	// pendingSince is when the oldest pending acknowledgement was made.
	pendingSince time.Time
	flushes      []*flushWaiter
	gen          uint64 // session generation; bumped whenever a session ends
	nHeld        int
	nextRenew    time.Time
	// resetWanted: the member was fenced, so the broker dropped this
	// session; start a new one before anything else.
	resetWanted bool
	closing     bool
	closeCtx    context.Context
	closeErr    error

	// Owned by run.
	epoch     int32           // next request's ShareSessionEpoch
	inSession map[TP][16]byte // partitions the broker's session has
	failures  int
	retryAt   time.Time
}

// flushWaiter is a Flush waiting for one source to send what was pending.
type flushWaiter struct {
	done chan struct{}
	errs []error
}

func newSource(c *Consumer, id int32) *source {
	s := &source{c: c, id: id, wake: make(chan struct{}, 1), done: make(chan struct{}), pending: make(map[TP][]pendingAck)}
	s.ackVersion.Store(-1)
	return s
}

func (s *source) wakeLocked() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// canRenew reports whether the broker can renew locks (or whether that
// is still unknown, before the first connection).
func (s *source) canRenew() bool {
	v := s.ackVersion.Load()
	return v < 0 || v >= 2
}

// enqueueLocked queues an acknowledgement for the next request.
func (s *source) enqueueLocked(tp TP, a pendingAck) {
	first := s.nPending == 0
	if first {
		s.pendingSince = time.Now()
	}
	s.pending[tp] = append(s.pending[tp], a)
	s.nPending++
	// The loop needs waking for the first one (it may have to send it
	// after the linger) and for those that go at once; the others wait
	// with it. Waking it for every acknowledgement cost a context switch
	// and a lock handover per record.
	if first || a.typ == Renew || a.late {
		s.wakeLocked()
	}
}

// ackLinger is how long acknowledgements may wait for a fetch to carry
// them: a request per acknowledgement would make the session's one
// request at a time a round trip per record, while an acknowledgement
// left waiting too long lets its record's lock run out. It is kept under
// a tenth of the lock.
const ackLinger = 50 * time.Millisecond

func (s *source) lingerLocked() time.Duration { return min(ackLinger, s.c.LockTimeout()/10) }

// planKind is what the next request does.
type planKind int8

const (
	planFetch planKind = iota // ShareFetch, acknowledgements piggybacked
	planAck                   // ShareAcknowledge alone
	planClose                 // ShareAcknowledge with epoch -1
)

// plan is the next request of a session, decided under c.mu.
type plan struct {
	kind    planKind
	gen     uint64
	epoch   int32
	acks    map[TP][]ackRange
	renew   bool // acks hold renewals (IsRenewAck)
	add     map[TP][16]byte
	forget  map[TP][16]byte
	room    int
	maxWait time.Duration
	flushes []*flushWaiter
	ctx     context.Context
	final   bool // the member is closing: the loop ends after this request
}

func (s *source) run() {
	defer s.c.wg.Done()
	defer close(s.done)
	for {
		p, sleep, exit := s.next()
		if exit {
			return
		}
		if p == nil {
			if !wait.Until(s.c.ctx, s.wake, sleep) && s.c.ctx.Err() != nil {
				s.abandon(s.c.ctx.Err())
				return
			}
			continue
		}
		s.do(p)
		if p.final {
			return
		}
	}
}

// next decides the next request, or how long to sleep before deciding
// again, or that the loop is done.
func (s *source) next() (p *plan, sleep time.Duration, exit bool) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.failStaleLocked()
	if s.resetWanted && !s.closing {
		s.resetWanted = false
		if s.epoch > 0 {
			// Fenced: close the session explicitly, which makes the
			// broker release what it still holds for this member (a
			// broker that dropped the session already answers
			// SHARE_SESSION_NOT_FOUND, which resets it just the same).
			// Replacing it with a new one would not reliably do that.
			return s.takeAcksLocked(planClose, true, nil), 0, false
		}
		s.resetLocked(errors.New("the member was fenced"))
	}
	now := time.Now()
	if s.closing {
		if s.epoch == 0 {
			// No session to close; whatever is pending was for an
			// earlier one.
			s.gen++
			s.failStaleLocked()
			s.finishFlushesLocked()
			return nil, 0, true
		}
		if _, late, _ := s.pendingShapeLocked(); late {
			// Alone first, so as not to spoil the others' (see below).
			p = s.takeAcksLocked(planAck, false, isLate)
			p.ctx = s.closeCtx
			return p, 0, false
		}
		p = s.takeAcksLocked(planClose, true, nil)
		p.ctx, p.final = s.closeCtx, true
		return p, 0, false
	}
	if len(s.flushes) > 0 && (s.nPending == 0 || s.epoch == 0) {
		s.finishFlushesLocked() // nothing to send: nothing to wait for
	}
	if now.Before(s.retryAt) {
		return nil, time.Until(s.retryAt), false
	}
	nextRenew := s.dueRenewalsLocked(now)
	sleep = time.Hour
	if !nextRenew.IsZero() {
		sleep = max(time.Until(nextRenew), time.Millisecond)
	}
	if s.epoch > 0 && s.nPending > 0 {
		// A broker checks a partition's acknowledgements in one request
		// together and refuses them all if one is wrong. Renewals (which
		// a broker may refuse: Kafka 4.3 unless the group enables them)
		// and acknowledgements of records whose lock ran out (perhaps
		// given to another member meanwhile) go alone, so that they can
		// never take the others down with them.
		renew, late, outside := s.pendingShapeLocked()
		switch {
		case renew:
			return s.takeAcksLocked(planAck, false, isRenew), 0, false
		case late:
			return s.takeAcksLocked(planAck, false, isLate), 0, false
		}
		room := c.fetchRoomLocked()
		canFetch := !c.stopping && c.fatal == nil && len(s.want) > 0 && room > 0
		if outside || len(s.flushes) > 0 {
			return s.takeAcksLocked(planAck, false, nil), 0, false
		}
		if !canFetch {
			// A fetch may come soon (room is freeing up as records are
			// acknowledged): give it a moment to carry these.
			fetchLater := !c.stopping && c.fatal == nil && len(s.want) > 0 && c.roomLocked() > 0
			due := s.pendingSince.Add(s.lingerLocked())
			if !fetchLater || !now.Before(due) {
				return s.takeAcksLocked(planAck, false, nil), 0, false
			}
			return nil, min(sleep, time.Until(due)), false
		}
	}
	if room := c.fetchRoomLocked(); !c.stopping && c.fatal == nil && len(s.want) > 0 && room > 0 {
		p = s.takeAcksLocked(planFetch, false, nil)
		p.room = room
		c.reserved += room
		p.add, p.forget = s.sessionChangesLocked()
		p.maxWait = c.cfg.MaxWait
		if s.nHeld > 0 && s.canRenew() {
			// A parked fetch delays the renewals behind it: keep it
			// well inside the lock.
			p.maxWait = min(p.maxWait, c.LockTimeout()/5)
		}
		return p, 0, false
	}
	if s.epoch > 0 && len(s.want) == 0 && s.nHeld == 0 && s.nPending == 0 {
		// Nothing assigned here any more: close the session rather
		// than keep the broker's slot.
		return s.takeAcksLocked(planClose, true, nil), 0, false
	}
	return nil, sleep, false
}

func isRenew(a pendingAck) bool { return a.typ == Renew }
func isLate(a pendingAck) bool  { return a.late && a.typ != Renew }

// pendingShapeLocked says whether the pending acknowledgements hold a
// renewal (which cannot ride on a fetch), or are for a partition the
// fetch would not carry (a ShareFetch listing a partition adds it to the
// session, and the broker would start sending its records).
func (s *source) pendingShapeLocked() (renew, late, outside bool) {
	for tp, as := range s.pending {
		if _, in := s.inSession[tp]; !in {
			outside = true
		} else if _, w := s.want[tp]; !w {
			outside = true
		}
		for _, a := range as {
			switch {
			case a.typ == Renew:
				renew = true
			case a.late:
				late = true
			}
		}
	}
	return renew, late, outside
}

// takeAcksLocked moves the pending acknowledgements that take (nil: all)
// selects into a plan of kind. A closing request drops renewals: closing
// the session releases the records anyway.
func (s *source) takeAcksLocked(kind planKind, closing bool, take func(pendingAck) bool) *plan {
	p := &plan{kind: kind, gen: s.gen, epoch: s.epoch, ctx: s.c.ctx}
	if closing {
		p.epoch = -1
	}
	if s.epoch > 0 && s.nPending > 0 {
		p.acks = make(map[TP][]ackRange, len(s.pending))
		for tp, as := range s.pending {
			var chosen []pendingAck
			if take == nil {
				chosen = as
				delete(s.pending, tp)
			} else {
				kept := as[:0:0]
				for _, a := range as {
					if take(a) {
						chosen = append(chosen, a)
					} else {
						kept = append(kept, a)
					}
				}
				if len(kept) == 0 {
					delete(s.pending, tp)
				} else {
					s.pending[tp] = kept
				}
			}
			s.nPending -= len(chosen)
			var rs []ackRange
			for _, r := range ackRanges(chosen) {
				if closing && r.typ == Renew {
					continue
				}
				if r.typ == Renew {
					p.renew = true
				}
				rs = append(rs, r)
			}
			if len(rs) > 0 {
				p.acks[tp] = rs
			}
		}
	}
	if take == nil {
		// A Flush waits for everything pending when it was called, so
		// it rides only on a request that takes everything.
		p.flushes, s.flushes = s.flushes, nil
	}
	return p
}

// sessionChangesLocked is what a fetch must tell the broker about the
// session's partitions: all of them in a new session, else those added
// and those no longer wanted.
func (s *source) sessionChangesLocked() (add, forget map[TP][16]byte) {
	add = make(map[TP][16]byte)
	for tp, id := range s.want {
		if _, in := s.inSession[tp]; !in || s.epoch == 0 {
			add[tp] = id
		}
	}
	if s.epoch > 0 {
		for tp, id := range s.inSession {
			if _, w := s.want[tp]; !w {
				if forget == nil {
					forget = make(map[TP][16]byte)
				}
				forget[tp] = id
			}
		}
	}
	return add, forget
}

// failStaleLocked fails acknowledgements of records acquired in a session
// that has since ended: the broker already released them.
func (s *source) failStaleLocked() {
	var results []AckResult
	for tp, as := range s.pending {
		kept := as[:0]
		var stale []pendingAck
		for _, a := range as {
			if a.gen == s.gen {
				kept = append(kept, a)
			} else {
				stale = append(stale, a)
			}
		}
		if len(stale) == 0 {
			continue
		}
		s.nPending -= len(stale)
		if len(kept) == 0 {
			delete(s.pending, tp)
		} else {
			s.pending[tp] = kept
		}
		results = append(results, lostResults(tp, ackRanges(stale))...)
	}
	s.reportLocked(results)
}

// lostResults are the results of acknowledgements that were never sent.
func lostResults(tp TP, rs []ackRange) []AckResult {
	var out []AckResult
	for _, t := range []AckType{Accept, Release, Reject} {
		if offs := rangeOffsets(rs, t); len(offs) > 0 {
			out = append(out, AckResult{TP: tp, Type: t, Offsets: offs, Err: ErrAcquisitionLost})
		}
	}
	return out
}

// reportLocked hands results to OnAcked and their failures to the Flush
// calls waiting on this source.
func (s *source) reportLocked(rs []AckResult) {
	if len(rs) == 0 {
		return
	}
	for _, r := range rs {
		if r.Err == nil {
			continue
		}
		err := fmt.Errorf("%v of %d record(s) of %s/%d: %w", r.Type, len(r.Offsets), r.Topic, r.Partition, r.Err)
		for _, w := range s.flushes {
			w.errs = append(w.errs, err)
		}
	}
	s.c.report(rs)
}

func (s *source) finishFlushesLocked() {
	for _, w := range s.flushes {
		close(w.done)
	}
	s.flushes = nil
}

// resetLocked ends the session as far as this member is concerned: the
// next request opens a new one (which makes the broker release anything
// the old one still had), and everything acquired in the old one is
// forgotten.
func (s *source) resetLocked(why error) {
	s.c.log.Info("keel: starting a new share session", "broker", s.id, "why", why)
	s.gen++
	s.epoch = 0
	s.inSession = nil
	s.nextRenew = time.Time{}
	s.c.dropAllHeldLocked(s, "the share session was reset: "+why.Error())
	s.failStaleLocked()
}

// abandon fails what is pending when the member stops without a clean
// close (Close's ctx ended).
func (s *source) abandon(err error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.gen++
	s.failStaleLocked()
	for _, w := range s.flushes {
		w.errs = append(w.errs, err)
	}
	s.finishFlushesLocked()
}

// backoffLocked spaces the requests after a failure.
func (s *source) backoffLocked() {
	s.failures++
	s.retryAt = time.Now().Add(s.c.cfg.Backoff.Delay(s.failures))
}

// connect returns the member's private connection to the broker:
// private, because a parked ShareFetch holds up everything behind it on
// its connection, and because the broker ties the session to the
// connection (closing it releases the session's records).
func (s *source) connect(ctx context.Context) (*conn.Conn, error) {
	addr, ok := s.c.meta.BrokerAddr(s.id)
	if !ok {
		return nil, &errs.Error{Retriable: true, Detail: fmt.Sprintf("broker %d is not in the cluster metadata", s.id), Err: errs.ErrBrokerUnreachable}
	}
	cn, err := s.c.pool.GetOwned(ctx, addr, conn.Fetch, s.c.owner)
	if err != nil {
		return nil, err
	}
	vs := cn.Versions()
	if vs.Version(int16(kmsg.ShareFetch)) < 0 || vs.Version(int16(kmsg.ShareAcknowledge)) < 0 {
		return nil, unsupportedBroker(addr)
	}
	s.ackVersion.Store(int32(vs.Version(int16(kmsg.ShareAcknowledge))))
	return cn, nil
}

// unsupportedBroker is the error of a broker without share groups.
func unsupportedBroker(addr string) error {
	return &errs.Error{
		Broker: addr,
		Detail: "the broker does not offer the share group APIs (KIP-932): share groups need Kafka 4.1 or later with share groups enabled (share.version=1, or group.share.enable=true on 4.0)",
		Err:    errs.ErrUnsupportedBroker,
	}
}

// nextEpoch is the epoch after a successful request: it counts up from 1
// and wraps back to 1, never to 0 (a new session) or -1 (a close).
func nextEpoch(e int32) int32 {
	if e == 1<<31-1 {
		return 1
	}
	return e + 1
}
