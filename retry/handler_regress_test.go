package retry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-go/keel"
)

// dueIn is a record of orders.retry.1 written by group "g", due in d.
func dueIn(d time.Duration) *keel.Message {
	return &keel.Message{Topic: "orders.retry.1", Partition: 0, Offset: 0, Key: []byte("k"), Value: []byte("v"), Headers: []keel.Header{
		header(HeaderAttempt, "2"), header(HeaderRetryAfter, formatMillis(time.Now().Add(d))), header(HeaderGroup, "g"),
		header(HeaderOriginalTopic, "orders"), header(HeaderOriginalPartition, "1"), header(HeaderOriginalOffset, "9")}}
}

// Policy.Close while its GroupConsumer still runs (Close called in the
// wrong order, or the policy shut down on its own): a record waiting out
// its retry-after must not come back as an error the worker counts as a
// handler failure — OnHandlerError would stop the partition, or with
// SkipMessage mark the record processed and lose it. It is held,
// unprocessed, until the consumer closes or the partition moves.
func TestPolicyCloseBeforeConsumerHoldsWaitingRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := testPolicy(t, &fakeSender{}, Tiers(time.Minute), MaxAttempts(2))
		g := newFakeGroup()
		called := false
		h := wrap(p, g, func(context.Context, *keel.Message) error { called = true; return nil })
		done := make(chan error, 1)
		go func() { done <- h.Handle(t.Context(), dueIn(time.Minute)) }()
		time.Sleep(time.Second)
		p.Close(context.Background())
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("the handler returned %v while its consumer still runs: the worker would count the record as failed (or skip it)", err)
		default:
		}
		// The consumer's Close begins: now the record is given up.
		close(g.stopping)
		if err := <-done; !errors.Is(err, keel.ErrConsumerClosed) {
			t.Fatalf("after the consumer's Close: err %v", err)
		}
		if called {
			t.Fatal("the handler ran although the record was not due")
		}
		if g.isPaused(keel.TopicPartition{Topic: "orders.retry.1"}) {
			t.Fatal("partition left paused")
		}

		// A revoke ends the hold too, with its cause.
		g2 := newFakeGroup()
		ctx, cancel := context.WithCancelCause(t.Context())
		go func() {
			done <- wrap(p, g2, func(context.Context, *keel.Message) error { return nil }).Handle(ctx, dueIn(time.Minute))
		}()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("returned %v with the policy closed and the consumer running", err)
		default:
		}
		cancel(keel.ErrRevoked)
		if err := <-done; !errors.Is(err, keel.ErrRevoked) {
			t.Fatalf("after a revoke: err %v", err)
		}
	})
}

// The same for the backoff after a failed write (the producer is closed
// with the policy, so every write fails from then on).
func TestPolicyCloseBeforeConsumerHoldsUnwrittenRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := testPolicy(t, &fakeSender{failures: 1000})
		g := newFakeGroup()
		h := wrap(p, g, func(context.Context, *keel.Message) error { return errors.New("db down") })
		done := make(chan error, 1)
		go func() { done <- h.Handle(t.Context(), source(1)) }()
		time.Sleep(time.Second)
		p.Close(context.Background())
		time.Sleep(time.Minute)
		select {
		case err := <-done:
			t.Fatalf("the handler returned %v while its consumer still runs", err)
		default:
		}
		close(g.stopping)
		if err := <-done; !errors.Is(err, keel.ErrConsumerClosed) {
			t.Fatalf("after the consumer's Close: err %v", err)
		}
	})
}

// A handler that panics on a record is a failed attempt, not a crash of
// the whole process (which would restart on the same uncommitted record
// and crash again, for ever): the record moves through the retries to the
// dead-letter topic like any other failure, with the panic in its error.
func TestHandlerPanicIsAFailedAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		p := testPolicy(t, fs)
		var nilMap map[string]int
		h := wrap(p, newFakeGroup(), func(context.Context, *keel.Message) error {
			nilMap["x"]++ // a bug that only this record's contents reach
			return nil
		})
		if err := h.Handle(t.Context(), source(4)); err != nil {
			t.Fatal(err)
		}
		sent := fs.messages()
		if len(sent) != 1 || sent[0].Topic != "orders.retry.1" {
			t.Fatalf("sent %v", sent)
		}
		info := mustInfo(t, sent[0])
		if !strings.Contains(info.LastError, "panic") || !strings.Contains(info.LastError, "nil map") {
			t.Fatalf("error header %q does not tell of the panic", info.LastError)
		}

		// PermanentIf can send panics straight to the dead-letter topic.
		fs2 := &fakeSender{}
		p2 := testPolicy(t, fs2, PermanentIf(func(err error) bool { return errors.Is(err, ErrHandlerPanicked) }))
		h2 := wrap(p2, nil, func(context.Context, *keel.Message) error { panic("unreachable state") })
		if err := h2.Handle(t.Context(), source(5)); err != nil {
			t.Fatal(err)
		}
		if sent := fs2.messages(); len(sent) != 1 || sent[0].Topic != "orders.dlt" {
			t.Fatalf("sent %v", sent)
		}
	})
}

// A panic caused by the revoke (the handler's ctx was cancelled) is, like
// an error then, not a failure: the record stays for its next owner.
func TestHandlerPanicOnRevokeIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		ctx, cancel := context.WithCancelCause(t.Context())
		h := wrap(testPolicy(t, fs), nil, func(ctx context.Context, _ *keel.Message) error {
			cancel(keel.ErrRevoked)
			panic("connection used after its context ended")
		})
		if err := h.Handle(ctx, source(1)); !errors.Is(err, keel.ErrRevoked) {
			t.Fatalf("err = %v", err)
		}
		if len(fs.messages()) != 0 {
			t.Fatal("wrote a record for a revoked handler")
		}
	})
}

// A hook that panics must not crash the process after the copy was
// acknowledged: the record would be handled again on restart and copied
// again, for ever. The record is still done with.
func TestHookPanicDoesNotUndoTheCopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		p := testPolicy(t, fs,
			OnRetry(func(context.Context, Retried) { panic("hook bug") }),
			OnDeadLetter(func(context.Context, DeadLetter) { panic("hook bug") }))
		for _, err := range []error{errors.New("retriable"), Permanent(errors.New("permanent"))} {
			h := wrap(p, nil, func(context.Context, *keel.Message) error { return err })
			if got := h.Handle(t.Context(), source(1)); got != nil {
				t.Fatalf("%v: Handle returned %v", err, got)
			}
		}
		if n := len(fs.messages()); n != 2 {
			t.Fatalf("%d records written, want 2", n)
		}

		// Blocking mode calls OnRetry before it waits in place.
		calls := 0
		pb := testPolicy(t, &fakeSender{}, Blocking(), OnRetry(func(context.Context, Retried) { panic("hook bug") }))
		h := wrap(pb, nil, func(context.Context, *keel.Message) error {
			if calls++; calls == 1 {
				return errors.New("once")
			}
			return nil
		})
		if err := h.Handle(t.Context(), source(2)); err != nil || calls != 2 {
			t.Fatalf("blocking: err %v after %d calls", err, calls)
		}
	})
}
