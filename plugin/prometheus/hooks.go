package prometheus

import (
	"context"
	"strconv"
	"time"

	"github.com/keel-go/keel"
)

// The hook interfaces Metrics implements; a compile-time check.
var (
	_ keel.BrokerConnectHook    = (*Metrics)(nil)
	_ keel.BrokerDisconnectHook = (*Metrics)(nil)
	_ keel.RequestWrittenHook   = (*Metrics)(nil)
	_ keel.ResponseReadHook     = (*Metrics)(nil)
	_ keel.ThrottleHook         = (*Metrics)(nil)
	_ keel.ProduceBatchHook     = (*Metrics)(nil)
	_ keel.ProduceRecordHook    = (*Metrics)(nil)
	_ keel.BufferHook           = (*Metrics)(nil)
	_ keel.FetchBatchHook       = (*Metrics)(nil)
	_ keel.RebalanceHook        = (*Metrics)(nil)
	_ keel.CommitHook           = (*Metrics)(nil)
	_ keel.HandlerFinishHook    = (*Metrics)(nil)
	_ keel.LagHook              = (*Metrics)(nil)
	_ keel.StallHook            = (*Metrics)(nil)
)

func (m *Metrics) OnBrokerConnect(broker string) { m.connects.WithLabelValues(broker).Inc() }

func (m *Metrics) OnBrokerDisconnect(broker string, _ error) {
	m.disconnects.WithLabelValues(broker).Inc()
}

func (m *Metrics) OnRequestWritten(r keel.RequestWritten) {
	if r.Err != nil {
		m.requestErrors.WithLabelValues(r.Broker, r.API).Inc()
	}
}

func (m *Metrics) OnResponseRead(r keel.ResponseRead) {
	m.requestDuration.WithLabelValues(r.Broker, r.API).Observe(r.Latency.Seconds())
}

func (m *Metrics) OnThrottle(broker, api string, d time.Duration) {
	m.throttle.WithLabelValues(broker, api).Add(d.Seconds())
	m.throttleEvents.WithLabelValues(broker, api).Inc()
}

func (m *Metrics) OnProduceBatch(b keel.ProduceBatch) {
	m.producerBatches.WithLabelValues(b.Topic).Inc()
	if b.Attempt > 1 {
		m.producerRetries.WithLabelValues(b.Topic).Inc()
	}
	if b.Err != nil {
		m.producerBatchErr.WithLabelValues(b.Topic).Inc()
	}
	m.producerWire.WithLabelValues(b.Topic).Add(float64(b.CompressedBytes))
}

func (m *Metrics) OnProduceRecord(d keel.Delivery) {
	topic := ""
	if d.Message != nil {
		topic = d.Message.Topic
	}
	ts := m.topics.get(m, topic)
	switch d.Outcome() {
	case keel.Delivered:
		ts.delivered.Inc()
	case keel.NotWritten:
		ts.notWritten.Inc()
	default:
		ts.unknown.Inc()
	}
}

func (m *Metrics) OnBuffered(topic string, records int, bytes int64) {
	ts := m.topics.get(m, topic)
	ts.bufferedRecords.Add(float64(records))
	ts.bufferedBytes.Add(float64(bytes))
}

func (m *Metrics) OnUnbuffered(topic string, records int, bytes int64) {
	ts := m.topics.get(m, topic)
	ts.bufferedRecords.Sub(float64(records))
	ts.bufferedBytes.Sub(float64(bytes))
}

func (m *Metrics) OnFetchBatch(b keel.FetchBatch) {
	if b.Records > 0 {
		if m.partitions {
			m.consumerRecords.WithLabelValues(b.Topic, strconv.Itoa(int(b.Partition))).Add(float64(b.Records))
		} else {
			m.consumerRecords.WithLabelValues(b.Topic).Add(float64(b.Records))
		}
		m.consumerBytes.WithLabelValues(b.Topic).Add(float64(b.Bytes))
	}
	if b.Err != nil || b.HighWatermark < 0 {
		return
	}
	tp := keel.TopicPartition{Topic: b.Topic, Partition: b.Partition}
	s := &m.lagState
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hwm[tp] = b.HighWatermark
	for g, pos := range s.pos {
		if _, ok := pos[tp]; ok {
			m.recomputeLocked(g, tp)
		}
	}
	for g, c := range s.committed {
		if _, ok := c[tp]; ok {
			if _, done := s.pos[g][tp]; !done {
				m.recomputeLocked(g, tp)
			}
		}
	}
}

func (m *Metrics) OnRebalanceStart(keel.RebalanceStart) {}

func (m *Metrics) OnRebalance(r keel.Rebalance) {
	result := "ok"
	if r.Err != nil {
		result = "error"
	}
	m.rebalances.WithLabelValues(r.Group, result).Inc()
	m.rebalanceDuration.WithLabelValues(r.Group).Observe(r.Duration.Seconds())
	if len(r.Revoked)+len(r.Lost) == 0 {
		return
	}
	s := &m.lagState
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tp := range r.Revoked {
		m.forgetLocked(r.Group, tp)
	}
	for _, tp := range r.Lost {
		m.forgetLocked(r.Group, tp)
	}
}

func (m *Metrics) OnCommit(c keel.Commit) {
	m.commitDuration.WithLabelValues(c.Group).Observe(c.Duration.Seconds())
	if c.Err != nil {
		m.commits.WithLabelValues(c.Group, "error").Inc()
		return
	}
	m.commits.WithLabelValues(c.Group, "ok").Inc()
	s := &m.lagState
	s.mu.Lock()
	defer s.mu.Unlock()
	cm := sub(s.committed, c.Group)
	for tp, off := range c.Offsets {
		cm[tp] = off
		m.recomputeLocked(c.Group, tp)
	}
}

func (m *Metrics) OnHandlerFinish(_ context.Context, f keel.HandlerFinish) {
	m.handlerDuration.WithLabelValues(f.Group, f.Topic).Observe(f.Duration.Seconds())
	if f.Err != nil {
		m.handlerErrors.WithLabelValues(f.Group, f.Topic).Inc()
		return
	}
	tp := keel.TopicPartition{Topic: f.Topic, Partition: f.Partition}
	s := &m.lagState
	s.mu.Lock()
	defer s.mu.Unlock()
	p := sub(s.pos, f.Group)
	if f.Offset+1 > p[tp] {
		p[tp] = f.Offset + 1
	}
	m.recomputeLocked(f.Group, tp)
}

// OnLag takes the library's sampled lag (it also covers Poll mode, where
// no handler hook runs).
func (m *Metrics) OnLag(l keel.Lag) {
	s := &m.lagState
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
	m.publishLocked(l.Group, l.TopicPartition, l.Lag, l.CommittedLag)
}

func (m *Metrics) OnStall(st keel.Stall) {
	m.stalls.WithLabelValues(st.Kind.String(), st.Topic).Inc()
}
