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
	p.inst.connects.Add(bg, 1, opt(brokerKey.String(broker)).add...)
}

func (p *Plugin) OnBrokerDisconnect(broker string, _ error) {
	p.inst.disconnects.Add(bg, 1, opt(brokerKey.String(broker)).add...)
}

func (p *Plugin) OnRequestWritten(r keel.RequestWritten) {
	if r.Err != nil {
		p.inst.reqErrors.Add(bg, 1, p.brokerAPI(r.Broker, r.API).add...)
	}
}

func (p *Plugin) OnResponseRead(r keel.ResponseRead) {
	p.inst.reqDuration.Record(bg, r.Latency.Seconds(), p.brokerAPI(r.Broker, r.API).rec...)
}

func (p *Plugin) OnThrottle(broker, api string, d time.Duration) {
	o := p.brokerAPI(broker, api)
	p.inst.throttleTime.Add(bg, d.Seconds(), o.add...)
	p.inst.throttles.Add(bg, 1, o.add...)
}

func (p *Plugin) OnProduceBatch(b keel.ProduceBatch) {
	o := p.topic(b.Topic).plain
	p.inst.batches.Add(bg, 1, o.add...)
	if b.Attempt > 1 {
		p.inst.retries.Add(bg, 1, o.add...)
	}
	if b.Err != nil {
		p.inst.batchErrors.Add(bg, 1, o.add...)
	}
	p.inst.wireBytes.Add(bg, int64(b.CompressedBytes), o.add...)
}

// OnProduceRecord ends the record's send span and counts its outcome.
func (p *Plugin) OnProduceRecord(d keel.Delivery) {
	start := p.endSend(d)
	topic := ""
	if d.Message != nil {
		topic = d.Message.Topic
	}
	t := p.topic(topic)
	var snd *measure
	switch d.Outcome() {
	case keel.Delivered:
		t.delivers.Add(1)
		snd = t.sendOK
	case keel.NotWritten:
		t.notWrittens.Add(1)
		snd = t.sendNotWritten
	default:
		t.unknowns.Add(1)
		snd = t.sendUnknown
	}
	if !start.IsZero() {
		p.inst.opDuration.Record(bg, time.Since(start).Seconds(), snd.rec...)
	}
}

func (p *Plugin) OnBuffered(topic string, records int, bytes int64) {
	t := p.topic(topic)
	t.bufRecords.Add(int64(records))
	t.bufBytes.Add(bytes)
}

func (p *Plugin) OnUnbuffered(topic string, records int, bytes int64) {
	t := p.topic(topic)
	t.bufRecords.Add(-int64(records))
	t.bufBytes.Add(-bytes)
}

// observeProduced reports the per-topic record counts kept in atomics.
func (p *Plugin) observeProduced(_ context.Context, o metric.Observer) error {
	p.attrs.topics.m.Range(func(_, v any) bool {
		t := v.(*topicOpts)
		for _, c := range []struct {
			n         int64
			rec, sent metric.ObserveOption
		}{
			{t.delivers.Load(), t.delivered.obs, t.sendOK.obs},
			{t.notWrittens.Load(), t.notWritten.obs, t.sendNotWritten.obs},
			{t.unknowns.Load(), t.unknown.obs, t.sendUnknown.obs},
		} {
			o.ObserveInt64(p.inst.records, c.n, c.rec)
			o.ObserveInt64(p.inst.sent, c.n, c.sent)
		}
		o.ObserveInt64(p.inst.bufRecords, t.bufRecords.Load(), t.plain.obs)
		o.ObserveInt64(p.inst.bufBytes, t.bufBytes.Load(), t.plain.obs)
		return true
	})
	return nil
}

func (p *Plugin) OnFetchBatch(b keel.FetchBatch) {
	if b.Records > 0 {
		o := p.fetched(b.Topic, b.Partition)
		p.inst.consumed.Add(bg, int64(b.Records), o.add...)
		p.inst.consRecords.Add(bg, int64(b.Records), o.add...)
		p.inst.consBytes.Add(bg, b.Bytes, o.add...)
	}
	if b.Err == nil && b.HighWatermark >= 0 {
		p.lag.highWatermark(keel.TopicPartition{Topic: b.Topic, Partition: b.Partition}, b.HighWatermark)
	}
}

func (p *Plugin) OnRebalanceStart(keel.RebalanceStart) {}

func (p *Plugin) OnRebalance(r keel.Rebalance) {
	kv := []attribute.KeyValue{semconv.MessagingConsumerGroupName(r.Group)}
	p.inst.rebalanceDuration.Record(bg, r.Duration.Seconds(), opt(kv...).rec...)
	if r.Err != nil {
		kv = append(kv, semconv.ErrorTypeKey.String(errorType(r.Err)))
	}
	p.inst.rebalances.Add(bg, 1, opt(kv...).add...)
	for _, tp := range r.Revoked {
		p.lag.forget(r.Group, tp)
	}
	for _, tp := range r.Lost {
		p.lag.forget(r.Group, tp)
	}
}

func (p *Plugin) OnCommit(c keel.Commit) {
	kv := []attribute.KeyValue{semconv.MessagingConsumerGroupName(c.Group)}
	p.inst.commitDuration.Record(bg, c.Duration.Seconds(), opt(kv...).rec...)
	if c.Err != nil {
		p.inst.commits.Add(bg, 1, opt(append(kv, semconv.ErrorTypeKey.String(errorType(c.Err)))...).add...)
		return
	}
	p.inst.commits.Add(bg, 1, opt(kv...).add...)
	for tp, off := range c.Offsets {
		p.lag.commit(c.Group, tp, off)
	}
}

// OnHandlerFinish ends the process span and measures the call.
func (p *Plugin) OnHandlerFinish(ctx context.Context, f keel.HandlerFinish) {
	endProcess(ctx, f.Err)
	if f.Err != nil {
		kv := append(processAttrs(f.Group, f.Topic), semconv.ErrorTypeKey.String(errorType(f.Err)))
		p.inst.processDuration.Record(bg, f.Duration.Seconds(), opt(kv...).rec...)
		return
	}
	o := p.attrs.groups.get(groupTopic{f.Group, f.Topic}).(*measure)
	p.inst.processDuration.Record(bg, f.Duration.Seconds(), o.rec...)
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
	p.inst.stalls.Add(bg, 1, opt(kv...).add...)
}
