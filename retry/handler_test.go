package retry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-go/keel"
)

// fakeSender records produced messages and answers each after delay,
// failing the first `failures` of them.
type fakeSender struct {
	mu       sync.Mutex
	sent     []*keel.Message
	failures int
	delay    time.Duration
	acked    int
}

func (f *fakeSender) Produce(ctx context.Context, m *keel.Message, ch chan<- keel.Delivery) {
	f.mu.Lock()
	fail := f.failures > 0
	if fail {
		f.failures--
	}
	f.mu.Unlock()
	go func() {
		time.Sleep(f.delay)
		f.mu.Lock()
		defer f.mu.Unlock()
		if fail {
			ch <- keel.Delivery{Message: m, Partition: -1, Offset: -1, Err: &keel.ProduceError{Topic: m.Topic, Partition: -1, Outcome: keel.NotWritten, Err: keel.ErrTopicAuthorization}}
			return
		}
		f.sent = append(f.sent, m)
		f.acked++
		ch <- keel.Delivery{Message: m, Partition: 0, Offset: int64(len(f.sent) - 1)}
	}()
}

func (f *fakeSender) messages() []*keel.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*keel.Message(nil), f.sent...)
}

// fakeGroup records pauses and resumes.
type fakeGroup struct {
	mu       sync.Mutex
	paused   map[keel.TopicPartition]bool
	pauses   int
	stopping chan struct{}
}

func newFakeGroup() *fakeGroup {
	return &fakeGroup{paused: map[keel.TopicPartition]bool{}, stopping: make(chan struct{})}
}

func (g *fakeGroup) Pause(tps ...keel.TopicPartition) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, tp := range tps {
		g.paused[tp] = true
		g.pauses++
	}
}

func (g *fakeGroup) Resume(tps ...keel.TopicPartition) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, tp := range tps {
		delete(g.paused, tp)
	}
}

func (g *fakeGroup) Stopping() <-chan struct{} { return g.stopping }

func (g *fakeGroup) isPaused(tp keel.TopicPartition) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused[tp]
}

type calls struct {
	mu    sync.Mutex
	times []time.Time
	atts  []int
}

func (c *calls) add(m *keel.Message) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.times = append(c.times, time.Now())
	c.atts = append(c.atts, Attempt(m))
	return len(c.times)
}

func (c *calls) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.times)
}

func testPolicy(t *testing.T, send sender, opts ...Option) *Policy {
	t.Helper()
	p := mustPolicy(t, []string{"orders"}, append([]Option{Tiers(s, 5*s), MaxAttempts(4), ProduceBackoff(100*time.Millisecond, time.Second)}, opts...)...)
	p.send = send
	return p
}

func wrap(p *Policy, g control, h keel.HandlerFunc) *handler {
	return &handler{p: p, g: g, h: h}
}

func source(offset int64) *keel.Message {
	return &keel.Message{Topic: "orders", Partition: 1, Offset: offset, Key: []byte("k"), Value: []byte("v"), Timestamp: time.Now(),
		Headers: []keel.Header{{Key: "trace", Value: []byte("t1")}}}
}

// asConsumed turns a produced retry record into the message a consumer
// of its topic would see.
func asConsumed(m *keel.Message, offset int64) *keel.Message {
	return &keel.Message{Topic: m.Topic, Partition: 0, Offset: offset, Key: m.Key, Value: m.Value, Headers: m.Headers, Timestamp: time.Now()}
}

func TestSuccessProducesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		h := wrap(testPolicy(t, fs), newFakeGroup(), func(context.Context, *keel.Message) error { return nil })
		if err := h.Handle(t.Context(), source(1)); err != nil {
			t.Fatal(err)
		}
		if len(fs.messages()) != 0 {
			t.Fatal("produced on success")
		}
	})
}

// A failed record goes to the first retry topic, and the handler returns
// (letting the offset be marked) only after the write is acknowledged.
func TestFailureGoesToRetryAfterAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{delay: 3 * time.Second}
		var retried []Retried
		p := testPolicy(t, fs, OnRetry(func(_ context.Context, r Retried) { retried = append(retried, r) }))
		h := wrap(p, newFakeGroup(), func(context.Context, *keel.Message) error { return errors.New("db down") })
		start := time.Now()
		if err := h.Handle(t.Context(), source(7)); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < 3*time.Second {
			t.Fatalf("returned after %v, before the write was acknowledged", waited)
		}
		sent := fs.messages()
		if len(sent) != 1 || sent[0].Topic != "orders.retry.1" || string(sent[0].Key) != "k" || string(sent[0].Value) != "v" {
			t.Fatalf("sent %+v", sent)
		}
		info, ok, err := InfoOf(sent[0])
		if !ok || err != nil {
			t.Fatal(ok, err)
		}
		if info.Attempt != 2 || info.OriginalTopic != "orders" || info.OriginalPartition != 1 || info.OriginalOffset != 7 ||
			info.LastError != "db down" || info.Group != "g" || !info.RetryAfter.Equal(start.Add(s).Truncate(time.Millisecond)) {
			t.Fatalf("headers say %+v", info)
		}
		if v, _ := headerValue(sent[0].Headers, "trace"); v != "t1" {
			t.Fatal("the record's own header was lost")
		}
		if len(retried) != 1 || retried[0].Attempt != 1 || retried[0].Topic != "orders.retry.1" || retried[0].Tier != 1 {
			t.Fatalf("OnRetry got %+v", retried)
		}
	})
}

