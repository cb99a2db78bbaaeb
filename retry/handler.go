package retry

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/keel-go/keel"
)

// DeadLetter describes a record just written to a dead-letter topic.
type DeadLetter struct {
	// Message is the record as consumed (from the source or a retry
	// topic).
	Message *keel.Message
	// Info is the record's retry state; Info.Attempt is the attempt that
	// failed last.
	Info Info
	// Where the dead letter was written.
	Topic     string
	Partition int32
	Offset    int64
	// Reason is ReasonPermanent or ReasonExhausted.
	Reason string
	// Err is the error of the last attempt.
	Err error
}

// Retried describes a failed record scheduled for another attempt.
type Retried struct {
	// Message is the record as consumed.
	Message *keel.Message
	// Attempt is the attempt that failed; the next is Attempt+1.
	Attempt int
	Err     error
	// Tier is the delay tier (from 1) and RetryAfter the earliest time
	// of the next attempt.
	Tier       int
	RetryAfter time.Time
	// Where the record was written; empty in blocking mode, where it
	// waits in place.
	Topic     string
	Partition int32
	Offset    int64
}

// control is the part of *keel.GroupConsumer the handler uses.
type control interface {
	Pause(tps ...keel.TopicPartition)
	Resume(tps ...keel.TopicPartition)
	Stopping() <-chan struct{}
}

// errGaveUp is returned for a record whose wait was abandoned because the
// consumer or the policy is closing: the record stays unprocessed. It
// matches keel.ErrConsumerClosed, which tells the GroupConsumer that
// nothing failed.
var errGaveUp = fmt.Errorf("retry: stopped waiting because the consumer is closing; the record stays unprocessed: %w", keel.ErrConsumerClosed)

// deliveryWaitCap bounds the wait for a delivery report. The producer
// reports every record within its delivery timeout, so this only guards
// against a bug turning into a hang.
const deliveryWaitCap = 10 * time.Minute

// Wrap returns h with the policy applied; give it to g.Run, where g
// subscribes to p.Topics() with p.GroupConsumerOptions(). g is used to pause a partition while its
// record waits and to give waits up when g.Close begins; it may be nil
// (for a handler run some other way), in which case nothing is paused.
//
// The wrapped handler returns nil — so the record's offset is committed —
// only once the record was handled, or written to a retry or dead-letter
// topic and acknowledged. It returns an error only when its ctx ended
// (revoke, loss, close) or it gave a wait up on Close; the record then
// stays uncommitted and its next owner handles it. Records of topics the
// policy does not know go to h unchanged.
func (p *Policy) Wrap(g *keel.GroupConsumer, h keel.Handler) keel.Handler {
	hd := &handler{p: p, h: h}
	if g != nil {
		hd.g = g
		// With keel.Parallel a waiting record holds only its own key:
		// the other keys of its partition go on, so the partition must
		// not be paused (the lane's flow control bounds what is fetched).
		hd.keyOnly = g.Order() != keel.PartitionOrder
	}
	return hd
}

type handler struct {
	p       *Policy
	g       control // nil: nothing to pause
	keyOnly bool    // a waiting record holds its key, not its partition
	h       keel.Handler
}

// Handle applies the policy to one record.
func (hd *handler) Handle(ctx context.Context, m *keel.Message) error {
	p := hd.p
	r, known := p.roles[m.Topic]
	if !known {
		return hd.h.Handle(ctx, m)
	}
	state := Info{
		Attempt: 1, OriginalTopic: m.Topic, OriginalPartition: m.Partition,
		OriginalOffset: m.Offset, OriginalTimestamp: m.Timestamp,
	}
	info, tagged, herr := InfoOf(m)
	if herr != nil {
		p.logger.Warn("retry: record has malformed retry headers; using what could be read", "err", herr)
	}
	state.ReplayedFrom = info.ReplayedFrom
	if r.tier > 0 {
		if !tagged {
			p.logger.Warn("retry: record in a retry topic has no retry headers; handling it as a first attempt",
				"topic", m.Topic, "partition", m.Partition, "offset", m.Offset)
		} else {
			if info.Group != "" && info.Group != p.group {
				return nil // another group's retry: that group handles it
			}
			state = info
		}
		// Never before its retry-after, but never longer than the tier's
		// delay from now: a time further away can only come from a
		// producer whose clock runs ahead of ours.
		until := info.RetryAfter
		if limit := time.Now().Add(p.delays[r.tier-1]); until.After(limit) {
			until = limit
		}
		if err := hd.wait(ctx, m, until); err != nil {
			return err
		}
	}
	return hd.attempt(ctx, m, r, state)
}

