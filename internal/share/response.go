package share

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
)

// failed handles a request that got no answer. Whether the broker acted
// on it is unknown, and so is the session's epoch; a lost connection ends
// the session on the broker anyway (it releases the session's records),
// so a new session starts. The acknowledgements it carried are reported
// failed: some may have been applied, but none is known to have been.
func (s *source) failed(p *plan, err error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.returnRoomLocked(p.room)
	if c.ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		c.log.Info("keel: share request failed", "broker", s.id, "err", err)
	}
	s.reportLocked(s.results(p, func(TP) error { return err }))
	s.renewalsDoneLocked(p, func(TP) bool { return false }, time.Time{})
	s.failFlushes(p, err)
	s.resetLocked(err)
	if p.final {
		s.closeErr = fmt.Errorf("closing the share session with broker %d: %w", s.id, err)
		return
	}
	s.backoffLocked()
	if !errors.Is(err, errs.ErrClosed) {
		c.meta.RefreshSoon() // the broker may be gone, the leaders moved
	}
}

// failFlushes ends the Flush calls p carried, with err.
func (s *source) failFlushes(p *plan, err error) {
	for _, w := range p.flushes {
		w.errs = append(w.errs, err)
		close(w.done)
	}
	p.flushes = nil
}

// results are the AckResults of p's acknowledgements, with the error of
// each partition (nil: applied); gaps and renewals are not reported.
func (s *source) results(p *plan, errOf func(TP) error) []AckResult {
	var out []AckResult
	for tp, rs := range p.acks {
		err := errOf(tp)
		for _, t := range []AckType{Accept, Release, Reject} {
			if offs := rangeOffsets(rs, t); len(offs) > 0 {
				out = append(out, AckResult{TP: tp, Type: t, Offsets: offs, Err: err})
			}
		}
	}
	return out
}

// renewalsDoneLocked applies the answers to p's renewals.
func (s *source) renewalsDoneLocked(p *plan, ok func(TP) bool, sent time.Time) {
	if !p.renew {
		return
	}
	for tp, rs := range p.acks {
		if offs := rangeOffsets(rs, Renew); len(offs) > 0 {
			good := ok(tp)
			if !good {
				s.c.log.Warn("keel: the broker did not renew share record locks; they go to other members when the locks run out (Kafka 4.3+ needs the group config share.renew.acknowledge.enable=true)", "broker", s.id, "topic", tp.Topic, "partition", tp.Partition, "records", len(offs))
			}
			s.c.renewedLocked(s, tp, offs, good, sent)
		}
	}
}

