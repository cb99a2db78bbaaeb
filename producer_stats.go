package keel

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-go/keel/internal/produce"
)

// outcomeCounts are the producer's report counters (Stats), added once
// per report run, not per record.
type outcomeCounts struct {
	delivered, notWritten, unknown, deliveredBytes atomic.Int64
}

// outcomeTally counts one run of reports before they are added.
type outcomeTally struct {
	delivered, notWritten, unknown, deliveredBytes, held int64
}

// add counts a report failed with err (nil: delivered), which held
// budget held, of a record of size bytes (key and value). The size comes
// from the engine's copy of the record, which the report was just made
// from: read from the report's Message, the caller's
// message, long out of the cache by then, it was a tenth of the
// producer's CPU samples with keyed 100 B records on 64 partitions
// (issue 11).
func (t *outcomeTally) add(err *ProduceError, held, bytes int64) {
	t.held += held
	if err == nil {
		t.delivered++
		t.deliveredBytes += bytes
		return
	}
	if errors.Is(err, ErrOutcomeUnknown) {
		t.unknown++
		return
	}
	t.notWritten++
}

func (c *outcomeCounts) add(t *outcomeTally) {
	if t.delivered > 0 {
		c.delivered.Add(t.delivered)
		c.deliveredBytes.Add(t.deliveredBytes)
	}
	if t.notWritten > 0 {
		c.notWritten.Add(t.notWritten)
	}
	if t.unknown > 0 {
		c.unknown.Add(t.unknown)
	}
}

// Stats returns a snapshot of the producer: records by outcome, what is
// buffered and in flight, and per partition what waits and when it was
// last acknowledged. It takes each partition's lock for a moment; call it
// for metrics (every few seconds), not per record.
func (p *Producer) Stats() ProducerStats {
	c := p.engine.Counters()
	s := ProducerStats{
		Delivered:       p.outcomes.delivered.Load(),
		NotWritten:      p.outcomes.notWritten.Load(),
		OutcomeUnknown:  p.outcomes.unknown.Load(),
		DeliveredBytes:  p.outcomes.deliveredBytes.Load(),
		BufferedRecords: p.ledger.Held(),
		BufferedBytes:   p.ledger.HeldBytes(),
		Batches:         c.Batches,
		Retries:         c.Retries,
		WireBytes:       c.WireBytes,
		InFlight:        c.InFlight,
	}
	stalled := p.stalls.stalledSet()
	p.engine.Partitions(func(pi produce.PartitionInfo) {
		tp := TopicPartition{Topic: pi.Topic, Partition: pi.Partition}
		s.Partitions = append(s.Partitions, ProducePartitionStats{TopicPartition: tp, Buffered: pi.Buffered,
			InFlight: pi.InFlight, Oldest: pi.Oldest, LastAck: pi.LastAck, Stalled: stalled[tp]})
	})
	return s
}

// produceStalls watches a producer's partitions for StallProduce: records
// waiting and nothing acknowledged for StallAfter. One goroutine per
// producer, ticking at a fifth of StallAfter (at most a second); nil when
// StallAfter is off.
type produceStalls struct {
	p     *Producer
	after time.Duration
	quit  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	stalled map[TopicPartition]bool
}

func startProduceStalls(p *Producer) *produceStalls {
	after := p.client.cfg.stallAfter
	if after <= 0 {
		return nil
	}
	s := &produceStalls{p: p, after: after, quit: make(chan struct{}), done: make(chan struct{}), stalled: map[TopicPartition]bool{}}
	go s.run()
	return s
}

// stallTick is how often stalls are looked for: often enough that one is
// reported within a fifth of StallAfter of its start, and at least once a
// second.
func stallTick(after time.Duration) time.Duration {
	return min(max(after/5, 10*time.Millisecond), time.Second)
}

func (s *produceStalls) run() {
	defer close(s.done)
	t := time.NewTicker(stallTick(s.after))
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			s.check(time.Now())
		}
	}
}

// check reports partitions that started stalling since the last check,
// and forgets those that recovered.
func (s *produceStalls) check(now time.Time) {
	var found []Stall
	seen := map[TopicPartition]bool{}
	s.p.engine.Partitions(func(pi produce.PartitionInfo) {
		if pi.Buffered == 0 || pi.Oldest.IsZero() || pi.Partition < 0 {
			return
		}
		since := pi.Oldest
		if pi.LastAck.After(since) {
			since = pi.LastAck
		}
		if now.Sub(since) < s.after {
			return
		}
		tp := TopicPartition{Topic: pi.Topic, Partition: pi.Partition}
		seen[tp] = true
		found = append(found, Stall{Kind: StallProduce, TopicPartition: tp, Offset: -1, For: now.Sub(since), Lag: -1})
	})
	s.mu.Lock()
	var fresh []Stall
	for _, st := range found {
		if !s.stalled[st.TopicPartition] {
			s.stalled[st.TopicPartition] = true
			fresh = append(fresh, st)
		}
	}
	for tp := range s.stalled {
		if !seen[tp] {
			delete(s.stalled, tp)
		}
	}
	s.mu.Unlock()
	for _, st := range fresh {
		s.p.client.logger.Warn("keel: "+st.String(), "partition", st.TopicPartition, "for", st.For)
		s.p.disp.emit(st)
		if h := s.p.hooks; h != nil && len(h.stall) > 0 {
			h.onStall(st)
		}
	}
}

func (s *produceStalls) stalledSet() map[TopicPartition]bool {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[TopicPartition]bool, len(s.stalled))
	for tp := range s.stalled {
		out[tp] = true
	}
	return out
}

// stop ends the watch and waits for its goroutine.
func (s *produceStalls) stop() {
	if s == nil {
		return
	}
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}
