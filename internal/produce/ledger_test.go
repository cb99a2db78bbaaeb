package produce

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A producer waiting for room gets it back as records are released, one by
// one and in any order, including a record larger than the wake-up step;
// and the counts balance to zero after concurrent use.
func TestLedgerWaitersWakeAndCountsBalance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	b := NewLedger(80, 8000)
	for range 80 {
		if err := b.Acquire(ctx, 10); err != nil {
			t.Fatal(err)
		}
	}
	if b.TryAcquire(10) {
		t.Fatal("TryAcquire took room past the record limit")
	}
	got := make(chan error, 1)
	go func() { got <- b.Acquire(ctx, 10) }()
	for range 80 {
		b.Release(1, 10)
	}
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	b.Release(1, 10)

	// A record bigger than an eighth of the bytes waits until it fits.
	if err := b.Acquire(ctx, 7000); err != nil {
		t.Fatal(err)
	}
	go func() { got <- b.Acquire(ctx, 5000) }()
	select {
	case err := <-got:
		t.Fatalf("a 5000-byte record got room next to 7000 of 8000 bytes held (err %v)", err)
	case <-time.After(20 * time.Millisecond):
	}
	b.Release(1, 7000)
	if err := <-got; err != nil {
		t.Fatalf("big waiter: %v", err)
	}
	b.Release(1, 5000)

	// A record larger than the whole budget fits when nothing else is held.
	if !b.TryAcquire(9000) {
		t.Fatal("a record over the byte budget did not fit an empty budget")
	}
	b.Release(1, 9000)

	// A waiter whose ctx ends stops waiting and takes nothing.
	full := NewLedger(1, 100)
	full.TryAcquire(10)
	short, stop := context.WithTimeout(ctx, 10*time.Millisecond)
	defer stop()
	if err := full.Acquire(short, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire past its ctx: %v, want DeadlineExceeded", err)
	}
	if n := full.records.Load(); n != 1 {
		t.Fatalf("records = %d after a cancelled wait, want 1", n)
	}

	// Concurrent producers and releasers.
	work := make(chan int64, 1000)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				size := int64(1 + i%300)
				if err := b.Acquire(ctx, size); err != nil {
					t.Error(err)
					return
				}
				work <- size
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		for size := range work {
			b.Release(1, size)
		}
		close(done)
	}()
	wg.Wait()
	close(work)
	<-done
	if r, n := b.records.Load(), b.bytes.Load(); r != 0 || n != 0 {
		t.Fatalf("after balanced use the budget holds %d records, %d bytes", r, n)
	}
}

// Flush waits for the records of its generation and not for later ones;
// a generation that is empty when flushed is done at once; records that
// race with a flush settle without closing a finished generation twice.
func TestLedgerGenerations(t *testing.T) {
	l := NewLedger(10, 1000)
	if g := l.startFlush(); !isDone(g) {
		t.Fatal("flushing an empty generation did not finish it")
	}
	g1 := l.enter()
	g1b := l.enter()
	g := l.startFlush()
	if g != g1 || g1b != g1 {
		t.Fatal("records entered the wrong generation")
	}
	later := l.enter()
	if later == g1 {
		t.Fatal("a record after the flush joined the flushed generation")
	}
	l.settle(g1, 1)
	if isDone(g) {
		t.Fatal("generation done with a record unsettled")
	}
	l.settle(g1, 1)
	if !isDone(g) {
		t.Fatal("generation not done once its records settled")
	}
	if isDone(l.startFlush()) {
		t.Fatal("a generation with an unsettled record is done")
	}
	l.settle(later, 1)

	// Many goroutines entering and settling while flushes come and go:
	// nothing panics (a channel closed twice) and every flush finishes.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				g := l.enter()
				l.settle(g, 1)
			}
		}()
	}
	for range 200 {
		g := l.startFlush()
		select {
		case <-g.done:
		case <-time.After(10 * time.Second):
			t.Fatal("a flush never finished")
		}
	}
	close(stop)
	wg.Wait()
}

func isDone(g *generation) bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}
