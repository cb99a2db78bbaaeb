package otel_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
	kotel "github.com/keel-go/keel/plugin/otel"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// telemetry is an in-memory tracer and meter provider, read by the test.
type telemetry struct {
	spans  *tracetest.InMemoryExporter
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newTelemetry(t *testing.T) *telemetry {
	tel := &telemetry{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	tel.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(tel.spans))
	tel.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	t.Cleanup(func() {
		tel.tp.Shutdown(context.Background())
		tel.mp.Shutdown(context.Background())
	})
	return tel
}

func (tel *telemetry) plugin(t *testing.T, opts ...kotel.Option) *kotel.Plugin {
	t.Helper()
	p, err := kotel.New(append([]kotel.Option{kotel.TracerProvider(tel.tp), kotel.MeterProvider(tel.mp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// spansNamed returns the ended spans called name.
func (tel *telemetry) spansNamed(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range tel.spans.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// collect reads every metric once.
func (tel *telemetry) collect(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// find returns metric name's data.
func find(rm metricdata.ResourceMetrics, name string) (metricdata.Aggregation, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m.Data, true
			}
		}
	}
	return nil, false
}

// matches reports whether set holds every key=value of want.
func matches(set attribute.Set, want map[string]string) bool {
	for k, v := range want {
		got, ok := set.Value(attribute.Key(k))
		if !ok || got.Emit() != v {
			return false
		}
	}
	return true
}

// total sums metric name's int64 points (sum or gauge) whose attributes
// hold want, and for a histogram its counts; ok false when no point
// matched.
func total(rm metricdata.ResourceMetrics, name string, want map[string]string) (n int64, ok bool) {
	data, found := find(rm, name)
	if !found {
		return 0, false
	}
	switch d := data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, want) {
				n, ok = n+p.Value, true
			}
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, want) {
				n, ok = n+p.Value, true
			}
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, want) {
				n, ok = n+int64(p.Count), true
			}
		}
	}
	return n, ok
}

