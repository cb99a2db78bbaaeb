package otel

import (
	"context"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/keel-go/keel"
)

// lagState keeps what the lag gauges are computed from at collection:
// each partition's high watermark (fetch answers), and per group the next
// offset to process (handler calls) and the committed offset (commits).
// The library's sampled LagHook sets all three where it is called; the
// other hooks keep the gauges right in Run mode without it. Revoked and
// lost partitions are forgotten, so their series stop being exported.
type lagState struct {
	mu        sync.Mutex
	hwm       map[keel.TopicPartition]int64
	pos       map[string]map[keel.TopicPartition]int64
	committed map[string]map[keel.TopicPartition]int64
}

func (s *lagState) init() {
	s.hwm = map[keel.TopicPartition]int64{}
	s.pos = map[string]map[keel.TopicPartition]int64{}
	s.committed = map[string]map[keel.TopicPartition]int64{}
}

func sub(m map[string]map[keel.TopicPartition]int64, g string) map[keel.TopicPartition]int64 {
	x := m[g]
	if x == nil {
		x = map[keel.TopicPartition]int64{}
		m[g] = x
	}
	return x
}

func (s *lagState) highWatermark(tp keel.TopicPartition, hwm int64) {
	s.mu.Lock()
	s.hwm[tp] = hwm
	s.mu.Unlock()
}

// processed moves group's position on tp to next, never back (parallel
// handlers of one partition finish out of order).
func (s *lagState) processed(group string, tp keel.TopicPartition, next int64) {
	s.mu.Lock()
	if p := sub(s.pos, group); next > p[tp] {
		p[tp] = next
	}
	s.mu.Unlock()
}

func (s *lagState) commit(group string, tp keel.TopicPartition, off int64) {
	s.mu.Lock()
	sub(s.committed, group)[tp] = off
	s.mu.Unlock()
}

func (s *lagState) set(l keel.Lag) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.HighWatermark >= 0 {
		s.hwm[l.TopicPartition] = l.HighWatermark
	}
	if l.Position >= 0 {
		sub(s.pos, l.Group)[l.TopicPartition] = l.Position
	}
	if l.Committed >= 0 {
		sub(s.committed, l.Group)[l.TopicPartition] = l.Committed
	}
}

func (s *lagState) forget(group string, tp keel.TopicPartition) {
	s.mu.Lock()
	delete(s.pos[group], tp)
	delete(s.committed[group], tp)
	s.mu.Unlock()
}

// lagKey is one exported lag series: a group's partition, or its topic
// (partition -1) without PartitionAttributes.
type lagKey struct {
	group string
	tp    keel.TopicPartition
}

// observeLag is the gauges' callback: it reports each group's lag per
// partition (or summed per topic) where the high watermark and the
// position (or committed offset) are both known.
func (p *Plugin) observeLag(_ context.Context, o metric.Observer) error {
	s := &p.lag
	lag, clag := map[lagKey]int64{}, map[lagKey]int64{}
	add := func(out map[lagKey]int64, from map[string]map[keel.TopicPartition]int64) {
		for g, offs := range from {
			for tp, at := range offs {
				end, ok := s.hwm[tp]
				if !ok || at < 0 {
					continue
				}
				k := lagKey{g, tp}
				if !p.partitions {
					k.tp.Partition = -1
				}
				out[k] += max(end-at, 0)
			}
		}
	}
	s.mu.Lock()
	add(lag, s.pos)
	add(clag, s.committed)
	s.mu.Unlock()
	for k, v := range lag {
		o.ObserveInt64(p.inst.lag, v, metric.WithAttributeSet(k.set()))
	}
	for k, v := range clag {
		o.ObserveInt64(p.inst.committedLag, v, metric.WithAttributeSet(k.set()))
	}
	return nil
}

func (k lagKey) set() attribute.Set {
	kv := []attribute.KeyValue{semconv.MessagingSystemKafka, semconv.MessagingDestinationName(k.tp.Topic)}
	if k.group != "" {
		kv = append(kv, semconv.MessagingConsumerGroupName(k.group))
	}
	if k.tp.Partition >= 0 {
		kv = append(kv, semconv.MessagingDestinationPartitionID(strconv.Itoa(int(k.tp.Partition))))
	}
	return attribute.NewSet(kv...)
}
