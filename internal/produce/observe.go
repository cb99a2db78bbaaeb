package produce

import (
	"sync/atomic"
	"time"
)

// Batch describes one batch written in a produce request, for
// Config.OnBatch.
type Batch struct {
	Broker            string
	Topic             string
	Partition         int32
	Records           int
	UncompressedBytes int
	CompressedBytes   int
	Attempt           int
	Err               error
}

// Counters are the engine's running totals (Engine.Counters).
type Counters struct {
	Batches   int64 // written in produce requests
	Retries   int64 // of those, resends
	WireBytes int64 // their bytes on the wire
	InFlight  int   // batches written awaiting an answer
}

// counters is Counters as the engine keeps them: atomics added per batch
// written, never per record.
type counters struct {
	batches, retries, wireBytes atomic.Int64
}

// noteWritten counts the batches of a request just written and tells
// Config.OnBatch about each. It runs on the sink's drain goroutine right
// after the write, before the request is queued for its answer: the
// batches are the request's and nothing else changes them yet.
func (s *sink) noteWritten(addr string, batches []*batch, err error) {
	e := s.e
	var wire, retries int64
	for _, b := range batches {
		wire += int64(b.wireLen())
		if b.attempts > 1 {
			retries++
		}
	}
	e.obs.batches.Add(int64(len(batches)))
	e.obs.retries.Add(retries)
	e.obs.wireBytes.Add(wire)
	if e.cfg.OnBatch == nil {
		return
	}
	for _, b := range batches {
		e.cfg.OnBatch(Batch{Broker: addr, Topic: b.p.t.name, Partition: b.p.id, Records: b.count(),
			UncompressedBytes: b.size, CompressedBytes: b.wireLen(), Attempt: b.attempts, Err: err})
	}
}

// Counters returns the engine's running totals.
func (e *Engine) Counters() Counters {
	c := Counters{Batches: e.obs.batches.Load(), Retries: e.obs.retries.Load(), WireBytes: e.obs.wireBytes.Load()}
	for _, s := range e.allSinks() {
		s.mu.Lock()
		for _, r := range s.inflight {
			c.InFlight += len(r.batches)
		}
		s.mu.Unlock()
	}
	return c
}

// PartitionInfo is one partition's state, for Engine.Partitions.
type PartitionInfo struct {
	Topic     string
	Partition int32
	Buffered  int       // records in its batches, not reported yet
	InFlight  int       // batches awaiting an answer
	Oldest    time.Time // its oldest batch's opening; zero when none
	LastAck   time.Time // its last acknowledged batch; zero if never
}

// Partitions calls fn for every partition the engine knows, each under
// nothing but its own lock for the moment it is read. Records still
// waiting for their topic's metadata are reported as partition -1.
func (e *Engine) Partitions(fn func(PartitionInfo)) {
	for _, t := range e.allTopics() {
		t.mu.Lock()
		parts := t.parts
		waiting := len(t.waiting)
		t.mu.Unlock()
		if waiting > 0 {
			fn(PartitionInfo{Topic: t.name, Partition: -1, Buffered: waiting})
		}
		for _, p := range parts {
			p.mu.Lock()
			pi := PartitionInfo{Topic: t.name, Partition: p.id, InFlight: p.inflight}
			for _, b := range p.batches {
				pi.Buffered += b.recs.Len()
			}
			if len(p.batches) > 0 {
				pi.Oldest = e.at(p.batches[0].created)
			}
			if at := p.lastAck; at != 0 {
				pi.LastAck = e.at(at)
			}
			p.mu.Unlock()
			fn(pi)
		}
	}
}

// HeldBytes is the byte budget held now (Held is the records).
func (l *Ledger) HeldBytes() int64 { return l.bytes.Load() }
