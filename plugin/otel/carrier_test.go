package otel_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/keel-go/keel"
)

// A message's headers may share a backing array with other messages'
// (one base slice, appended to per message): writing traceparent must not
// write into it. A message produced again gets its traceparent replaced,
// not repeated, and the old send span is ended, not left open.
func TestInjectCopiesSharedHeadersAndReplaces(t *testing.T) {
	tel := newTelemetry(t)
	p := tel.plugin(t)
	base := make([]keel.Header, 1, 8)
	base[0] = keel.Header{Key: "app", Value: []byte("x")}
	a := &keel.Message{Topic: "t", Headers: base}
	b := &keel.Message{Topic: "t", Headers: base}
	ctx := context.Background()
	p.OnProduce(ctx, a)
	p.OnProduce(ctx, b)
	tp := func(m *keel.Message) []string {
		var out []string
		for _, h := range m.Headers {
			if h.Key == "traceparent" {
				out = append(out, string(h.Value))
			}
		}
		return out
	}
	if len(tp(a)) != 1 || len(tp(b)) != 1 || tp(a)[0] == tp(b)[0] {
		t.Fatalf("traceparents a %q, b %q: want one each, different", tp(a), tp(b))
	}
	if full := base[:cap(base)]; full[1].Key != "" {
		t.Errorf("the shared base slice was written into: %v", full[:2])
	}
	if a.Headers[0].Key != "app" || b.Headers[0].Key != "app" {
		t.Errorf("the caller's headers were lost: %v / %v", a.Headers, b.Headers)
	}

	before := tp(a)[0]
	p.OnProduce(ctx, a)
	if got := tp(a); len(got) != 1 || got[0] == before {
		t.Errorf("produced again: traceparents %q, want one new one (was %q)", got, before)
	}
	ended := tel.spansNamed("send t")
	if len(ended) != 1 || ended[0].Status.Code != codes.Error || !strings.Contains(ended[0].Status.Description, "again") {
		t.Errorf("the first send span of a message produced again: %+v, want it ended with an error status", ended)
	}
	p.OnProduceRecord(keel.Delivery{Message: a, Partition: 0, Offset: 5})
	p.OnProduceRecord(keel.Delivery{Message: b, Partition: 0, Offset: 6})
	if n := len(tel.spansNamed("send t")); n != 3 {
		t.Errorf("%d send spans ended after both reports, want 3", n)
	}
}

// TestBufferFullEndsSendSpan: a record TryProduce hands back (buffer
// full) has its send span ended, marked not taken, and is not counted as
// produced (only the record taken is). The broker never answers, so the first record fills the buffer.
func TestBufferFullEndsSendSpan(t *testing.T) {
	tel := newTelemetry(t)
	c, err := keel.NewClient(keel.SeedBrokers(silentBroker(t)), keel.WithHooks(tel.plugin(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer c.Close(ctx)
	pr, err := keel.NewProducer(c, keel.MaxBufferedRecords(1))
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan keel.Delivery, 2)
	if err := pr.TryProduce(&keel.Message{Topic: "t", Value: []byte("1")}, reports); err != nil {
		t.Fatal(err)
	}
	if err := pr.TryProduce(&keel.Message{Topic: "t", Value: []byte("2")}, reports); !errors.Is(err, keel.ErrBufferFull) {
		t.Fatalf("second TryProduce = %v, want ErrBufferFull", err)
	}
	ended := tel.spansNamed("send t")
	if len(ended) != 1 || ended[0].Status.Code != codes.Error || !strings.Contains(ended[0].Status.Description, "not taken") {
		t.Fatalf("send spans ended after ErrBufferFull: %+v, want one marked not taken", ended)
	}
	closeCtx, closeCancel := context.WithTimeout(ctx, 2*time.Second)
	defer closeCancel()
	pr.Close(closeCtx)
	if n := len(tel.spansNamed("send t")); n != 2 {
		t.Errorf("%d send spans ended after Close reported the first record, want 2", n)
	}
	if got, _ := total64(tel.collect(t), "keel.producer.records", nil); got != 1 {
		t.Errorf("produced records = %d, want 1 (the record handed back is no produced record)", got)
	}
}

// silentBroker listens on 127.0.0.1 and accepts connections that never
// get an answer: a record produced to it waits in the buffer (for its
// metadata) until Close.
func silentBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			cn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, cn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, cn := range conns {
			cn.Close()
		}
	})
	return ln.Addr().String()
}

// TestConcurrentSendsEachEndOnce: records produced and reported from many
// goroutines at once each have their send span ended exactly once, with
// their own offset.
func TestConcurrentSendsEachEndOnce(t *testing.T) {
	tel := newTelemetry(t)
	p := tel.plugin(t)
	const goroutines, each = 8, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := &keel.Message{Topic: "c", Value: []byte("v")}
				p.OnProduce(context.Background(), m)
				p.OnProduceRecord(keel.Delivery{Message: m, Partition: int32(g), Offset: int64(i)})
			}
		}()
	}
	wg.Wait()
	seen := map[[2]int64]int{}
	for _, s := range tel.spansNamed("send c") {
		var part, off int64 = -1, -1
		for _, kv := range s.Attributes {
			switch kv.Key {
			case "messaging.destination.partition.id":
				fmt.Sscan(kv.Value.AsString(), &part)
			case "messaging.kafka.offset":
				off = kv.Value.AsInt64()
			}
		}
		seen[[2]int64{part, off}]++
	}
	if len(seen) != goroutines*each {
		t.Fatalf("%d distinct send spans ended, want %d", len(seen), goroutines*each)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("send span of partition %d offset %d ended %d times", k[0], k[1], n)
		}
	}
}