// A write that fails leaves the record unprocessed: it is handled again
// after a backoff, and only a successful write (or handling) returns nil.
func TestFailedWriteHandlesAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{failures: 3}
		var c calls
		h := wrap(testPolicy(t, fs), newFakeGroup(), func(_ context.Context, m *keel.Message) error {
			c.add(m)
			return errors.New("fails")
		})
		if err := h.Handle(t.Context(), source(1)); err != nil {
			t.Fatal(err)
		}
		if c.count() != 4 {
			t.Fatalf("handler called %d times, want 4 (1 + 3 after failed writes)", c.count())
		}
		// Backoff doubles: 100ms, 200ms, 400ms.
		if gap := c.times[3].Sub(c.times[2]); gap != 400*time.Millisecond {
			t.Errorf("third backoff %v", gap)
		}
		if n := len(fs.messages()); n != 1 {
			t.Fatalf("%d records written", n)
		}

		// Handled again, the record may now succeed: nothing is written.
		fs2 := &fakeSender{failures: 1}
		n := 0
		h2 := wrap(testPolicy(t, fs2), nil, func(context.Context, *keel.Message) error {
			if n++; n == 1 {
				return errors.New("first")
			}
			return nil
		})
		if err := h2.Handle(t.Context(), source(2)); err != nil || n != 2 || len(fs2.messages()) != 0 {
			t.Fatalf("err %v, calls %d, written %d", err, n, len(fs2.messages()))
		}
	})
}

// A revoke while the write keeps failing ends the loop with the cause;
// the record stays unprocessed.
func TestFailedWriteStopsOnRevoke(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{failures: 1000}
		ctx, cancel := context.WithCancelCause(t.Context())
		h := wrap(testPolicy(t, fs), newFakeGroup(), func(context.Context, *keel.Message) error { return errors.New("fails") })
		time.AfterFunc(2*time.Second, func() { cancel(keel.ErrRevoked) })
		err := h.Handle(ctx, source(1))
		if !errors.Is(err, keel.ErrRevoked) {
			t.Fatalf("err = %v", err)
		}
	})
}

// A record from a retry topic is not handled before its retry-after; its
// partition is paused meanwhile and resumed after.
func TestRetryRecordWaitsPaused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		p := testPolicy(t, fs)
		g := newFakeGroup()
		fail := wrap(p, g, func(context.Context, *keel.Message) error { return errors.New("once") })
		if err := fail.Handle(t.Context(), source(3)); err != nil {
			t.Fatal(err)
		}
		retryAt := mustInfo(t, fs.messages()[0]).RetryAfter
		rec := asConsumed(fs.messages()[0], 0)
		tp := keel.TopicPartition{Topic: "orders.retry.1", Partition: 0}
		var c calls
		ok := wrap(p, g, func(_ context.Context, m *keel.Message) error {
			if g.isPaused(tp) {
				t.Error("partition still paused while the handler runs")
			}
			c.add(m)
			return nil
		})
		done := make(chan error, 1)
		go func() { done <- ok.Handle(t.Context(), rec) }()
		synctest.Wait()
		if !g.isPaused(tp) {
			t.Fatal("not paused while waiting")
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if c.count() != 1 || c.times[0].Before(retryAt) || c.atts[0] != 2 {
			t.Fatalf("handled at %v (retry-after %v), attempt %v", c.times, retryAt, c.atts)
		}
		if g.isPaused(tp) {
			t.Fatal("not resumed")
		}
	})
}

