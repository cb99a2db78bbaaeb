package wait

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoffDelayDoublesWithinJitterUpToMax(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for n, want := range map[int]time.Duration{0: 100 * time.Millisecond, 1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for range 100 {
			d := b.Delay(n)
			if d < want*8/10 || d > want*12/10 {
				t.Fatalf("Delay(%d) = %v, want %v ±20%%", n, d, want)
			}
		}
	}
}

func TestSleepAndUntil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		if !Sleep(ctx, time.Second) {
			t.Fatal("Sleep ended early")
		}
		go func() { time.Sleep(time.Second); cancel() }()
		start := time.Now()
		if Sleep(ctx, time.Hour) || time.Since(start) != time.Second {
			t.Fatalf("Sleep did not end with ctx (after %v)", time.Since(start))
		}
		stop := make(chan struct{})
		go func() { time.Sleep(time.Second); close(stop) }()
		if Until(context.Background(), stop, time.Hour) {
			t.Fatal("Until ignored stop")
		}
	})
}

func TestRetryBoundsAndCauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}
		boom := errors.New("boom")
		calls := 0
		err := Retry(context.Background(), b, 3, func(int) (bool, error) { calls++; return false, boom })
		if calls != 3 || !errors.Is(err, boom) {
			t.Fatalf("bounded: %d calls, %v", calls, err)
		}
		calls = 0
		err = Retry(context.Background(), b, 0, func(n int) (bool, error) {
			calls++
			if n == 5 {
				return true, nil
			}
			return false, boom
		})
		if calls != 5 || err != nil {
			t.Fatalf("until done: %d calls, %v", calls, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err = Retry(ctx, b, 0, func(int) (bool, error) { return false, boom })
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, boom) {
			t.Fatalf("ctx ended: %v, want both the ctx error and the last error", err)
		}
		fatal := errors.New("fatal")
		calls = 0
		err = Retry(context.Background(), b, 0, func(int) (bool, error) { calls++; return true, fatal })
		if calls != 1 || err != fatal {
			t.Fatalf("done with error: %d calls, %v", calls, err)
		}
	})
}
