package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// Issue 18, bug 3: a handler that panics crashed the process from a keel
// goroutine. The panic is a handler error (ErrPanicked, with the value and
// the stack) and the handler-error policy applies: Stop keeps the offset
// at the record, Skip goes on past it.
func TestHandlerPanicIsAHandlerError(t *testing.T) {
	for name, action := range map[string]keel.HandlerAction{"stop": keel.StopPartition, "skip": keel.SkipMessage} {
		t.Run(name, func(t *testing.T) {
			cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("orders", 1))
			c := newClient(t, cl)
			p := newProducer(t, c)
			ctx := testCtx(t, 30*time.Second)
			const n = 10
			for i := range n {
				if _, err := p.Send(ctx, &keel.Message{Topic: "orders", Value: []byte(fmt.Sprint(i))}); err != nil {
					t.Fatal(err)
				}
			}
			var mu sync.Mutex
			var handled []int64
			var policyErr error
			g, err := keel.NewGroupConsumer(c, "g", []string{"orders"}, fastGroup(keel.OnHandlerError(func(m *keel.Message, err error) keel.HandlerAction {
				mu.Lock()
				policyErr = err
				mu.Unlock()
				return action
			}))...)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				done <- g.Run(ctx, keel.HandlerFunc(func(_ context.Context, m *keel.Message) error {
					if m.Offset == 3 {
						panic(fmt.Sprintf("boom at %d", m.Offset))
					}
					mu.Lock()
					handled = append(handled, m.Offset)
					mu.Unlock()
					return nil
				}))
			}()
			// Stop: committed up to the panicking record (offset 3), the
			// records after it untouched. Skip: everything but it handled.
			wantCommitted, wantHandled := int64(3), 3
			if action == keel.SkipMessage {
				wantCommitted, wantHandled = n, n-1
			}
			a, err := admin.New(c)
			if err != nil {
				t.Fatal(err)
			}
			for {
				offs, err := a.GroupOffsets(ctx, "g")
				mu.Lock()
				got := len(handled)
				mu.Unlock()
				if err == nil && offs[keel.TopicPartition{Topic: "orders", Partition: 0}] == wantCommitted && got == wantHandled {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("committed %v (err %v), handled %d; want committed %d after %d handled", offs, err, got, wantCommitted, wantHandled)
				}
				time.Sleep(50 * time.Millisecond)
			}
			mu.Lock()
			perr := policyErr
			mu.Unlock()
			var pe *keel.PanicError
			if !errors.Is(perr, keel.ErrPanicked) || !errors.As(perr, &pe) || pe.Value != "boom at 3" || !strings.Contains(string(pe.Stack), "misuse_test.go") {
				t.Fatalf("policy saw %v; want a *PanicError with the value and a stack through the handler", perr)
			}
			if err := g.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

// Issue 18, bug 4: a nil PartitionerFunc is refused by NewProducer, and a
// panicking one fails only the record it panicked for (NotWritten,
// ErrPanicked); other records are delivered.
func TestPartitionerFuncNilOrPanicking(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 2))
	c := newClient(t, cl)
	if _, err := keel.NewProducer(c, keel.PartitionerFunc(nil)); !errors.Is(err, keel.ErrInvalidConfig) || !strings.Contains(err.Error(), "PartitionerFunc") {
		t.Fatalf("PartitionerFunc(nil): %v, want a config error naming it", err)
	}
	p := newProducer(t, c, keel.Linger(0), keel.PartitionerFunc(func(_ string, key []byte, n int32) int32 {
		if string(key) == "boom" {
			panic("partitioner bug")
		}
		return 1
	}))
	ctx := testCtx(t, 20*time.Second)
	msgs := []*keel.Message{{Topic: "t", Key: []byte("a")}, {Topic: "t", Key: []byte("boom")}, {Topic: "t", Key: []byte("b")}}
	ds, _ := p.SendAll(ctx, msgs...)
	if ds[0].Err != nil || ds[2].Err != nil {
		t.Fatalf("records beside the panicking one failed: %v, %v", ds[0].Err, ds[2].Err)
	}
	if d := ds[1]; d.Outcome() != keel.NotWritten || !errors.Is(d.Err, keel.ErrPanicked) || !strings.Contains(d.Err.Error(), "partitioner bug") {
		t.Fatalf("the panicking record: %v (%v), want NotWritten matching ErrPanicked", d.Err, d.Outcome())
	}
	if hw := cl.HighWatermark("t", 1); hw != 2 {
		t.Fatalf("partition 1 holds %d records, want 2", hw)
	}
}