// attempt calls the handler and, when it fails, moves the record on. A
// write to a retry or dead-letter topic that fails is not the end: the
// record is not marked, so after a backoff it is handled again from the
// start, as a redelivery would.
func (hd *handler) attempt(ctx context.Context, m *keel.Message, r role, state Info) error {
	p := hd.p
	for failedWrites := 0; ; {
		err := hd.call(ctx, m)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			// Stopped by a revoke, loss or close: leave the record to
			// its next owner rather than record a failure that may only
			// be the cancellation.
			return fmt.Errorf("retry: handler stopped: %w", context.Cause(ctx))
		}
		now := time.Now()
		tier, delay, deadWhy := p.next(state.Attempt, err)
		f := failure{prev: state, attempt: state.Attempt, at: now, err: err, group: p.group, deadWhy: deadWhy, consumed: m}
		if p.cfg.blocking && deadWhy == "" {
			f.retryAt = now.Add(delay)
			if p.cfg.onRetry != nil {
				hd.hook(m, func() {
					p.cfg.onRetry(ctx, Retried{Message: m, Attempt: state.Attempt, Err: err, Tier: tier, RetryAfter: f.retryAt, Partition: -1, Offset: -1})
				})
			}
			if werr := hd.wait(ctx, m, f.retryAt); werr != nil {
				return werr
			}
			if state.FirstFailure.IsZero() {
				state.FirstFailure = now
			}
			state.LastError = errorText(err)
			state.Attempt++
			continue
		}
		out := &keel.Message{Key: m.Key, Value: m.Value}
		if deadWhy != "" {
			out.Topic = p.cfg.dltName(r.source)
		} else {
			out.Topic = p.cfg.retryName(r.source, tier)
			f.retryAt = now.Add(delay)
		}
		out.Headers = f.outHeaders()
		d, perr := p.deliver(ctx, out)
		if perr == nil {
			hd.report(ctx, m, &f, tier, d)
			return nil
		}
		failedWrites++
		p.logger.Warn("retry: cannot write a failed record on; it stays unprocessed and is handled again after a backoff",
			"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "to", out.Topic, "attempt", state.Attempt, "writes_failed", failedWrites, "err", perr)
		if ctx.Err() != nil {
			return fmt.Errorf("retry: writing to %s: %w", out.Topic, context.Cause(ctx))
		}
		if werr := hd.sleep(ctx, p.backoff(failedWrites)); werr != nil {
			return werr
		}
	}
}

// call runs the user's handler on m. A panic is turned into a failed
// attempt (matching ErrHandlerPanicked): left to crash the process, it
// would come back on the same uncommitted record after every restart, and
// that record would never reach the dead-letter topic.
func (hd *handler) call(ctx context.Context, m *keel.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			hd.p.logger.Error("retry: handler panicked; counted as a failed attempt", "topic", m.Topic, "partition", m.Partition,
				"offset", m.Offset, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrHandlerPanicked, r)
		}
	}()
	return hd.h.Handle(ctx, m)
}

