package otel

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/keel-go/keel"
)

// The hook interfaces Plugin implements; a compile-time check.
var (
	_ keel.BrokerConnectHook    = (*Plugin)(nil)
	_ keel.BrokerDisconnectHook = (*Plugin)(nil)
	_ keel.RequestWrittenHook   = (*Plugin)(nil)
	_ keel.ResponseReadHook     = (*Plugin)(nil)
	_ keel.ThrottleHook         = (*Plugin)(nil)
	_ keel.ProduceBatchHook     = (*Plugin)(nil)
	_ keel.ProduceHook          = (*Plugin)(nil)
	_ keel.ProduceNotTakenHook  = (*Plugin)(nil)
	_ keel.ProduceRecordHook    = (*Plugin)(nil)
	_ keel.BufferHook           = (*Plugin)(nil)
	_ keel.FetchBatchHook       = (*Plugin)(nil)
	_ keel.RebalanceHook        = (*Plugin)(nil)
	_ keel.CommitHook           = (*Plugin)(nil)
	_ keel.HandlerStartHook     = (*Plugin)(nil)
	_ keel.HandlerFinishHook    = (*Plugin)(nil)
	_ keel.LagHook              = (*Plugin)(nil)
	_ keel.StallHook            = (*Plugin)(nil)
)

// bg is the ctx of measurements: hooks have none of their own, and the
// SDK uses it only for exemplars.
var bg = context.Background()

func (p *Plugin) OnBrokerConnect(broker string) {
	p.inst.connects.Add(bg, 1, opt(brokerKey.String(broker)))
}

func (p *Plugin) OnBrokerDisconnect(broker string, _ error) {
	p.inst.disconnects.Add(bg, 1, opt(brokerKey.String(broker)))
}

func (p *Plugin) OnRequestWritten(r keel.RequestWritten) {
	if r.Err != nil {
		p.inst.reqErrors.Add(bg, 1, p.brokerAPI(r.Broker, r.API))
	}
}

func (p *Plugin) OnResponseRead(r keel.ResponseRead) {
	p.inst.reqDuration.Record(bg, r.Latency.Seconds(), p.brokerAPI(r.Broker, r.API))
}

func (p *Plugin) OnThrottle(broker, api string, d time.Duration) {
	o := p.brokerAPI(broker, api)
	p.inst.throttleTime.Add(bg, d.Seconds(), o)
	p.inst.throttles.Add(bg, 1, o)
}

func (p *Plugin) OnProduceBatch(b keel.ProduceBatch) {
	o := p.topic(b.Topic).plain
	p.inst.batches.Add(bg, 1, o)
	if b.Attempt > 1 {
		p.inst.retries.Add(bg, 1, o)
	}
	if b.Err != nil {
		p.inst.batchErrors.Add(bg, 1, o)
	}
	p.inst.wireBytes.Add(bg, int64(b.CompressedBytes), o)
}

// OnProduceRecord ends the record's send span and counts its outcome.
func (p *Plugin) OnProduceRecord(d keel.Delivery) {
	start := p.endSend(d)
	topic := ""
	if d.Message != nil {
		topic = d.Message.Topic
	}
	t := p.topic(topic)
	var rec, snd metric.MeasurementOption
	switch d.Outcome() {
	case keel.Delivered:
		rec, snd = t.delivered, t.sendOK
	case keel.NotWritten:
		rec, snd = t.notWritten, t.sendNotWritten
	default:
		rec, snd = t.unknown, t.sendUnknown
	}
	p.inst.records.Add(bg, 1, rec)
	p.inst.sent.Add(bg, 1, snd)
	if !start.IsZero() {
		p.inst.opDuration.Record(bg, time.Since(start).Seconds(), snd)
	}
}

func (p *Plugin) OnBuffered(topic string, records int, bytes int64) {
	o := p.topic(topic).plain
	p.inst.bufRecords.Add(bg, int64(records), o)
	p.inst.bufBytes.Add(bg, bytes, o)
}

func (p *Plugin) OnUnbuffered(topic string, records int, bytes int64) {
	o := p.topic(topic).plain
	p.inst.bufRecords.Add(bg, -int64(records), o)
	p.inst.bufBytes.Add(bg, -bytes, o)
}

func (p *Plugin) OnFetchBatch(b keel.FetchBatch) {
	if b.Records > 0 {
		o := p.fetched(b.Topic, b.Partition)
		p.inst.consumed.Add(bg, int64(b.Records), o)
		p.inst.consRecords.Add(bg, int64(b.Records), o)
		p.inst.consBytes.Add(bg, b.Bytes, o)
	}
	if b.Err == nil && b.HighWatermark >= 0 {
		p.lag.highWatermark(keel.TopicPartition{Topic: b.Topic, Partition: b.Partition}, b.HighWatermark)
	}
}

func (p *Plugin) OnRebalanceStart(keel.RebalanceStart) {}

func (p *Plugin) OnRebalance(r keel.Rebalance) {
	kv := []attribute.KeyValue{semconv.MessagingConsumerGroupName(r.Group)}
	p.inst.rebalanceDuration.Record(bg, r.Duration.Seconds(), opt(kv...))
	if r.Err != nil {
		kv = append(kv, semconv.ErrorTypeKey.String(errorType(r.Err)))
	}
	p.inst.rebalances.Add(bg, 1, opt(kv...))
	for _, tp := range r.Revoked {
		p.lag.forget(r.Group, tp)
	}
	for _, tp := range r.Lost {
		p.lag.forget(r.Group, tp)
	}
}

func (p *Plugin) OnCommit(c keel.Commit) {
	kv := []attribute.KeyValue{semconv.MessagingConsumerGroupName(c.Group)}
	p.inst.commitDuration.Record(bg, c.Duration.Seconds(), opt(kv...))
	if c.Err != nil {
		p.inst.commits.Add(bg, 1, opt(append(kv, semconv.ErrorTypeKey.String(errorType(c.Err)))...))
		return
	}
	p.inst.commits.Add(bg, 1, opt(kv...))
	for tp, off := range c.Offsets {
		p.lag.commit(c.Group, tp, off)
	}
}

// OnHandlerFinish ends the process span and measures the call.
func (p *Plugin) OnHandlerFinish(ctx context.Context, f keel.HandlerFinish) {
	endProcess(ctx, f.Err)
	if f.Err != nil {
		kv := append(processAttrs(f.Group, f.Topic), semconv.ErrorTypeKey.String(errorType(f.Err)))
		p.inst.processDuration.Record(bg, f.Duration.Seconds(), opt(kv...))
		return
	}
	o := p.attrs.groups.get(groupTopic{f.Group, f.Topic}).(metric.MeasurementOption)
	p.inst.processDuration.Record(bg, f.Duration.Seconds(), o)
	p.lag.processed(f.Group, keel.TopicPartition{Topic: f.Topic, Partition: f.Partition}, f.Offset+1)
}

// OnLag takes the library's sampled lag (it covers Poll mode, where no
// handler hook runs).
func (p *Plugin) OnLag(l keel.Lag) { p.lag.set(l) }

func (p *Plugin) OnStall(st keel.Stall) {
	kv := []attribute.KeyValue{stallKindKey.String(st.Kind.String()), semconv.MessagingDestinationName(st.Topic)}
	if st.Group != "" {
		kv = append(kv, semconv.MessagingConsumerGroupName(st.Group))
	}
	p.inst.stalls.Add(bg, 1, opt(kv...))
}
