package conn

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/keel-go/keel/internal/errs"
)

func TestBackoffGrowsAndCaps(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for n, base := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for range 50 {
			d := b.Delay(n)
			lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
			if d < lo || d > hi {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", n, d, lo, hi)
			}
		}
	}
}

func TestBackoffJitters(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[b.Delay(3)] = true
	}
	if len(seen) < 5 {
		t.Fatalf("only %d distinct delays in 20 draws: no jitter", len(seen))
	}
}

func TestSkipTags(t *testing.T) {
	// two tags: (0, "ab"), (5, "")
	b := []byte{2, 0, 2, 'a', 'b', 5, 0, 'X'}
	rest, err := skipTags(b)
	if err != nil || string(rest) != "X" {
		t.Fatalf("rest=%q err=%v", rest, err)
	}
	if _, err := skipTags([]byte{1, 0, 9, 'a'}); err == nil {
		t.Fatal("accepted a tag longer than the buffer")
	}
}

// A listener that accepts but never answers: the dial timeout must bound
// the whole setup, including the ApiVersions exchange.
func TestDialTimeoutBoundsSilentBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	cfg := &Config{DialTimeout: 300 * time.Millisecond, RequestTimeout: 10 * time.Second}
	start := time.Now()
	_, err = Dial(context.Background(), ln.Addr().String(), cfg)
	took := time.Since(start)
	if !errors.Is(err, errs.ErrBrokerUnreachable) {
		t.Fatalf("want ErrBrokerUnreachable, got %v", err)
	}
	if took > 2*time.Second {
		t.Fatalf("dial took %v with a 300ms dial timeout", took)
	}
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(time.Second):
	}
}

func TestPoolBacksOffAfterFailedDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // now refused

	cfg := &Config{DialTimeout: time.Second, RequestTimeout: time.Second}
	p := NewPool(cfg, Backoff{Min: 200 * time.Millisecond, Max: 200 * time.Millisecond}, 0)
	defer p.Close()

	if _, err := p.Get(context.Background(), addr, General); !errors.Is(err, errs.ErrBrokerUnreachable) {
		t.Fatalf("first dial: want ErrBrokerUnreachable, got %v", err)
	}
	start := time.Now()
	_, err = p.Get(context.Background(), addr, General)
	if err == nil {
		t.Fatal("second dial succeeded against a closed port")
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Fatalf("redialed after %v; want to wait out the ~200ms backoff", waited)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Get(ctx, addr, General); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get during backoff must honour ctx, got %v", err)
	}
}

func TestPoolClosedGet(t *testing.T) {
	p := NewPool(&Config{DialTimeout: time.Second, RequestTimeout: time.Second}, Backoff{Min: time.Millisecond, Max: time.Millisecond}, time.Minute)
	p.Close()
	if _, err := p.Get(context.Background(), "127.0.0.1:1", General); !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
}
