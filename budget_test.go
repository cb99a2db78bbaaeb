package keel

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
func TestBudgetWaitersWakeAndCountsBalance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	b := newBudget(80, 8000)
	for range 80 {
		if err := b.acquire(ctx, 10); err != nil {
			t.Fatal(err)
		}
	}
	if b.tryAcquire(10) {
		t.Fatal("tryAcquire took room past the record limit")
	}
	got := make(chan error, 1)
	go func() { got <- b.acquire(ctx, 10) }()
	for range 80 {
		b.release(1, 10)
	}
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	b.release(1, 10)

	// A record bigger than an eighth of the bytes waits until it fits.
	if err := b.acquire(ctx, 7000); err != nil {
		t.Fatal(err)
	}
	go func() { got <- b.acquire(ctx, 5000) }()
	select {
	case err := <-got:
		t.Fatalf("a 5000-byte record got room next to 7000 of 8000 bytes held (err %v)", err)
	case <-time.After(20 * time.Millisecond):
	}
	b.release(1, 7000)
	if err := <-got; err != nil {
		t.Fatalf("big waiter: %v", err)
	}
	b.release(1, 5000)

	// A waiter whose ctx ends stops waiting and takes nothing.
	full := newBudget(1, 100)
	full.tryAcquire(10)
	short, stop := context.WithTimeout(ctx, 10*time.Millisecond)
	defer stop()
	if err := full.acquire(short, 10); !errors.Is(err, context.DeadlineExceeded) {
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
				if err := b.acquire(ctx, size); err != nil {
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
			b.release(1, size)
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
