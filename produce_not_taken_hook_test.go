package keel

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// notTakenHook records what a ProduceNotTakenHook is told.
type notTakenHook struct {
	mu       sync.Mutex
	produced []*Message
	notTaken []*Message
	reported []*Message
	errs     []error
}

func (h *notTakenHook) OnProduce(_ context.Context, m *Message) {
	h.mu.Lock()
	h.produced = append(h.produced, m)
	h.mu.Unlock()
}

func (h *notTakenHook) OnProduceNotTaken(m *Message, err error) {
	h.mu.Lock()
	h.notTaken = append(h.notTaken, m)
	h.errs = append(h.errs, err)
	h.mu.Unlock()
}

func (h *notTakenHook) OnProduceRecord(d Delivery) {
	h.mu.Lock()
	h.reported = append(h.reported, d.Message)
	h.mu.Unlock()
}

// TestProduceNotTakenHookOnBufferFull: a record TryProduce refuses with
// ErrBufferFull is told to OnProduceNotTaken (and never reported); the
// record that filled the buffer is not, and is reported at Close. The
// broker never answers: the first record waits in the buffer for metadata.
func TestProduceNotTakenHookOnBufferFull(t *testing.T) {
	h := &notTakenHook{}
	c, err := NewClient(SeedBrokers(silentBroker(t)), WithHooks(h))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer c.Close(ctx)
	p, err := NewProducer(c, MaxBufferedRecords(1))
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan Delivery, 2)
	first, second := &Message{Topic: "t", Value: []byte("1")}, &Message{Topic: "t", Value: []byte("2")}
	if err := p.TryProduce(first, reports); err != nil {
		t.Fatalf("first TryProduce: %v", err)
	}
	if err := p.TryProduce(second, reports); !errors.Is(err, ErrBufferFull) {
		t.Fatalf("second TryProduce = %v, want ErrBufferFull", err)
	}
	closeCtx, closeCancel := context.WithTimeout(ctx, 2*time.Second)
	defer closeCancel()
	p.Close(closeCtx) // reports the first record (not written, or unknown)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.produced) != 2 {
		t.Errorf("OnProduce saw %d records, want 2", len(h.produced))
	}
	if len(h.notTaken) != 1 || h.notTaken[0] != second || !errors.Is(h.errs[0], ErrBufferFull) {
		t.Errorf("OnProduceNotTaken saw %v (%v), want only the second record with ErrBufferFull", h.notTaken, h.errs)
	}
	if len(h.reported) != 1 || h.reported[0] != first {
		t.Errorf("OnProduceRecord saw %v, want only the first record", h.reported)
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