// hook runs one of the user's hooks for m. A hook that panics is logged
// and the record goes on as if it had returned: after a copy was
// acknowledged, crashing would have the record handled and copied again
// after every restart.
func (hd *handler) hook(m *keel.Message, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			hd.p.logger.Error("retry: OnRetry or OnDeadLetter hook panicked; the record goes on all the same",
				"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	fn()
}

// report calls the hooks for a record written to a retry or dead-letter
// topic.
func (hd *handler) report(ctx context.Context, m *keel.Message, f *failure, tier int, d keel.Delivery) {
	p := hd.p
	if f.deadWhy != "" {
		p.logger.Info("retry: record dead-lettered", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset,
			"dead_letter_topic", d.Message.Topic, "reason", f.deadWhy, "attempts", f.attempt, "err", f.err)
		if p.cfg.onDead != nil {
			info := f.prev
			info.Attempt = f.attempt
			info.DeadLetterReason = f.deadWhy
			info.LastError = errorText(f.err)
			hd.hook(m, func() {
				p.cfg.onDead(ctx, DeadLetter{Message: m, Info: info, Topic: d.Message.Topic, Partition: d.Partition, Offset: d.Offset, Reason: f.deadWhy, Err: f.err})
			})
		}
		return
	}
	p.logger.Debug("retry: record scheduled for another attempt", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset,
		"retry_topic", d.Message.Topic, "attempt", f.attempt+1, "retry_after", f.retryAt)
	if p.cfg.onRetry != nil {
		hd.hook(m, func() {
			p.cfg.onRetry(ctx, Retried{Message: m, Attempt: f.attempt, Err: f.err, Tier: tier, RetryAfter: f.retryAt,
				Topic: d.Message.Topic, Partition: d.Partition, Offset: d.Offset})
		})
	}
}

// deliver produces m and waits for its outcome. ctx ending before the
// record was sent removes it (NotWritten); once sent, the outcome is
// awaited whatever ctx does — a revoke must not leave us unsure whether
// the record reached the retry topic, which would mean a duplicate.
func (p *Policy) deliver(ctx context.Context, m *keel.Message) (keel.Delivery, error) {
	ch := make(chan keel.Delivery, 1)
	p.send.Produce(ctx, m, ch)
	t := time.NewTimer(deliveryWaitCap)
	defer t.Stop()
	select {
	case d := <-ch:
		return d, d.Err
	case <-t.C:
		err := fmt.Errorf("retry: no delivery report for a record to %s within %v", m.Topic, deliveryWaitCap)
		return keel.Delivery{Message: m, Partition: -1, Offset: -1, Err: err}, err
	}
}

// backoff is the wait before handling a record again after its n-th
// failed write.
func (p *Policy) backoff(n int) time.Duration {
	d := p.cfg.backoffMin
	for i := 1; i < n && d < p.cfg.backoffMax; i++ {
		d *= 2
	}
	return min(d, p.cfg.backoffMax)
}

// wait holds the record until `until`, its partition paused so that
// fetched records do not pile up meanwhile — unless the consumer runs with
// keel.Parallel, where the record holds only its key and the others go on. It gives up when ctx ends or
// the consumer or policy closes. Heartbeats are unaffected: they run on
// the consumer's own goroutine.
func (hd *handler) wait(ctx context.Context, m *keel.Message, until time.Time) error {
	d := time.Until(until)
	if d <= 0 {
		return nil
	}
	hd.p.logger.Debug("retry: record waits until its retry-after", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "until", until)
	if hd.g != nil && !hd.keyOnly {
		tp := keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}
		hd.g.Pause(tp)
		defer hd.g.Resume(tp)
	}
	return hd.sleep(ctx, d)
}

// sleep waits d unless ctx ends or the consumer or policy closes.
func (hd *handler) sleep(ctx context.Context, d time.Duration) error {
	var stopping <-chan struct{}
	if hd.g != nil {
		stopping = hd.g.Stopping()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("retry: stopped waiting: %w", context.Cause(ctx))
	case <-stopping:
		return errGaveUp
	case <-hd.p.closing:
		if hd.g == nil {
			return errGaveUp
		}
		return hd.holdUntilStopped(ctx, stopping)
	}
}

// holdUntilStopped keeps a record unprocessed after the policy closed
// while its consumer still runs (Policy.Close before GroupConsumer.Close).
// Returning errGaveUp now would not do: the consumer is not stopping, so
// it would count the record as a handler failure — OnHandlerError's
// StopPartition, or with SkipMessage a record marked processed and lost.
// The record waits instead until the consumer closes or the partition
// moves, and its next owner handles it.
func (hd *handler) holdUntilStopped(ctx context.Context, stopping <-chan struct{}) error {
	hd.p.logger.Warn("retry: the policy was closed while its consumer still runs; the record is held unprocessed until the consumer closes (close the GroupConsumer first, then the Policy)")
	select {
	case <-ctx.Done():
		return fmt.Errorf("retry: stopped waiting: %w", context.Cause(ctx))
	case <-stopping:
		return errGaveUp
	}
}
