package keel

import (
	"sync"
	"sync/atomic"
)

// consumerEventsBuffer is the room of a consumer's Events(): stalls are
// rare (once per stall), so a small buffer holds what a reader that looks
// now and then has not read yet.
const consumerEventsBuffer = 256

// consumerEvents is a consumer's Events() stream: operational events
// (stalls, and the client's connection events) offered without ever
// making the consumer wait. An event that finds the channel full is
// dropped and counted; the count goes out as EventsDropped once there is
// room again, as in the producer's Events().
type consumerEvents struct {
	ch      chan Event
	mu      sync.Mutex
	closed  bool
	dropped atomic.Uint64
	stop    func() // stops the client's events reaching this stream
}

func newConsumerEvents(client *Client) *consumerEvents {
	e := &consumerEvents{ch: make(chan Event, consumerEventsBuffer)}
	e.stop = client.events.add(e.emit)
	return e
}

// emit offers ev; it is dropped (and counted) when the channel is full.
func (e *consumerEvents) emit(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if n := e.dropped.Load(); n > 0 {
		select {
		case e.ch <- EventsDropped{Count: n}:
			e.dropped.Store(0)
		default:
			e.dropped.Add(1)
			return
		}
	}
	select {
	case e.ch <- ev:
	default:
		e.dropped.Add(1)
	}
}

// close closes the channel once: nothing is emitted after.
func (e *consumerEvents) close() {
	e.stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		close(e.ch)
	}
}
