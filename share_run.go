package keel

import (
	"context"
	"errors"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/share"
	"github.com/keel-go/keel/internal/wait"
)

// PermanentError marks a handler error that processing the record again
// cannot fix (it does not parse, it refers to something that does not
// exist). A ShareConsumer rejects such a record: it is never delivered
// again. Make one with Permanent.
type PermanentError struct{ Err error }

// Permanent wraps err to say that retrying cannot help. In a
// ShareConsumer's Run, a handler returning it (or an error wrapping it)
// rejects its record instead of releasing it for another delivery.
// Permanent(nil) is nil.
//
//	if err := json.Unmarshal(m.Value, &order); err != nil {
//		return keel.Permanent(fmt.Errorf("order %s does not parse: %w", m.Key, err))
//	}
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Error returns the wrapped error's text.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent reports true: retrying cannot help.
func (e *PermanentError) Permanent() bool { return true }

// IsPermanent reports whether err, or an error it wraps, says retrying
// cannot help: made with Permanent, or any error with a method
// Permanent() bool that returns true (so other packages' markers count
// too).
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// shareAckFor is how Run acknowledges a record its handler returned err
// for: nil accepts, a permanent error rejects, any other error (a panic
// included) releases it for another delivery.
func shareAckFor(err error) AckType {
	switch {
	case err == nil:
		return AckAccept
	case IsPermanent(err):
		return AckReject
	default:
		return AckRelease
	}
}

// runStopWaitShare bounds how long Run, once its ctx ended, waits for
// its handlers (whose ctx ends with it) to return.
const runStopWaitShare = 3 * time.Second

// Run processes records with h, ShareConcurrency handlers at a time, and
// acknowledges each by h's result: nil accepts the record; an error made
// with Permanent (see IsPermanent) rejects it, so it is never delivered
// again; any other error, or a panic, releases it, so that it is
// delivered again (to any member) with Message.DeliveryCount one higher,
// until the broker's delivery limit archives it. While a handler runs,
// the lock of its record is renewed (KIP-1222), so a slow handler keeps
// its record instead of losing it to another member.
//
// Run returns nil after Close, ctx's error when ctx ended (the handlers'
// ctx ends with it: records they give up are released), or the member's
// error when it failed for good (unauthorized, a broker without share
// groups, a group id taken by a consumer group). It runs once per
// consumer; after it returns the member stays in the group, fetching
// nothing, until Close.
func (s *ShareConsumer) Run(ctx context.Context, h Handler) error {
	if ctx == nil {
		return errs.NilContext("ShareConsumer.Run")
	}
	if h == nil {
		return &ConfigError{Option: "Run", Problem: "nil handler", Fix: "pass a Handler or HandlerFunc"}
	}
	s.mu.Lock()
	if s.ranOnce {
		s.mu.Unlock()
		return errors.New("keel: Run was already called on this share consumer; it runs once — Close it and make a new one")
	}
	s.ranOnce = true
	s.mu.Unlock()
	m, err := s.start("Run")
	if err != nil {
		return err
	}
	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.mu.Lock()
	if s.closed { // Close came between start and here
		s.mu.Unlock()
		return nil
	}
	s.cancelHandlers = cancel
	for range s.cfg.concurrency {
		s.workers.Add(1)
		go s.work(ctx, hctx, m, h)
	}
	s.mu.Unlock()

	workersDone := make(chan struct{})
	go func() { s.workers.Wait(); close(workersDone) }()
	select {
	case <-workersDone:
		// Take failed for every worker: the member's fatal error, or
		// ctx, or Close.
	case <-ctx.Done():
	case <-s.stopping:
	}
	select {
	case <-s.stopping:
		// Close stops the handlers gracefully itself; Run returns once
		// they did.
		<-workersDone
		return nil
	default:
	}
	// ctx ended or the member failed: handlers' ctx ends now; wait a
	// little for them, and give back what was fetched for them.
	cause := m.Err()
	if cause == nil {
		cause = context.Cause(ctx)
	}
	cancel(cause)
	if wait.Until(context.Background(), workersDone, runStopWaitShare) {
		s.client.logger.Warn("keel: share handlers did not return after Run's ctx ended", "group", s.group)
	}
	m.StopFetching()
	m.ReleaseUntaken()
	if err := m.Err(); err != nil {
		return err
	}
	return ctx.Err()
}

// work is one of Run's handler slots: it takes a record, runs the
// handler and acknowledges by the result, until there is nothing more to
// take.
func (s *ShareConsumer) work(ctx, hctx context.Context, m *share.Consumer, h Handler) {
	defer s.workers.Done()
	var msg Message
	for {
		recs, err := m.Take(ctx, 1)
		if err != nil {
			return
		}
		r := &recs[0]
		msg = Message{}
		fillShareMessage(&msg, r)
		err = callHandler(h, hctx, &msg)
		typ := shareAckFor(err)
		switch typ {
		case AckRelease:
			if hctx.Err() == nil {
				s.client.logger.Warn("keel: share handler failed; releasing the record for another delivery", "group", s.group, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "delivery", r.DeliveryCount, "err", err)
			}
		case AckReject:
			s.client.logger.Warn("keel: share handler failed for good; rejecting the record", "group", s.group, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
		}
		if err := m.Ack(r.TP, r.Offset, share.AckType(typ)); err != nil {
			s.client.logger.Info("keel: a processed share record could not be acknowledged (its acquisition was lost; it is delivered again)", "group", s.group, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
		}
	}
}
