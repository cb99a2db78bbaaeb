package share

import "time"

// held is one record this member holds: acquired, not yet acknowledged.
type held struct {
	src      *source
	gen      uint64    // session generation it was acquired in
	deadline time.Time // when its acquisition lock runs out, as far as we know
	out      bool      // handed to the user (Take)
	renewing bool      // a renewal is pending or in flight
	// noRenew: the broker refused to renew its lock; automatic renewal
	// gives up on it rather than asking again and again.
	noRenew bool
}

// holdLocked records recs, acquired by s in session generation gen with
// locks running until deadline, and queues them to be handed out.
func (c *Consumer) holdLocked(s *source, gen uint64, recs []Record, deadline time.Time) {
	if len(recs) == 0 {
		return
	}
	for i := range recs {
		r := &recs[i]
		m := c.held[r.TP]
		if m == nil {
			m = make(map[int64]*held)
			c.held[r.TP] = m
		}
		if _, dup := m[r.Offset]; !dup {
			c.nHeld++
			s.nHeld++
		} else {
			// The record came back in another session (the one it was
			// held in was reset): the old acquisition is gone.
			m[r.Offset].src.nHeld--
			s.nHeld++
		}
		m[r.Offset] = &held{src: s, gen: gen, deadline: deadline}
	}
	c.ready = append(c.ready, recs...)
	if due := deadline.Add(-c.LockTimeout() / 2); s.nextRenew.IsZero() || due.Before(s.nextRenew) {
		s.nextRenew = due
	}
	c.wakeTakersLocked()
}

// dropHeldLocked forgets one held record, freeing room for fetches.
func (c *Consumer) dropHeldLocked(tp TP, offset int64) {
	m := c.held[tp]
	h := m[offset]
	if h == nil {
		return
	}
	delete(m, offset)
	if len(m) == 0 {
		delete(c.held, tp)
	}
	before := c.fetchRoomLocked()
	c.nHeld--
	h.src.nHeld--
	if before == 0 && c.fetchRoomLocked() > 0 {
		c.wakeSourcesLocked() // a fetch can go now
	}
}

// dropAllHeldLocked forgets every record s acquired in a session
// generation before its current one (every held record, when s is nil):
// their session ended, so the broker released them.
func (c *Consumer) dropAllHeldLocked(s *source, why string) {
	n := 0
	for tp, m := range c.held {
		for off, h := range m {
			if s != nil && (h.src != s || h.gen == s.gen) {
				continue
			}
			delete(m, off)
			h.src.nHeld--
			c.nHeld--
			n++
		}
		if len(m) == 0 {
			delete(c.held, tp)
		}
	}
	if n > 0 {
		c.log.Info("keel: share records no longer held; the broker delivers them again", "records", n, "why", why)
		c.wakeSourcesLocked()
	}
}

// room is how many more records fetches may acquire.
func (c *Consumer) roomLocked() int {
	return c.cfg.MaxRecords - c.nHeld - c.reserved
}

// returnRoomLocked gives back the room a fetch reserved; what it did not
// fill may let another session fetch, so they are woken.
func (c *Consumer) returnRoomLocked(n int) {
	if n == 0 {
		return
	}
	c.reserved -= n
	if c.fetchRoomLocked() > 0 {
		c.wakeSourcesLocked()
	}
}

// fetchRoomLocked is how many records the next fetch of a session should
// ask for, 0 for none yet. Each session asks for at most its share of the
// room (the room split between the sessions that have partitions): a
// fetch that parks at a broker with nothing to give holds its room until
// it returns, and must not hold all of it while another broker has
// records. And while records wait to be handed out, a fetch waits until
// half its share is free, so that each brings a batch (refetching as each
// record was acknowledged made a round trip per record).
func (c *Consumer) fetchRoomLocked() int {
	room := c.roomLocked()
	if room <= 0 {
		return 0
	}
	active := 0
	for _, s := range c.sources {
		if len(s.want) > 0 {
			active++
		}
	}
	share := (c.cfg.MaxRecords + max(active, 1) - 1) / max(active, 1)
	ask := min(room, share)
	if waiting := len(c.ready) - c.readyAt; waiting > 0 && ask < (share+1)/2 {
		return 0
	}
	return ask
}

// dueRenewalsLocked queues a renewal for every record s holds whose lock
// runs out within half the lock duration, and that is still waiting to be
// handed out or (with AutoRenew) in the user's hands. It returns when the
// next one falls due (zero: nothing to watch).
func (s *source) dueRenewalsLocked(now time.Time) time.Time {
	c := s.c
	if s.nHeld == 0 || !s.canRenew() {
		s.nextRenew = time.Time{}
		return time.Time{}
	}
	if !s.nextRenew.IsZero() && now.Before(s.nextRenew) {
		return s.nextRenew
	}
	half := c.LockTimeout() / 2
	var next time.Time
	for tp, m := range c.held {
		for off, h := range m {
			if h.src != s || h.gen != s.gen || h.renewing || h.noRenew || (h.out && !c.cfg.AutoRenew) {
				continue
			}
			due := h.deadline.Add(-half)
			if !now.Before(due) {
				h.renewing = true
				s.enqueueLocked(tp, pendingAck{offset: off, typ: Renew, gen: h.gen})
				continue
			}
			if next.IsZero() || due.Before(next) {
				next = due
			}
		}
	}
	s.nextRenew = next
	return next
}

// renewedLocked applies a renewal's answer: the locks of offsets run
// again from when the request was sent.
func (c *Consumer) renewedLocked(s *source, tp TP, offsets []int64, ok bool, sent time.Time) {
	m := c.held[tp]
	for _, off := range offsets {
		h := m[off]
		if h == nil || h.src != s {
			continue
		}
		h.renewing = false
		if ok {
			h.deadline = sent.Add(c.LockTimeout())
		} else {
			h.noRenew = true
		}
	}
	if !ok {
		return
	}
	if due := sent.Add(c.LockTimeout() / 2); s.nextRenew.IsZero() || due.Before(s.nextRenew) {
		s.nextRenew = due
	}
}