func newClient(t *testing.T, cl *keeltest.Cluster, hooks ...any) *keel.Client {
	t.Helper()
	opts := []keel.ClientOption{keel.SeedBrokers(cl.Addrs()...)}
	if len(hooks) > 0 {
		opts = append(opts, keel.WithHooks(hooks...))
	}
	c, err := keel.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

// handled is what a handler saw of one record.
type handled struct {
	span        trace.SpanContext // the span in the handler's ctx
	traceparent []string          // the record's traceparent headers
}

// consume runs a group consumer on topic until want records were
// handled, and returns what the handler saw by record value. A record
// handled twice fails the test.
func consume(t *testing.T, ctx context.Context, c *keel.Client, group, topic string, want int, opts ...keel.GroupOption) map[string]handled {
	t.Helper()
	g, err := keel.NewGroupConsumer(c, group, []string{topic}, append([]keel.GroupOption{
		keel.SessionTimeout(6 * time.Second), keel.HeartbeatInterval(200 * time.Millisecond),
		keel.ResetOffset(keel.ResetEarliest), keel.AutoCommitInterval(100 * time.Millisecond),
		keel.FetchMaxWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]handled{}
	all := make(chan struct{})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- g.Run(runCtx, keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
			h := handled{span: trace.SpanContextFromContext(ctx)}
			for _, hd := range m.Headers {
				if hd.Key == "traceparent" {
					h.traceparent = append(h.traceparent, string(hd.Value))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if _, dup := seen[string(m.Value)]; dup {
				t.Errorf("record %q handled twice", m.Value)
			}
			seen[string(m.Value)] = h
			if len(seen) == want {
				close(all)
			}
			return nil
		}))
	}()
	select {
	case <-all:
	case <-ctx.Done():
		t.Fatalf("handled %d of %d records before the test's deadline", len(seen), want)
	}
	stop()
	if err := <-done; err != nil && ctx.Err() == nil && runCtx.Err() == nil {
		t.Errorf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return seen
}

// TestProduceAndProcessShareTrace produces records, each under a span of
// its own, and consumes them: every record's process span must be a child
// of (and linked to) the send span that wrote it, in the same trace, and
// the handler's ctx must carry the process span. Each record carries one
// traceparent header, the send span's.
func TestProduceAndProcessShareTrace(t *testing.T) {
	cl := keeltest.NewCluster(t, keeltest.Topic("orders", 3))
	ctx := testCtx(t, 2*time.Minute)
	tel := newTelemetry(t)
	c := newClient(t, cl, tel.plugin(t))
	tracer := tel.tp.Tracer("test")

	const n = 30
	p, err := keel.NewProducer(c)
	if err != nil {
		t.Fatal(err)
	}
	jobs := map[string]trace.SpanContext{} // value -> the caller's span
	for i := range n {
		v := fmt.Sprint("rec-", i)
		jctx, job := tracer.Start(ctx, "job")
		jobs[v] = job.SpanContext()
		if _, err := p.Send(jctx, &keel.Message{Topic: "orders", Key: []byte(v), Value: []byte(v)}); err != nil {
			t.Fatalf("send %s: %v", v, err)
		}
		job.End()
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	sends := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range tel.spansNamed("send orders") {
		sends[s.SpanContext.SpanID()] = s
	}
	if len(sends) != n {
		t.Fatalf("%d send spans ended, want %d", len(sends), n)
	}
	for _, s := range sends {
		if s.SpanKind != trace.SpanKindProducer {
			t.Errorf("send span kind %v, want producer", s.SpanKind)
		}
		if !s.Parent.IsValid() {
			t.Errorf("send span %v has no parent; want the caller's job span", s.SpanContext.SpanID())
		}
		if s.Status.Code != 0 {
			t.Errorf("send span of a delivered record has status %v %q", s.Status.Code, s.Status.Description)
		}
		a := attribute.NewSet(s.Attributes...)
		if !matches(a, map[string]string{"messaging.system": "kafka", "messaging.destination.name": "orders", "messaging.operation.type": "send"}) {
			t.Errorf("send span attributes %v", s.Attributes)
		}
		if _, ok := a.Value("messaging.kafka.offset"); !ok {
			t.Errorf("send span of a delivered record has no offset: %v", s.Attributes)
		}
	}

	seen := consume(t, ctx, c, "traced", "orders", n)

	var processes []tracetest.SpanStub
	deadline := time.Now().Add(30 * time.Second) // the spans end as each handler call returns
	for processes = tel.spansNamed("process orders"); len(processes) < n && time.Now().Before(deadline); processes = tel.spansNamed("process orders") {
		time.Sleep(20 * time.Millisecond)
	}
	if len(processes) != n {
		t.Fatalf("%d process spans ended, want %d", len(processes), n)
	}
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range processes {
		byID[s.SpanContext.SpanID()] = s
	}
	for v, h := range seen {
		proc, ok := byID[h.span.SpanID()]
		if !ok {
			t.Errorf("record %s: the handler's ctx span %v is not a process span", v, h.span.SpanID())
			continue
		}
		send, ok := sends[proc.Parent.SpanID()]
		if !ok {
			t.Errorf("record %s: process span's parent %v is no send span", v, proc.Parent.SpanID())
			continue
		}
		if proc.SpanContext.TraceID() != send.SpanContext.TraceID() || send.SpanContext.TraceID() != jobs[v].TraceID() {
			t.Errorf("record %s: traces differ: job %v, send %v, process %v", v, jobs[v].TraceID(), send.SpanContext.TraceID(), proc.SpanContext.TraceID())
		}
		if send.Parent.SpanID() != jobs[v].SpanID() {
			t.Errorf("record %s: send span's parent %v is not its job span %v", v, send.Parent.SpanID(), jobs[v].SpanID())
		}
		if len(proc.Links) != 1 || proc.Links[0].SpanContext.SpanID() != send.SpanContext.SpanID() {
			t.Errorf("record %s: process span links %v, want one to send span %v", v, proc.Links, send.SpanContext.SpanID())
		}
		if proc.SpanKind != trace.SpanKindConsumer {
			t.Errorf("process span kind %v, want consumer", proc.SpanKind)
		}
		if !matches(attribute.NewSet(proc.Attributes...), map[string]string{"messaging.consumer.group.name": "traced", "messaging.operation.type": "process"}) {
			t.Errorf("process span attributes %v", proc.Attributes)
		}
		want := fmt.Sprintf("00-%s-%s-01", send.SpanContext.TraceID(), send.SpanContext.SpanID())
		if len(h.traceparent) != 1 || h.traceparent[0] != want {
			t.Errorf("record %s: traceparent headers %q, want [%q]", v, h.traceparent, want)
		}
	}
}

type metricdataRM = metricdata.ResourceMetrics

func keeltestCluster(t *testing.T, topic string, partitions int32) *keeltest.Cluster {
	return keeltest.NewCluster(t, keeltest.Topic(topic, partitions))
}

// TestParallelHandlersGetTheirOwnSpan: with Parallel, handlers of one
// partition run at once; each must get its own record's process span,
// whose parent is the send span named in that record's traceparent.
func TestParallelHandlersGetTheirOwnSpan(t *testing.T) {
	cl := keeltestCluster(t, "fanout", 2)
	ctx := testCtx(t, 2*time.Minute)
	tel := newTelemetry(t)
	c := newClient(t, cl, tel.plugin(t))
	const n = 40
	p, err := keel.NewProducer(c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		v := fmt.Sprint("par-", i)
		if _, err := p.Send(ctx, &keel.Message{Topic: "fanout", Key: []byte(v), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close(ctx)
	seen := consume(t, ctx, c, "fanners", "fanout", n, keel.Parallel(keel.NoOrder, 8, 0))
	deadline := time.Now().Add(30 * time.Second)
	for len(tel.spansNamed("process fanout")) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range tel.spansNamed("process fanout") {
		byID[s.SpanContext.SpanID()] = s
	}
	if len(byID) != n {
		t.Fatalf("%d process spans, want %d", len(byID), n)
	}
	for v, h := range seen {
		proc, ok := byID[h.span.SpanID()]
		if !ok || len(h.traceparent) != 1 {
			t.Errorf("record %s: handler span %v known %v, traceparents %q", v, h.span.SpanID(), ok, h.traceparent)
			continue
		}
		if want := fmt.Sprintf("00-%s-%s-01", proc.Parent.TraceID(), proc.Parent.SpanID()); h.traceparent[0] != want {
			t.Errorf("record %s: its process span's parent is %s, but the record was sent under %s", v, want, h.traceparent[0])
		}
	}
}
