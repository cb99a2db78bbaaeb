package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// Issue 18, bug 1: SendAll whose ctx ends while its records wait to be
// sent returned zero-value deliveries (Delivered, no error, no message).
// Each slot must carry its own record and its real outcome: not written,
// with ctx's error, and nothing stored.
func TestSendAllCtxEndsBeforeSending(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.Linger(time.Second))
	m1 := &keel.Message{Topic: "t", Value: []byte("1")}
	m2 := &keel.Message{Topic: "t", Value: []byte("2")}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	ds, err := p.SendAll(ctx, m1, m2, m1) // the same pointer twice gets two slots
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendAll error = %v, want one matching context.DeadlineExceeded", err)
	}
	want := []*keel.Message{m1, m2, m1}
	for i, d := range ds {
		if d.Message != want[i] {
			t.Errorf("slot %d: message %p, want %p", i, d.Message, want[i])
		}
		if d.Outcome() != keel.NotWritten || !errors.Is(d.Err, keel.ErrNotWritten) || !errors.Is(d.Err, context.DeadlineExceeded) {
			t.Errorf("slot %d: outcome %v err %v, want NotWritten with ctx's error", i, d.Outcome(), d.Err)
		}
	}
	time.Sleep(1500 * time.Millisecond) // past the linger: nothing may go out now
	if hw := cl.HighWatermark("t", 0); hw != 0 {
		t.Fatalf("records reported not written were stored (high watermark %d)", hw)
	}
}

// Issue 18, bug 2: Send whose ctx ends after its record went out said
// NotWritten although the broker stored the record. A record already sent
// must report OutcomeUnknown, and errors.Is and Outcome() must agree.
func TestSendCtxEndsAfterSending(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.Linger(0))
	ctx := testCtx(t, 20*time.Second)
	if _, err := p.Send(ctx, &keel.Message{Topic: "t", Value: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	hold := cl.HoldRequests(kmsg.Produce)
	sctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	var d keel.Delivery
	var err error
	go func() {
		defer close(done)
		d, err = p.Send(sctx, &keel.Message{Topic: "t", Value: []byte("x")})
	}()
	if werr := hold.Wait(ctx, 1); werr != nil {
		t.Fatal(werr)
	}
	<-done
	if d.Outcome() != keel.OutcomeUnknown || !errors.Is(err, keel.ErrOutcomeUnknown) || errors.Is(err, keel.ErrNotWritten) {
		t.Fatalf("sent record: outcome %v, err %v; want OutcomeUnknown matching ErrOutcomeUnknown only", d.Outcome(), err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v does not match the ctx's error", err)
	}
	hold.Resume()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if hw := cl.HighWatermark("t", 0); hw != 2 {
		t.Fatalf("high watermark %d, want 2: the sent record is stored", hw)
	}

	// SendAll: the same rule per slot.
	hold = cl.HoldRequests(kmsg.Produce)
	actx, cancel2 := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel2()
	go func() { _ = hold.Wait(ctx, 1) }()
	ds, err := p.SendAll(actx, &keel.Message{Topic: "t", Value: []byte("y")})
	hold.Resume()
	if len(ds) != 1 || ds[0].Outcome() != keel.OutcomeUnknown || !errors.Is(err, keel.ErrOutcomeUnknown) {
		t.Fatalf("SendAll of a sent record: %+v, %v; want OutcomeUnknown", ds, err)
	}
}

// Issue 18, bug 8: a nil ctx crashed deep inside keel. Every ctx-taking
// call answers ErrNilContext naming the method instead, and nothing else
// happens (the producer and consumer keep working).
func TestNilContextIsAnErrorNamingTheMethod(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.Linger(0))
	var nilCtx context.Context
	check := func(method string, err error) {
		t.Helper()
		if !errors.Is(err, keel.ErrNilContext) {
			t.Errorf("%s(nil): %v, want ErrNilContext", method, err)
			return
		}
		if !strings.Contains(err.Error(), method) {
			t.Errorf("%s(nil): %q does not name the method", method, err)
		}
	}
	d, err := p.Send(nilCtx, &keel.Message{Topic: "t", Value: []byte("x")})
	check("Producer.Send", err)
	if d.Outcome() != keel.NotWritten {
		t.Errorf("Send(nil) outcome %v, want NotWritten", d.Outcome())
	}
	_, err = p.SendAll(nilCtx, &keel.Message{Topic: "t", Value: []byte("x")})
	check("Producer.SendAll", err)
	ch := make(chan keel.Delivery, 1)
	p.Produce(nilCtx, &keel.Message{Topic: "t", Value: []byte("x")}, ch)
	check("Producer.Produce", (<-ch).Err)
	fn := make(chan keel.Delivery, 1)
	p.ProduceFunc(nilCtx, &keel.Message{Topic: "t", Value: []byte("x")}, func(d keel.Delivery) { fn <- d })
	check("Producer.ProduceFunc", (<-fn).Err)
	check("Producer.Flush", p.Flush(nilCtx))
	check("Producer.Close", p.Close(nilCtx))
	_, err = c.Metadata(nilCtx)
	check("Client.Metadata", err)
	check("Client.Close", c.Close(nilCtx))

	g, err := keel.NewGroupConsumer(c, "g", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	check("GroupConsumer.Run", g.Run(nilCtx, keel.HandlerFunc(func(context.Context, *keel.Message) error { return nil })))
	check("GroupConsumer.Commit", g.Commit(nilCtx))
	check("GroupConsumer.Close", g.Close(nilCtx))
	gp, err := keel.NewGroupPoller(c, "g", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = gp.Poll(nilCtx)
	check("GroupPoller.Poll", err)
	check("GroupPoller.Commit", gp.Commit(nilCtx))
	check("GroupPoller.Close", gp.Close(nilCtx))
	cons, err := keel.NewConsumer(c)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cons.Poll(nilCtx)
	check("Consumer.Poll", err)
	check("Consumer.Close", cons.Close(nilCtx))

	// Nothing was broken by the misuse.
	ctx := testCtx(t, 20*time.Second)
	if _, err := p.Send(ctx, &keel.Message{Topic: "t", Value: []byte("after")}); err != nil {
		t.Fatalf("Send after the nil-ctx calls: %v", err)
	}
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
