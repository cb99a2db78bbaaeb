package otel_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keel-go/keel"
	kotel "github.com/keel-go/keel/plugin/otel"
)

// TestMetricsCountRecords produces known counts per partition and
// consumes them all: the record counters, the handler histogram's count
// and the per-partition consumed counters must equal those counts
// exactly, the buffer gauges must be back at 0, and once the commits land
// the committed lag of every partition must be 0.
func TestMetricsCountRecords(t *testing.T) {
	cl := keeltestCluster(t, "metered", 3)
	ctx := testCtx(t, 2*time.Minute)
	tel := newTelemetry(t)
	c := newClient(t, cl, tel.plugin(t, kotel.PartitionAttributes()))

	counts := []int{7, 10, 13}
	total := 0
	p, err := keel.NewProducer(c, keel.ManualPartitioner())
	if err != nil {
		t.Fatal(err)
	}
	for part, n := range counts {
		for i := range n {
			if _, err := p.Send(ctx, &keel.Message{Topic: "metered", Partition: int32(part), Value: []byte(fmt.Sprint(part, "-", i))}); err != nil {
				t.Fatal(err)
			}
			total++
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	consume(t, ctx, c, "counting", "metered", total)

	topic := map[string]string{"messaging.destination.name": "metered"}
	rm := tel.collect(t)
	expect := func(name string, want map[string]string, n int64) {
		t.Helper()
		if got, ok := total64(rm, name, want); !ok || got != n {
			t.Errorf("%s%v = %d (present %v), want %d", name, want, got, ok, n)
		}
	}
	expect("keel.producer.records", map[string]string{"messaging.destination.name": "metered", "keel.outcome": "delivered"}, int64(total))
	expect("messaging.client.sent.messages", topic, int64(total))
	expect("messaging.client.operation.duration", topic, int64(total))
	expect("messaging.client.consumed.messages", map[string]string{"messaging.destination.name": "metered", "messaging.operation.name": "poll", "messaging.system": "kafka"}, int64(total))
	expect("messaging.process.duration", map[string]string{"messaging.destination.name": "metered", "messaging.consumer.group.name": "counting"}, int64(total))
	expect("keel.producer.buffered.records", topic, 0)
	for part, n := range counts {
		expect("keel.consumer.records", map[string]string{"messaging.destination.name": "metered", "messaging.destination.partition.id": fmt.Sprint(part)}, int64(n))
	}
	for _, failed := range []string{"not_written", "outcome_unknown"} {
		if got, _ := total64(rm, "keel.producer.records", map[string]string{"keel.outcome": failed}); got != 0 {
			t.Errorf("%s records = %d, want 0", failed, got)
		}
		if got, _ := total64(rm, "messaging.client.sent.messages", map[string]string{"error.type": failed}); got != 0 {
			t.Errorf("sent messages with error.type %s = %d, want 0", failed, got)
		}
	}
	if got, ok := total64(rm, "keel.broker.connects", nil); !ok || got < 1 {
		t.Errorf("broker connects = %d, want at least 1", got)
	}
	for _, api := range []string{"Produce", "Fetch", "Metadata"} {
		if got, ok := total64(rm, "keel.broker.request.duration", map[string]string{"keel.api": api}); !ok || got < 1 {
			t.Errorf("%s request durations = %d, want at least 1", api, got)
		}
	}
	if got, ok := total64(rm, "keel.group.rebalances", map[string]string{"messaging.consumer.group.name": "counting"}); !ok || got < 1 {
		t.Errorf("rebalances = %d, want at least 1", got)
	}

	// The consumer committed every record before Run returned (Close
	// commits); the committed lag is the high watermark minus that.
	for part := range counts {
		want := map[string]string{"messaging.consumer.group.name": "counting", "messaging.destination.name": "metered", "messaging.destination.partition.id": fmt.Sprint(part)}
		got, ok := total64(rm, "keel.consumer.committed_lag", want)
		if !ok || got != 0 {
			t.Errorf("committed lag of metered/%d = %d (present %v), want 0", part, got, ok)
		}
		if got, ok := total64(rm, "keel.consumer.lag", want); !ok || got != 0 {
			t.Errorf("lag of metered/%d = %d (present %v), want 0", part, got, ok)
		}
	}
}

// total64 is total with a nil filter allowed.
func total64(rm metricdataRM, name string, want map[string]string) (int64, bool) {
	if want == nil {
		want = map[string]string{}
	}
	return total(rm, name, want)
}

// TestNoTracingKeepsHeaders: with NoTracing, records get no headers and
// handlers' ctx no span; metrics still count.
func TestNoTracingKeepsHeaders(t *testing.T) {
	cl := keeltestCluster(t, "plain", 1)
	ctx := testCtx(t, time.Minute)
	tel := newTelemetry(t)
	c := newClient(t, cl, tel.plugin(t, kotel.NoTracing()))
	p, err := keel.NewProducer(c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := p.Send(ctx, &keel.Message{Topic: "plain", Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close(ctx)
	for v, h := range consume(t, ctx, c, "untraced", "plain", 5) {
		if len(h.traceparent) != 0 || h.span.IsValid() {
			t.Errorf("record %s: traceparent %q, handler span %v; want none with NoTracing", v, h.traceparent, h.span)
		}
	}
	if n := len(tel.spans.GetSpans()); n != 0 {
		t.Errorf("%d spans with NoTracing, want 0", n)
	}
	rm := tel.collect(t)
	if got, _ := total64(rm, "keel.producer.records", nil); got != 5 {
		t.Errorf("produced records = %d, want 5", got)
	}
	if got, ok := total64(rm, "messaging.client.operation.duration", nil); ok && got != 0 {
		t.Errorf("%d send durations with NoTracing alone, want none", got)
	}
}

// TestSendDurationsWithoutTracing: NoTracing with SendDurations measures
// every record's send, failed ones with their error.type. The broker
// never answers: Close reports the records.
func TestSendDurationsWithoutTracing(t *testing.T) {
	tel := newTelemetry(t)
	c, err := keel.NewClient(keel.SeedBrokers(silentBroker(t)), keel.WithHooks(tel.plugin(t, kotel.NoTracing(), kotel.SendDurations())))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Second)
	defer c.Close(ctx)
	p, err := keel.NewProducer(c)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]*keel.Message, 3)
	for i := range msgs {
		msgs[i] = &keel.Message{Topic: "t", Value: []byte("v")}
		p.ProduceFunc(ctx, msgs[i], func(keel.Delivery) {})
	}
	closeCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	p.Close(closeCtx)
	rm := tel.collect(t)
	failed, _ := total64(rm, "messaging.client.operation.duration", map[string]string{"error.type": "not_written"})
	unknown, _ := total64(rm, "messaging.client.operation.duration", map[string]string{"error.type": "outcome_unknown"})
	if failed+unknown != 3 {
		t.Errorf("send durations of failed records = %d not written + %d unknown, want 3", failed, unknown)
	}
	sentFailed, _ := total64(rm, "messaging.client.sent.messages", map[string]string{"error.type": "not_written"})
	sentUnknown, _ := total64(rm, "messaging.client.sent.messages", map[string]string{"error.type": "outcome_unknown"})
	if sentFailed != failed || sentUnknown != unknown {
		t.Errorf("sent messages with error.type: %d not written, %d unknown; want the durations' %d and %d", sentFailed, sentUnknown, failed, unknown)
	}
	if got, _ := total64(rm, "keel.producer.records", map[string]string{"keel.outcome": "delivered"}); got != 0 {
		t.Errorf("delivered records = %d, want 0", got)
	}
	if got, _ := total64(rm, "keel.producer.buffered.records", nil); got != 0 {
		t.Errorf("buffered records after every report = %d, want 0", got)
	}
	for _, m := range msgs {
		if len(m.Headers) != 0 {
			t.Errorf("headers %v with NoTracing, want none", m.Headers)
		}
	}
}

// TestCloseUnregistersCallbacks: after Close, a collection no longer
// reports the observed instruments (a program making a plugin per
// short-lived client must not pile up callbacks).
func TestCloseUnregistersCallbacks(t *testing.T) {
	tel := newTelemetry(t)
	p := tel.plugin(t)
	p.OnBuffered("t", 2, 100)
	if got, ok := total64(tel.collect(t), "keel.producer.buffered.records", nil); !ok || got != 2 {
		t.Fatalf("buffered records = %d (present %v), want 2", got, ok)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got, ok := total64(tel.collect(t), "keel.producer.buffered.records", nil); ok {
		t.Errorf("buffered records still reported after Close: %d", got)
	}
}