// Issue 18, bug 6: AtOffset(-3) silently started at the end and
// AtOffset(-5) ended in UNSUPPORTED_VERSION. Negative offsets are refused
// with an error that points at AtEarliest/AtLatest; so are bad partitions.
func TestNegativeAtOffsetRefused(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	cons, err := keel.NewConsumer(c)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(context.Background())
	tp := keel.TopicPartition{Topic: "t", Partition: 0}
	for _, o := range []int64{-1, -2, -3, -5} {
		err := cons.Assign(tp, keel.AtOffset(o))
		if !errors.Is(err, keel.ErrInvalidConfig) || !strings.Contains(err.Error(), "AtEarliest") {
			t.Errorf("Assign AtOffset(%d): %v, want a config error pointing at AtEarliest/AtLatest", o, err)
		}
		if err := cons.Seek(tp, keel.AtOffset(o)); !errors.Is(err, keel.ErrInvalidConfig) {
			t.Errorf("Seek AtOffset(%d): %v", o, err)
		}
	}
	if err := cons.Assign(keel.TopicPartition{Topic: "t", Partition: -1}, keel.AtEarliest()); !errors.Is(err, keel.ErrInvalidConfig) {
		t.Errorf("Assign partition -1: %v", err)
	}
	if _, ok := cons.Position(tp); ok {
		t.Error("a refused Assign assigned the partition")
	}
	if err := cons.Assign(tp, keel.AtOffset(0)); err != nil {
		t.Fatalf("AtOffset(0): %v", err)
	}
}

// Issue 18, bug 7: MarkProcessed of a made-up message past the partition's
// end was committed (lag then showed committed 1000000, end 30). Offsets
// the consumer never handed out are refused and not committed.
func TestMarkProcessedRefusesOffsetsNeverHandedOut(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("orders", 1))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 30*time.Second)
	for i := range 30 {
		if _, err := p.Send(ctx, &keel.Message{Topic: "orders", Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	g, err := keel.NewGroupPoller(c, "g", []string{"orders"}, fastGroup(keel.AutoCommitInterval(0))...)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	var got []*keel.Message
	for len(got) < 30 {
		msgs, err := g.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	fake := &keel.Message{Topic: "orders", Partition: 0, Offset: 1_000_000}
	if err := g.MarkProcessed(got[0], fake); err == nil || !strings.Contains(err.Error(), "1000000") {
		t.Fatalf("MarkProcessed of a made-up offset: %v, want an error naming it", err)
	}
	if err := g.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	offs, err := a.GroupOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o := offs[keel.TopicPartition{Topic: "orders", Partition: 0}]; o != 1 {
		t.Fatalf("committed %d, want 1 (the real record marked, the made-up one refused)", o)
	}
}

// Issue 18, bug 10: an address that accepts TCP but never speaks Kafka
// was reported as "cannot connect". The error says that the connection was
// made and ApiVersions got no answer, within the dial timeout.
func TestSilentListenerSaysApiVersionsGotNoAnswer(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc) // held open, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
	})
	c, err := keel.NewClient(keel.SeedBrokers(ln.Addr().String()), keel.DialTimeout(300*time.Millisecond), keel.UnknownTopicRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.Metadata(ctx)
	if !errors.Is(err, keel.ErrBrokerUnreachable) || !strings.Contains(err.Error(), "no answer to the ApiVersions request") {
		t.Fatalf("Metadata against a silent listener: %v; want ErrBrokerUnreachable saying ApiVersions got no answer", err)
	}
}
