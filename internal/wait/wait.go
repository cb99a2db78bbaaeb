// Package wait holds keel's one way to wait: for a duration under a
// context, and for an operation to succeed with exponential backoff under
// a context and an attempt bound. Every retry loop in keel goes through
// it, so that each honours ctx and has a bound by construction instead of
// by a hand-written timer loop getting it right.
package wait

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is exponential with jitter: attempt 1 waits about Min, each later
// attempt twice as long, never more than Max. Jitter of ±20% keeps many
// clients that lost a broker at once from reconnecting in lockstep.
type Backoff struct{ Min, Max time.Duration }

// Delay returns the wait before attempt n (n >= 1).
func (b Backoff) Delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// Sleep waits for d or until ctx ends, whichever is first. It reports
// whether the whole d passed (false: ctx ended).
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Until waits for d, until ctx ends, or until stop is closed (which may be
// nil), whichever is first; it reports whether the whole d passed.
func Until(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

// Retry calls op with attempt 1, 2, ... until op reports done, attempts
// tries have been made (attempts <= 0: no bound but ctx), or ctx ends,
// waiting b.Delay(attempt) between tries. It returns op's last error, or,
// when ctx ended first, ctx's error joined with that last error so the
// caller can say both why it stopped and what kept failing.
//
// op decides what is worth another try: it returns done=true to stop with
// err (nil for success, or an error not worth retrying).
func Retry(ctx context.Context, b Backoff, attempts int, op func(attempt int) (done bool, err error)) error {
	var last error
	for attempt := 1; ; attempt++ {
		done, err := op(attempt)
		if done {
			return err
		}
		last = err
		if attempts > 0 && attempt >= attempts {
			return last
		}
		if !Sleep(ctx, b.Delay(attempt)) {
			return &StoppedError{Ctx: ctx.Err(), Last: last}
		}
	}
}

// StoppedError is Retry's error when ctx ended before op succeeded. It
// matches both ctx's error and the last error op returned.
type StoppedError struct {
	Ctx  error
	Last error
}

func (e *StoppedError) Error() string {
	if e.Last == nil {
		return e.Ctx.Error()
	}
	return e.Ctx.Error() + " (last error: " + e.Last.Error() + ")"
}

// Unwrap returns both causes for errors.Is and errors.As.
func (e *StoppedError) Unwrap() []error {
	if e.Last == nil {
		return []error{e.Ctx}
	}
	return []error{e.Ctx, e.Last}
}