// topLevel handles a top-level error code of a ShareFetch or
// ShareAcknowledge answer: the request did nothing. It reports whether
// there was one.
func (s *source) topLevel(p *plan, code int16, msg *string, addr string) bool {
	if code == errs.CodeNone {
		return false
	}
	c := s.c
	e := errs.FromCode(code, addr, deref(msg)).(*errs.Error)
	e.Detail = fmt.Sprintf("share session of group %q with broker %d", c.cfg.Group, s.id)
	switch code {
	case errs.CodeGroupAuthorizationFailed, errs.CodeTopicAuthorizationFailed, errs.CodeUnsupportedVersion:
		c.setFatal(e)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.returnRoomLocked(p.room)
	s.reportLocked(s.results(p, func(TP) error { return e }))
	s.renewalsDoneLocked(p, func(TP) bool { return false }, time.Time{})
	s.failFlushes(p, e)
	// SHARE_SESSION_NOT_FOUND and INVALID_SHARE_SESSION_EPOCH say the
	// session is gone or out of step; for anything else its state is
	// not known either. A new session is the only safe next step.
	s.resetLocked(e)
	if p.final {
		if code != errs.CodeShareSessionNotFound {
			s.closeErr = e
		}
		return true
	}
	if code != errs.CodeShareSessionNotFound && code != errs.CodeInvalidShareSessionEpoch {
		s.backoffLocked()
	}
	return true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// partErr is the error of one partition's acknowledgements.
func partErr(code int16, msg *string, addr string, tp TP) error {
	if code == errs.CodeNone {
		return nil
	}
	e := errs.FromCode(code, addr, deref(msg)).(*errs.Error)
	e.Detail = fmt.Sprintf("acknowledging records of %s/%d", tp.Topic, tp.Partition)
	return e
}

// omitted is the error of acknowledgements the broker's answer left out.
func omitted(addr string, tp TP) error {
	return &errs.Error{Broker: addr, Detail: fmt.Sprintf("the broker's answer left out the acknowledgements of %s/%d", tp.Topic, tp.Partition), Err: errs.ErrProtocol}
}

// settledLocked ends a request that got an answer without a top-level
// error: the session moved to its next epoch (or closed).
func (s *source) settledLocked(p *plan) {
	s.failures, s.retryAt = 0, time.Time{}
	if p.epoch == -1 {
		// Closed: whatever it still held is released.
		s.gen++
		s.epoch = 0
		s.inSession = nil
		s.c.dropAllHeldLocked(s, "the share session closed")
		s.failStaleLocked()
	} else {
		s.epoch = nextEpoch(p.epoch)
	}
	for _, w := range p.flushes {
		close(w.done)
	}
	p.flushes = nil
}

func (s *source) onAck(p *plan, resp *kmsg.ShareAcknowledgeResponse, sent time.Time, addr string) {
	if s.topLevel(p, resp.ErrorCode, resp.ErrorMessage, addr) {
		return
	}
	s.setLockTimeout(resp.AcquisitionLockTimeoutMillis)
	codes := make(map[TP]error)
	seen := make(map[TP]bool)
	names := s.c.topicNames()
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			tp := TP{names[t.TopicID], rp.Partition}
			seen[tp] = true
			if codes[tp] == nil { // a partition listed twice: its first error stands
				codes[tp] = partErr(rp.ErrorCode, rp.ErrorMessage, addr, tp)
			}
			if rp.ErrorCode != errs.CodeNone {
				s.c.meta.HandleError(rp.ErrorCode)
			}
		}
	}
	errOf := func(tp TP) error {
		if !seen[tp] {
			return omitted(addr, tp)
		}
		return codes[tp]
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.reportLocked(s.results(p, errOf))
	s.renewalsDoneLocked(p, func(tp TP) bool { return errOf(tp) == nil }, sent)
	s.settledLocked(p)
}

func (s *source) onFetch(p *plan, resp *kmsg.ShareFetchResponse, sent time.Time, addr string) {
	if s.topLevel(p, resp.ErrorCode, resp.ErrorMessage, addr) {
		return
	}
	c := s.c
	s.setLockTimeout(resp.AcquisitionLockTimeoutMillis)
	deadline := sent.Add(c.LockTimeout())
	names := c.topicNames()
	ackErrs := make(map[TP]error)
	seen := make(map[TP]bool)
	var got []acquired
	var partProblems int
	for _, t := range resp.Topics {
		name, known := names[t.TopicID]
		for i := range t.Partitions {
			rp := &t.Partitions[i]
			tp := TP{name, rp.Partition}
			seen[tp] = true
			// A broker may list a partition twice (kfake does, once for
			// the acknowledgements' error and once for the fetch's): an
			// acknowledgement error in either entry stands, or a failed
			// acknowledgement would be reported as applied.
			if ackErrs[tp] == nil {
				ackErrs[tp] = partErr(rp.AcknowledgeErrorCode, rp.AcknowledgeErrorMessage, addr, tp)
			}
			if rp.ErrorCode != errs.CodeNone {
				partProblems++
				s.partitionError(tp, rp.ErrorCode, rp.ErrorMessage, addr)
				continue
			}
			if !known || len(rp.AcquiredRecords) == 0 {
				continue
			}
			a := decodeAcquired(tp, rp.Records, rp.AcquiredRecords, c.dec)
			if a.err != nil {
				c.log.Error("keel: share records could not be read; releasing them for redelivery", "topic", tp.Topic, "partition", tp.Partition, "err", a.err)
			}
			got = append(got, a)
		}
	}
	errOf := func(tp TP) error {
		if !seen[tp] {
			return omitted(addr, tp)
		}
		return ackErrs[tp]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.returnRoomLocked(p.room)
	s.reportLocked(s.results(p, errOf))
	s.settledLocked(p)
	for tp := range p.add {
		if s.inSession == nil {
			s.inSession = make(map[TP][16]byte)
		}
		s.inSession[tp] = p.add[tp]
	}
	for tp := range p.forget {
		delete(s.inSession, tp)
	}
	if s.resetWanted {
		return // fenced meanwhile: these records were released with the session
	}
	for _, a := range got {
		c.holdLocked(s, s.gen, a.records, deadline)
		for _, rs := range [][]ackRange{a.gaps, a.unreadable} {
			for _, r := range rs {
				for o := r.first; o <= r.last; o++ {
					s.enqueueLocked(a.tp, pendingAck{offset: o, typ: r.typ, gen: s.gen})
				}
			}
		}
	}
	if c.stopping && len(got) > 0 {
		// Fetched after the member stopped fetching (the request was in
		// flight): nobody will take these; give them back at once.
		c.releaseUntakenLocked()
	}
	if partProblems > 0 && len(got) == 0 {
		s.backoffLocked() // errors answer at once: do not spin on them
	}
}

// setLockTimeout records the broker's acquisition lock duration.
func (s *source) setLockTimeout(ms int32) {
	if ms > 0 {
		s.c.lockTimeout.Store(int64(time.Duration(ms) * time.Millisecond))
	}
}

// partitionError handles a fetch error of one partition: most mean the
// leader moved or metadata is stale, and the next metadata refresh
// reroutes the partition.
func (s *source) partitionError(tp TP, code int16, msg *string, addr string) {
	c := s.c
	e := errs.FromCode(code, addr, deref(msg)).(*errs.Error)
	e.Detail = fmt.Sprintf("share fetch of %s/%d", tp.Topic, tp.Partition)
	switch code {
	case errs.CodeTopicAuthorizationFailed, errs.CodeGroupAuthorizationFailed:
		c.setFatal(e)
		return
	}
	c.log.Info("keel: share fetch partition error", "err", e)
	if !c.meta.HandleError(code) {
		c.meta.RefreshSoon()
	}
}
