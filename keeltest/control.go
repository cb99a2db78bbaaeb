package keeltest

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// errDropped is what DropConnections' control returns to make the broker
// close the connection.
var errDropped = errors.New("keeltest: connection dropped by DropConnections")

// counter counts events and lets callers wait for a count.
type counter struct {
	mu     sync.Mutex
	n      int
	notify chan struct{} // closed and replaced on every add
}

func (c *counter) add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.notify != nil {
		close(c.notify)
		c.notify = nil
	}
}

func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *counter) wait(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		if c.n >= n {
			c.mu.Unlock()
			return nil
		}
		if c.notify == nil {
			c.notify = make(chan struct{})
		}
		ch := c.notify
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// DropHandle controls connection drops installed by
// [Cluster.DropConnections].
type DropHandle struct {
	dropped counter

	mu      sync.Mutex
	left    int // drops remaining; negative means unlimited
	removed bool
}

// Dropped returns how many connections have been dropped so far.
func (h *DropHandle) Dropped() int { return h.dropped.get() }

// Wait blocks until at least n connections have been dropped or ctx is
// done, returning ctx's error in that case.
func (h *DropHandle) Wait(ctx context.Context, n int) error { return h.dropped.wait(ctx, n) }

// Remove stops dropping connections; requests are answered normally again.
func (h *DropHandle) Remove() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removed = true
}

// take reports whether the current request's connection should be dropped,
// and whether the handle wants more after this one.
func (h *DropHandle) take() (drop, more bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.removed || h.left == 0 {
		return false, false
	}
	if h.left > 0 {
		h.left--
	}
	return true, h.left != 0
}

// DropConnections makes the broker close the connection instead of
// answering the next count requests of kind key (a negative count: until
// Remove), on the given nodes or, with none given, on any broker. The
// request is not handled at all: nothing is appended or committed. The
// client sees the connection close (EOF or reset) while waiting for the
// response, and requests pipelined behind it on that connection are lost
// too. DropConnections panics if count is 0.
func (c *Cluster) DropConnections(key kmsg.Key, count int, nodes ...int32) *DropHandle {
	if count == 0 {
		panic("keeltest: DropConnections with a count of 0")
	}
	h := &DropHandle{left: max(count, -1)}
	nodes = slices.Clone(nodes)
	c.kc.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
		if len(nodes) > 0 && !slices.Contains(nodes, c.kc.CurrentNode()) {
			return nil, nil, false
		}
		drop, more := h.take()
		if !drop {
			c.kc.DropControl()
			return nil, nil, false
		}
		if more {
			c.kc.KeepControl()
		}
		h.dropped.add()
		return nil, errDropped, true
	})
	return h
}

// Hold holds requests back, installed by [Cluster.HoldRequests].
type Hold struct {
	c       *Cluster
	held    counter
	resumed chan struct{}
	once    sync.Once
}

// Held returns how many requests have been held so far, including ones
// already released by Resume.
func (h *Hold) Held() int { return h.held.get() }

// Wait blocks until at least n requests have been held or ctx is done,
// returning ctx's error in that case. Use it to know that a request reached
// the broker before acting on it.
func (h *Hold) Wait(ctx context.Context, n int) error { return h.held.wait(ctx, n) }

// Resume releases the held requests, which the broker now handles and
// answers as usual, and stops holding new ones. It is safe to call more
// than once and from several goroutines; Close calls it too.
func (h *Hold) Resume() {
	h.once.Do(func() {
		close(h.resumed)
		h.c.mu.Lock()
		delete(h.c.holds, h)
		h.c.mu.Unlock()
	})
}

func (h *Hold) isResumed() bool {
	select {
	case <-h.resumed:
		return true
	default:
		return false
	}
}

// HoldRequests makes the brokers (the given nodes, or all with none given)
// hold every request of kind key without answering until Resume: the
// client sees a broker that stopped responding while its connections stay
// open. Other connections are unaffected, but a connection is serial, so
// requests sent on the same connection after a held one wait behind it.
//
// On Resume the held requests are handled as if they had just arrived:
// a held Produce is appended then, even if the client has meanwhile given
// up and closed the connection (its answer is then discarded). That is the
// "outcome unknown" case of a real timed-out request. Close resumes every
// hold, so a forgotten Resume cannot hang a test.
func (c *Cluster) HoldRequests(key kmsg.Key, nodes ...int32) *Hold {
	h := &Hold{c: c, resumed: make(chan struct{})}
	nodes = slices.Clone(nodes)

	// Registering under loopMu means Close either sees this hold and
	// resumes it, or has already closed and we start resumed.
	c.loopMu.RLock()
	closed := c.closed
	if !closed {
		c.mu.Lock()
		c.holds[h] = struct{}{}
		c.mu.Unlock()
	}
	c.loopMu.RUnlock()
	if closed {
		h.once.Do(func() { close(h.resumed) })
		return h
	}

	c.kc.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
		if h.isResumed() {
			c.kc.DropControl()
			return nil, nil, false
		}
		if len(nodes) > 0 && !slices.Contains(nodes, c.kc.CurrentNode()) {
			return nil, nil, false
		}
		h.held.add()
		c.sleep(func() { <-h.resumed }) // Close resumes every hold, then waits for this
		// Not handled: the request continues to the broker.
		return nil, nil, false
	})
	return h
}

// StopAnswering makes broker node (or every broker, for node -1) stop
// answering requests of kind key until resume is called; resume may be
// called more than once. It is [Cluster.HoldRequests] for one node; see
// there for what happens to the held requests.
func (c *Cluster) StopAnswering(key kmsg.Key, node int32) (resume func()) {
	if node < 0 {
		return c.HoldRequests(key).Resume
	}
	return c.HoldRequests(key, node).Resume
}
