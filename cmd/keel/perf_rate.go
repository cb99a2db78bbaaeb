package main

import (
	"context"
	"time"
)

// pacer admits records at a fixed rate by schedule: record i is due at
// start + i/rate. Waiting for a due time computed from the start, rather
// than sleeping 1/rate after each record, keeps errors from adding up — a
// late wake-up is made good by the next records going at once — so the
// average rate is exact however coarse the timer.
//
// Two bounds keep the schedule honest. It sleeps only when it is at least
// pacerSlack ahead, so high rates run in small bursts instead of a timer
// per record. And it never banks more than pacerMaxLag of unused time:
// after a stall (a full buffer, a GC pause) it resumes at the set rate
// instead of firing a burst to catch up.
type pacer struct {
	interval float64 // nanoseconds per record; 0 is unlimited
	start    time.Time
	n        int64 // records admitted since start
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error
}

const (
	pacerSlack  = time.Millisecond
	pacerMaxLag = 100 * time.Millisecond
)

// newPacer paces at rate records per second; rate <= 0 never waits.
func newPacer(rate float64) *pacer {
	p := &pacer{now: time.Now, sleep: pacerSleep}
	if rate > 0 {
		p.interval = 1e9 / rate
	}
	return p
}

// wait blocks until the next record is due, or ctx ends (its error).
func (p *pacer) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.interval == 0 {
		return nil
	}
	now := p.now()
	if p.start.IsZero() {
		p.start = now
	}
	due := p.start.Add(time.Duration(float64(p.n) * p.interval))
	ahead := due.Sub(now)
	if -ahead > pacerMaxLag {
		// Too far behind: restart the schedule from now rather than burst.
		p.start, p.n, ahead = now, 0, 0
	}
	p.n++
	if ahead >= pacerSlack {
		return p.sleep(ctx, ahead)
	}
	return nil
}

// pacerSleep sleeps for d or until ctx ends.
func pacerSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
