package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// ctx cancels a record that is still waiting to be sent: its report says
// NotWritten with ctx's error, and nothing is stored.
func TestProduceCtxCancelsUnsentRecord(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.Linger(time.Minute), keel.DeliveryTimeout(2*time.Minute))
	ctx, cancel := context.WithCancel(testCtx(t, 20*time.Second))
	ch := make(chan keel.Delivery, 1)
	p.Produce(ctx, &keel.Message{Topic: "t", Value: []byte("x")}, ch)
	time.Sleep(50 * time.Millisecond) // let it reach its partition's batch
	cancel()
	select {
	case d := <-ch:
		if !errors.Is(d.Err, context.Canceled) || d.Outcome() != keel.NotWritten {
			t.Fatalf("want NotWritten + context.Canceled, got %v (%v)", d.Err, d.Outcome())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled record not reported")
	}
	if hw := cl.HighWatermark("t", 0); hw != 0 {
		t.Fatalf("cancelled record was written (hwm %d)", hw)
	}
}

// Once a record is sent, cancelling its ctx changes nothing: it keeps its
// own delivery timeout and is delivered.
func TestProduceCtxDoesNotCancelSentRecord(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.Linger(0))
	ctx := testCtx(t, 20*time.Second)
	if _, err := p.Send(ctx, &keel.Message{Topic: "t", Value: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	hold := cl.HoldRequests(kmsg.Produce)
	rctx, cancel := context.WithCancel(ctx)
	ch := make(chan keel.Delivery, 1)
	p.Produce(rctx, &keel.Message{Topic: "t", Value: []byte("x")}, ch)
	if err := hold.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel() // the request is at the broker now
	hold.Resume()
	select {
	case d := <-ch:
		if d.Err != nil || d.Offset != 1 {
			t.Fatalf("sent record: want delivered at offset 1, got offset %d err %v", d.Offset, d.Err)
		}
	case <-ctx.Done():
		t.Fatal("no report")
	}
}

func TestTryProduceReportsBufferFull(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.MaxBufferedRecords(3), keel.Linger(time.Minute))
	unread := make(chan keel.Delivery) // reports held: the budget stays taken
	for i := range 3 {
		if err := p.TryProduce(&keel.Message{Topic: "t", Value: []byte{byte(i)}}, unread); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	err := p.TryProduce(&keel.Message{Topic: "t", Value: []byte("over")}, unread)
	if !errors.Is(err, keel.ErrBufferFull) {
		t.Fatalf("want ErrBufferFull, got %v", err)
	}
	// Produce waits under ctx instead.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	ch := make(chan keel.Delivery, 1)
	start := time.Now()
	p.Produce(ctx, &keel.Message{Topic: "t", Value: []byte("waits")}, ch)
	if waited := time.Since(start); waited < 80*time.Millisecond {
		t.Fatalf("Produce returned after %v with a full buffer", waited)
	}
	d := <-ch
	if !errors.Is(d.Err, context.DeadlineExceeded) || d.Outcome() != keel.NotWritten {
		t.Fatalf("want NotWritten + DeadlineExceeded, got %v", d.Err)
	}
	// Reading the reports frees the buffer.
	if err := p.Flush(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		<-unread
	}
	if err := p.TryProduce(&keel.Message{Topic: "t", Value: []byte("fits")}, nil); err != nil {
		t.Fatalf("after reading the reports: %v", err)
	}
}

// Close with a broker that does not answer: it returns within its ctx and
// every record gets a report saying the producer closed.
func TestCloseFailsWhatIsLeft(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p, err := keel.NewProducer(c, keel.Linger(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 20*time.Second)
	if _, err := p.Send(ctx, &keel.Message{Topic: "t", Value: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	resume := cl.StopAnswering(kmsg.Produce, -1)
	defer resume()
	ch := make(chan keel.Delivery, 100)
	for range 100 {
		p.Produce(ctx, &keel.Message{Topic: "t", Value: []byte("x")}, ch)
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Close(cctx)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v with a 300ms ctx", took)
	}
	if err == nil {
		t.Fatal("Close returned nil although records were left undelivered")
	}
	unknown := 0
	for range 100 {
		d := <-ch
		if !errors.Is(d.Err, keel.ErrProducerClosed) {
			t.Fatalf("want ErrProducerClosed, got %v", d.Err)
		}
		if d.Outcome() == keel.OutcomeUnknown {
			unknown++
		}
	}
	if unknown == 0 {
		t.Error("records in flight at Close must be OutcomeUnknown, none were")
	}
	// After Close, Produce reports ErrProducerClosed at once.
	p.Produce(ctx, &keel.Message{Topic: "t", Value: []byte("late")}, ch)
	if d := <-ch; !errors.Is(d.Err, keel.ErrProducerClosed) {
		t.Fatalf("Produce after Close: %v", d.Err)
	}
}

func TestAcksLevels(t *testing.T) {
	for _, acks := range []keel.Acks{keel.AcksLeader, keel.AcksNone} {
		t.Run(fmt.Sprint(int(acks)), func(t *testing.T) {
			cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
			c := newClient(t, cl)
			p := newProducer(t, c, keel.WithAcks(acks))
			ctx := testCtx(t, 20*time.Second)
			ds, err := p.SendAll(ctx, &keel.Message{Topic: "t", Value: []byte("a")}, &keel.Message{Topic: "t", Value: []byte("b")})
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range ds {
				want := int64(i)
				if acks == keel.AcksNone {
					want = -1 // no answer, no offset
				}
				if d.Offset != want {
					t.Errorf("record %d: offset %d, want %d", i, d.Offset, want)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for cl.HighWatermark("t", 0) != 2 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if hw := cl.HighWatermark("t", 0); hw != 2 {
				t.Fatalf("stored %d records", hw)
			}
		})
	}
	// Idempotence needs acks=all: asking for both is a configuration error.
	cl := startCluster(t, keeltest.Brokers(1))
	c := newClient(t, cl)
	if _, err := keel.NewProducer(c, keel.WithAcks(keel.AcksLeader), keel.Idempotence(true)); !errors.Is(err, keel.ErrInvalidConfig) {
		t.Fatalf("acks=1 with explicit idempotence: %v", err)
	}
}

func TestCallbacksRunSeriallyInOrder(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 20*time.Second)
	var mu sync.Mutex
	var running, maxRunning int
	var offsets []int64
	var wg sync.WaitGroup
	for range 500 {
		wg.Add(1)
		p.ProduceFunc(ctx, &keel.Message{Topic: "t", Value: []byte("x")}, func(d keel.Delivery) {
			defer wg.Done()
			mu.Lock()
			running++
			maxRunning = max(maxRunning, running)
			offsets = append(offsets, d.Offset)
			mu.Unlock()
			time.Sleep(10 * time.Microsecond)
			mu.Lock()
			running--
			mu.Unlock()
		})
	}
	wg.Wait()
	if maxRunning != 1 {
		t.Errorf("%d callbacks ran at once", maxRunning)
	}
	for i, o := range offsets {
		if o != int64(i) {
			t.Fatalf("callback %d got offset %d: not in order", i, o)
		}
	}
}

// The "two channels" pattern: per-message deliveries for business records,
// Events() for operations and for records produced without a target.
func TestEventsCarryUntargetedDeliveriesAndOperations(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 20*time.Second)
	p.Produce(ctx, &keel.Message{Topic: "t", Value: []byte("untargeted")}, nil)
	var sawDelivery, sawConnect bool
	timeout := time.After(10 * time.Second)
	for !(sawDelivery && sawConnect) {
		select {
		case ev := <-p.Events():
			switch ev := ev.(type) {
			case keel.DeliveryEvent:
				if ev.Err != nil || string(ev.Message.Value) != "untargeted" {
					t.Fatalf("delivery event %+v", ev)
				}
				sawDelivery = true
			case keel.BrokerConnected:
				sawConnect = true
			}
		case <-timeout:
			t.Fatalf("events: delivery %v, connect %v", sawDelivery, sawConnect)
		}
	}
}

// A permanent broker refusal fails only the records it concerns, with the
// broker's error, and they are NotWritten; the other partitions deliver.
func TestPermanentErrorFailsOnlyItsRecords(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 2))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.ManualPartitioner())
	ctx := testCtx(t, 20*time.Second)
	cl.FailRequests(kmsg.Produce, 29, 1, keeltest.OnTopic("t"), keeltest.OnPartitions(1)) // TOPIC_AUTHORIZATION_FAILED
	ds, _ := p.SendAll(ctx,
		&keel.Message{Topic: "t", Partition: 0, Value: []byte("ok")},
		&keel.Message{Topic: "t", Partition: 1, Value: []byte("refused")},
	)
	if ds[0].Err != nil {
		t.Fatalf("partition 0: %v", ds[0].Err)
	}
	err := ds[1].Err
	if !errors.Is(err, keel.ErrTopicAuthorization) || !errors.Is(err, keel.ErrNotWritten) || keel.IsRetriable(err) {
		t.Fatalf("partition 1: want a non-retriable ErrTopicAuthorization + ErrNotWritten, got %v", err)
	}
	// The partition is usable again for the next records.
	if _, err := p.Send(ctx, &keel.Message{Topic: "t", Partition: 1, Value: []byte("later")}); err != nil {
		t.Fatalf("after the refusal: %v", err)
	}
}
