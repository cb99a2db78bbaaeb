package share

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/keel-go/keel/internal/errs"
)

// dispatcher calls the user's OnAcked with results in order, on a
// goroutine of its own, so that a slow callback never holds up a share
// session (results queue meanwhile; they are few: one per partition and
// acknowledgement type per request).
type dispatcher struct {
	fn  func(AckResult)
	log *slog.Logger

	mu     sync.Mutex
	queue  []AckResult
	wake   chan struct{}
	closed bool
	done   chan struct{}
}

func newDispatcher(fn func(AckResult), log *slog.Logger) *dispatcher {
	d := &dispatcher{fn: fn, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go d.run()
	return d
}

func (d *dispatcher) push(rs []AckResult) {
	d.mu.Lock()
	if !d.closed {
		d.queue = append(d.queue, rs...)
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run() {
	defer close(d.done)
	for {
		d.mu.Lock()
		batch := d.queue
		d.queue = nil
		closed := d.closed
		d.mu.Unlock()
		for _, r := range batch {
			d.call(r)
		}
		if len(batch) > 0 {
			continue
		}
		if closed {
			return
		}
		<-d.wake
	}
}

// call runs the callback, turning a panic into a logged error: the
// callback is user code and must not end the process from keel's
// goroutine.
func (d *dispatcher) call(r AckResult) {
	defer func() {
		if v := recover(); v != nil {
			d.log.Error("keel: the share acknowledgement callback panicked", "err", errs.Recovered("acknowledgement callback", v))
		}
	}()
	d.fn(r)
}

// close delivers what is queued and stops, waiting under ctx.
func (d *dispatcher) close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the share acknowledgement callback did not finish before ctx ended: %w", ctx.Err())
	}
}
