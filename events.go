package keel

import (
	"sync"
	"time"
)

// Event is something that happened in a producer or its client that an
// operator may want to see. Events() delivers them; the concrete types are
// listed below. Switch on the type:
//
//	switch ev := ev.(type) {
//	case keel.DeliveryEvent:  // a record produced with no delivery target
//	case keel.BrokerDisconnected:
//	case keel.EventsDropped:  // the stream was full
//	}
type Event interface{ isEvent() }

// DeliveryEvent reports a record produced without its own delivery target.
// These are never dropped.
type DeliveryEvent struct{ Delivery }

// BrokerConnected: a connection to a broker was established.
type BrokerConnected struct{ Broker string }

// BrokerDisconnected: a connection to a broker closed.
type BrokerDisconnected struct {
	Broker string
	Err    error
}

// AuthFailed: SASL authentication with a broker failed.
type AuthFailed struct {
	Broker string
	Err    error
}

// Throttled: a broker throttled this client (quotas) for Duration.
type Throttled struct {
	Broker   string
	API      string
	Duration time.Duration
}

// MetadataChanged: brokers, partitions or leaders changed.
type MetadataChanged struct {
	Brokers int
	Topics  int
}

// Warning: keel is working around trouble (a retry, an epoch bump).
type Warning struct {
	Message string
	Err     error
}

// ErrorEvent: something failed that is not tied to one record.
type ErrorEvent struct{ Err error }

// EventsDropped: Count operational events were dropped because Events()
// was full. Deliveries are never dropped.
type EventsDropped struct{ Count uint64 }

func (DeliveryEvent) isEvent()      {}
func (BrokerConnected) isEvent()    {}
func (BrokerDisconnected) isEvent() {}
func (AuthFailed) isEvent()         {}
func (Throttled) isEvent()          {}
func (MetadataChanged) isEvent()    {}
func (Warning) isEvent()            {}
func (ErrorEvent) isEvent()         {}
func (EventsDropped) isEvent()      {}

// listeners fans client-level events out to the producers (and later the
// consumers) of a client.
type listeners struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(Event)
}

func (l *listeners) add(fn func(Event)) (remove func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fns == nil {
		l.fns = make(map[int]func(Event))
	}
	id := l.next
	l.next++
	l.fns[id] = fn
	return func() {
		l.mu.Lock()
		delete(l.fns, id)
		l.mu.Unlock()
	}
}

func (l *listeners) emit(ev Event) {
	l.mu.Lock()
	fns := make([]func(Event), 0, len(l.fns))
	for _, fn := range l.fns {
		fns = append(fns, fn)
	}
	l.mu.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
}
