package keeltest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// errThrottleForward is what Throttle's control returns (closing the
// client's connection) when it could not get the broker's real answer.
var errThrottleForward = errors.New("keeltest: Throttle could not forward the request to the broker")

// ThrottleHandle controls throttling installed by [Cluster.Throttle].
type ThrottleHandle struct {
	throttled counter

	mu      sync.Mutex
	removed bool
	// forwarded holds the encoded bodies of requests the control is
	// forwarding to the broker itself: when they come back through the
	// control, they go on to the broker untouched.
	forwarded map[string]int
}

// Throttled returns how many answers have carried the throttle so far.
func (h *ThrottleHandle) Throttled() int { return h.throttled.get() }

// Remove stops throttling; answers carry the broker's own throttle (0)
// again.
func (h *ThrottleHandle) Remove() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removed = true
}

func (h *ThrottleHandle) isRemoved() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.removed
}

// mark records body as being forwarded; take reports (and forgets) whether
// it is.
func (h *ThrottleHandle) mark(body string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forwarded[body]++
}

func (h *ThrottleHandle) take(body string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.forwarded[body] == 0 {
		return false
	}
	if h.forwarded[body]--; h.forwarded[body] == 0 {
		delete(h.forwarded, body)
	}
	return true
}

// Throttle makes the brokers (the given nodes, or all with none given)
// answer requests of kind key as usual but with throttle_time_ms set to d,
// as a broker enforcing a quota does: the request is handled for real
// (records are appended, fetches return data) and the client is told to
// wait d before its next request to that broker (KIP-219: from Produce v6
// and Fetch v8 on, the broker answers at once and expects the client to
// hold back; kfake itself does not mute the connection). Use it to check
// that a client respects throttling without losing anything.
//
// kfake cannot change its own answers, so the control sends the request to
// the same broker over a connection of its own, lets it through there, and
// writes that answer back with the throttle set. Requests on the client's
// connection behind a throttled one wait for it, as with any slow answer.
// It works on plaintext listeners without SASL only; with TLS or SASL the
// forwarded request is refused and the client's connection closed. d is
// rounded down to milliseconds. Produce requests with acks=0 get no answer
// and pass unthrottled. Throttle panics if that is not positive
// or key's responses carry no throttle.
func (c *Cluster) Throttle(key kmsg.Key, d time.Duration, nodes ...int32) *ThrottleHandle {
	ms := d.Milliseconds()
	if ms <= 0 || ms > 1<<31-1 {
		panic(fmt.Sprintf("keeltest: Throttle with %v: need at least 1ms", d))
	}
	probe := kmsg.RequestForKey(int16(key))
	if probe == nil {
		panic(fmt.Sprintf("keeltest: Throttle of unknown request key %d", key))
	}
	if _, ok := probe.ResponseKind().(kmsg.SetThrottleResponse); !ok {
		panic(fmt.Sprintf("keeltest: Throttle of %s, whose answers carry no throttle", kmsg.NameForKey(int16(key))))
	}
	h := &ThrottleHandle{forwarded: make(map[string]int)}
	nodes = slices.Clone(nodes)
	c.kc.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if h.isRemoved() {
			c.kc.DropControl()
			return nil, nil, false
		}
		body := string(req.AppendTo(nil))
		if h.take(body) {
			return nil, nil, false // our own forward: the broker answers it
		}
		node := c.kc.CurrentNode()
		if len(nodes) > 0 && !slices.Contains(nodes, node) {
			return nil, nil, false
		}
		if p, ok := req.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
			return nil, nil, false // no answer to carry a throttle
		}
		c.kc.KeepControl()
		// Counted under loopMu, so that Close either waits for this
		// forward or has begun and we let the request through as is.
		c.loopMu.RLock()
		if c.closed {
			c.loopMu.RUnlock()
			return nil, nil, false
		}
		c.forwards.Add(1)
		c.loopMu.RUnlock()
		defer c.forwards.Done()
		addr := c.AddrOf(node)
		type result struct {
			resp kmsg.Response
			err  error
		}
		done := make(chan result, 1)
		h.mark(body)
		c.kc.SleepControl(func() {
			resp, err := forward(addr, req)
			done <- result{resp, err}
		})
		var res result
		select {
		case res = <-done:
		default: // the cluster is closing and woke the control early
			res.err = errors.New("the cluster is closing")
		}
		if res.err != nil {
			h.take(body) // it may never have arrived
			return nil, fmt.Errorf("%w: %w", errThrottleForward, res.err), true
		}
		resp := res.resp
		resp.(kmsg.SetThrottleResponse).SetThrottle(int32(ms))
		h.throttled.add()
		return resp, nil, true
	})
	return h
}

// forward sends req to the broker at addr on a connection of its own and
// returns the answer.
func forward(addr string, req kmsg.Request) (kmsg.Response, error) {
	if addr == "" {
		return nil, errors.New("no address for the broker")
	}
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	const corr = 1
	out := kmsg.NewRequestFormatter(kmsg.FormatterClientID("keeltest-throttle")).AppendRequest(nil, req, corr)
	if _, err := conn.Write(out); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 4 || n > 256<<20 {
		return nil, fmt.Errorf("answer of %d bytes", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	if got := int32(binary.BigEndian.Uint32(buf)); got != corr {
		return nil, fmt.Errorf("answer for correlation id %d, sent %d", got, corr)
	}
	buf = buf[4:]
	if req.IsFlexible() && req.Key() != int16(kmsg.ApiVersions) {
		// The response header's tagged fields: keeltest never asks
		// for any, so there are none (a count of 0).
		if len(buf) == 0 || buf[0] != 0 {
			return nil, errors.New("unexpected tagged fields in the response header")
		}
		buf = buf[1:]
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(buf); err != nil {
		return nil, fmt.Errorf("decoding the %s answer: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}
