package integration

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

func newProducer(t *testing.T, c *keel.Client, opts ...keel.ProducerOption) *keel.Producer {
	t.Helper()
	p, err := keel.NewProducer(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

// produceIDs produces n records whose values are their ids, in order, from
// one goroutine, and waits for every delivery. It returns the deliveries
// that failed.
func produceIDs(t *testing.T, ctx context.Context, p *keel.Producer, topic string, n int, key func(i int) []byte) []keel.Delivery {
	return produceIDsThen(t, ctx, p, topic, n, key, 0, func() {})
}

// produceIDsThen is produceIDs spread over at least `spread` (so that
// faults injected meanwhile meet traffic, however fast the machine), and
// calling issued once every record was handed to Produce.
func produceIDsThen(t *testing.T, ctx context.Context, p *keel.Producer, topic string, n int, key func(i int) []byte, spread time.Duration, issued func()) []keel.Delivery {
	t.Helper()
	ch := make(chan keel.Delivery, 1024)
	done := make(chan []keel.Delivery)
	go func() {
		var failed []keel.Delivery
		for range n {
			d := <-ch
			if d.Err != nil {
				failed = append(failed, d)
			}
		}
		done <- failed
	}()
	const steps = 200
	start := time.Now()
	for i := range n {
		if spread > 0 && i%(n/steps) == 0 {
			if ahead := time.Until(start.Add(spread * time.Duration(i) / time.Duration(n))); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		var k []byte
		if key != nil {
			k = key(i)
		}
		p.Produce(ctx, &keel.Message{Topic: topic, Key: k, Value: []byte(strconv.Itoa(i))}, ch)
	}
	issued()
	select {
	case failed := <-done:
		return failed
	case <-ctx.Done():
		t.Fatalf("deliveries did not all arrive: %v", ctx.Err())
		return nil
	}
}

func TestProduceAndReadBack(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topic("orders", 6))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	const n = 20000
	failed := produceIDs(t, ctx, p, "orders", n, func(i int) []byte { return []byte(fmt.Sprint("key-", i%97)) })
	if len(failed) > 0 {
		t.Fatalf("%d deliveries failed, first: %v", len(failed), failed[0].Err)
	}
	rep := checkExactlyOnce(readTopic(t, cl, "orders"), n)
	if rep.Lost+rep.Duplicated+rep.Reordered != 0 || rep.Found != n {
		t.Fatal(rep)
	}
}

func TestSendSync(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 3))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 20*time.Second)
	d, err := p.Send(ctx, &keel.Message{Topic: "t", Key: []byte("k"), Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	if d.Offset != 0 || d.Outcome() != keel.Delivered || d.Timestamp.IsZero() {
		t.Fatalf("delivery %+v", d)
	}
	_, err = p.Send(ctx, &keel.Message{Topic: "missing", Value: []byte("v")})
	if !errors.Is(err, keel.ErrUnknownTopic) || !errors.Is(err, keel.ErrNotWritten) {
		t.Fatalf("want ErrUnknownTopic + ErrNotWritten, got %v", err)
	}
}