// The wait ends at once on revoke (with the cause) and on Close (with an
// error matching keel.ErrConsumerClosed); the handler is not called.
func TestRetryWaitGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		p := testPolicy(t, fs, Tiers(time.Minute), MaxAttempts(2))
		g := newFakeGroup()
		if err := wrap(p, g, func(context.Context, *keel.Message) error { return errors.New("x") }).Handle(t.Context(), source(1)); err != nil {
			t.Fatal(err)
		}
		rec := asConsumed(fs.messages()[0], 0)
		called := false
		h := wrap(p, g, func(context.Context, *keel.Message) error { called = true; return nil })

		ctx, cancel := context.WithCancelCause(t.Context())
		time.AfterFunc(time.Second, func() { cancel(keel.ErrRevoked) })
		start := time.Now()
		if err := h.Handle(ctx, rec); !errors.Is(err, keel.ErrRevoked) || time.Since(start) != time.Second {
			t.Fatalf("revoke: err %v after %v", err, time.Since(start))
		}
		time.AfterFunc(time.Second, func() { close(g.stopping) })
		if err := h.Handle(t.Context(), rec); !errors.Is(err, keel.ErrConsumerClosed) {
			t.Fatalf("close: err %v", err)
		}
		if called {
			t.Fatal("handler called")
		}
		if g.isPaused(keel.TopicPartition{Topic: "orders.retry.1"}) {
			t.Fatal("left paused")
		}
	})
}

// Far-future retry-afters (a skewed clock) wait no longer than the tier.
func TestRetryAfterCappedAtTier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := testPolicy(t, &fakeSender{})
		rec := &keel.Message{Topic: "orders.retry.2", Headers: []keel.Header{
			header(HeaderAttempt, "3"), header(HeaderRetryAfter, formatMillis(time.Now().Add(time.Hour))), header(HeaderGroup, "g")}}
		start := time.Now()
		var at time.Time
		if err := wrap(p, nil, func(context.Context, *keel.Message) error { at = time.Now(); return nil }).Handle(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
		if at.Sub(start) != 5*time.Second {
			t.Fatalf("waited %v, want the 5s tier", at.Sub(start))
		}
	})
}

func TestOtherGroupsRetriesSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := testPolicy(t, &fakeSender{})
		rec := &keel.Message{Topic: "orders.retry.1", Headers: []keel.Header{
			header(HeaderAttempt, "2"), header(HeaderRetryAfter, formatMillis(time.Now().Add(time.Second))), header(HeaderGroup, "other")}}
		start := time.Now()
		called := false
		if err := wrap(p, nil, func(context.Context, *keel.Message) error { called = true; return nil }).Handle(t.Context(), rec); err != nil || called || time.Since(start) != 0 {
			t.Fatalf("err %v called %v waited %v", err, called, time.Since(start))
		}
	})
}

// Attempts run 1 (source), 2 (tier 1), 3 and 4 (tier 2); the fourth
// failure dead-letters the record with every header and calls the hook.
func TestExhaustedGoesToDeadLetter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		var dead []DeadLetter
		p := testPolicy(t, fs, OnDeadLetter(func(_ context.Context, dl DeadLetter) { dead = append(dead, dl) }))
		var c calls
		h := wrap(p, newFakeGroup(), func(_ context.Context, m *keel.Message) error {
			n := c.add(m)
			return fmt.Errorf("failure %d", n)
		})
		rec := source(11)
		first := time.Now()
		for i := range 4 {
			if err := h.Handle(t.Context(), rec); err != nil {
				t.Fatal(err)
			}
			sent := fs.messages()
			rec = asConsumed(sent[len(sent)-1], int64(i))
		}
		sent := fs.messages()
		topics := []string{}
		for _, m := range sent {
			topics = append(topics, m.Topic)
		}
		if fmt.Sprint(topics) != "[orders.retry.1 orders.retry.2 orders.retry.2 orders.dlt]" {
			t.Fatalf("route %v", topics)
		}
		if fmt.Sprint(c.atts) != "[1 2 3 4]" {
			t.Fatalf("attempts %v", c.atts)
		}
		if c.times[1].Sub(c.times[0]) < s || c.times[2].Sub(c.times[1]) < 5*s || c.times[3].Sub(c.times[2]) < 5*s {
			t.Fatalf("delays not kept: %v", c.times)
		}
		info := mustInfo(t, sent[3])
		if info.Attempt != 4 || info.DeadLetterReason != ReasonExhausted || info.LastError != "failure 4" || info.OriginalOffset != 11 ||
			!info.FirstFailure.Equal(first.Truncate(time.Millisecond)) || !info.RetryAfter.IsZero() {
			t.Fatalf("dead letter headers %+v", info)
		}
		if v, n := headerValue(sent[3].Headers, "trace"); v != "t1" || n != 1 {
			t.Fatal("own header lost or doubled")
		}
		if len(dead) != 1 || dead[0].Reason != ReasonExhausted || dead[0].Topic != "orders.dlt" || dead[0].Info.Attempt != 4 || dead[0].Err.Error() != "failure 4" {
			t.Fatalf("hook got %+v", dead)
		}
	})
}

func TestPermanentGoesToDeadLetterAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		h := wrap(testPolicy(t, fs), nil, func(context.Context, *keel.Message) error { return Permanent(errors.New("unparseable")) })
		if err := h.Handle(t.Context(), source(5)); err != nil {
			t.Fatal(err)
		}
		sent := fs.messages()
		if len(sent) != 1 || sent[0].Topic != "orders.dlt" {
			t.Fatalf("sent %v", sent)
		}
		if info := mustInfo(t, sent[0]); info.Attempt != 1 || info.DeadLetterReason != ReasonPermanent || info.LastError != "unparseable" {
			t.Fatalf("%+v", info)
		}
	})
}

// A handler that returns because its ctx ended is not a failure: nothing
// is written and the cause is returned.
func TestHandlerCancelledIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		ctx, cancel := context.WithCancelCause(t.Context())
		h := wrap(testPolicy(t, fs), nil, func(ctx context.Context, _ *keel.Message) error {
			cancel(keel.ErrLost)
			return errors.New("request aborted")
		})
		if err := h.Handle(ctx, source(1)); !errors.Is(err, keel.ErrLost) {
			t.Fatalf("err = %v", err)
		}
		if len(fs.messages()) != 0 {
			t.Fatal("wrote a record for a cancelled handler")
		}
	})
}

func TestUnknownTopicsPassThrough(t *testing.T) {
	want := errors.New("mine")
	h := wrap(testPolicy(t, &fakeSender{}), nil, func(context.Context, *keel.Message) error { return want })
	if err := h.Handle(context.Background(), &keel.Message{Topic: "audit"}); err != want {
		t.Fatalf("err = %v", err)
	}
}

// Blocking: retried in place with the delays, partition paused, nothing
// written until the attempts run out.
func TestBlockingRetriesInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		g := newFakeGroup()
		p := testPolicy(t, fs, Blocking())
		var c calls
		tp := keel.TopicPartition{Topic: "orders", Partition: 1}
		h := wrap(p, g, func(_ context.Context, m *keel.Message) error {
			if n := c.add(m); n < 3 {
				return errors.New("not yet")
			}
			return nil
		})
		done := make(chan error, 1)
		go func() { done <- h.Handle(t.Context(), source(1)) }()
		synctest.Wait()
		if !g.isPaused(tp) {
			t.Fatal("partition not paused during the backoff")
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if c.count() != 3 || c.times[1].Sub(c.times[0]) != s || c.times[2].Sub(c.times[1]) != 5*s {
			t.Fatalf("calls at %v", c.times)
		}
		if len(fs.messages()) != 0 || g.isPaused(tp) {
			t.Fatal("wrote a record, or left the partition paused")
		}

		// Always failing: four attempts, then the dead-letter topic.
		c = calls{}
		first := time.Now()
		hd := wrap(p, g, func(_ context.Context, m *keel.Message) error { c.add(m); return errors.New("never") })
		if err := hd.Handle(t.Context(), source(2)); err != nil {
			t.Fatal(err)
		}
		sent := fs.messages()
		if c.count() != 4 || len(sent) != 1 || sent[0].Topic != "orders.dlt" {
			t.Fatalf("%d calls, sent %v", c.count(), sent)
		}
		if info := mustInfo(t, sent[0]); info.Attempt != 4 || info.DeadLetterReason != ReasonExhausted || !info.FirstFailure.Equal(first.Truncate(time.Millisecond)) || info.OriginalOffset != 2 {
			t.Fatalf("%+v", info)
		}
	})
}

func TestBlockingWaitCancelledOnRevoke(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := testPolicy(t, &fakeSender{}, Blocking(), Tiers(time.Minute), MaxAttempts(2))
		g := newFakeGroup()
		ctx, cancel := context.WithCancelCause(t.Context())
		time.AfterFunc(3*time.Second, func() { cancel(keel.ErrRevoked) })
		n := 0
		start := time.Now()
		err := wrap(p, g, func(context.Context, *keel.Message) error { n++; return errors.New("x") }).Handle(ctx, source(1))
		if !errors.Is(err, keel.ErrRevoked) || n != 1 || time.Since(start) != 3*time.Second {
			t.Fatalf("err %v, %d calls, after %v", err, n, time.Since(start))
		}
	})
}

func TestPolicyCloseStopsWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := testPolicy(t, &fakeSender{}, Blocking(), Tiers(time.Minute), MaxAttempts(2))
		time.AfterFunc(time.Second, func() { p.Close(context.Background()) })
		err := wrap(p, nil, func(context.Context, *keel.Message) error { return errors.New("x") }).Handle(t.Context(), source(1))
		if !errors.Is(err, keel.ErrConsumerClosed) {
			t.Fatalf("err = %v", err)
		}
	})
}

func mustInfo(t *testing.T, m *keel.Message) Info {
	t.Helper()
	info, ok, err := InfoOf(m)
	if !ok || err != nil {
		t.Fatalf("no retry headers on %s: %v", m.Topic, err)
	}
	return info
}
