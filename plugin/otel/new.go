package otel

import (
	"errors"
	"fmt"

	gotel "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names this plugin to tracer and meter providers.
const instrumentationName = "github.com/keel-go/keel/plugin/otel"

// Plugin is keel's OpenTelemetry hook: give it to keel.WithHooks. One
// Plugin may serve several clients; it is safe for concurrent use.
type Plugin struct {
	tracing    bool
	keepSends  bool // tracing or SendDurations: OnProduce keeps each record
	tracer     trace.Tracer
	prop       propagation.TextMapPropagator
	partitions bool

	sends sendTable // each record's send span and start, OnProduce to report

	inst      instruments
	callbacks []metric.Registration // the observed instruments' callbacks
	attrs     attrCaches
	lag       lagState
}

// Close unregisters the plugin's collection callbacks (the lag gauges
// and the observed producer counts) from the meter provider, so that a
// program making plugins for short-lived clients does not accumulate
// them. Call it after the clients the plugin is installed in are closed;
// the other instruments belong to the provider and stay.
func (p *Plugin) Close() error {
	var errs []error
	for _, r := range p.callbacks {
		errs = append(errs, r.Unregister())
	}
	p.callbacks = nil
	return errors.Join(errs...)
}

// Option configures New.
type Option func(*config)

type config struct {
	tp         trace.TracerProvider
	mp         metric.MeterProvider
	prop       propagation.TextMapPropagator
	noTracing  bool
	partitions bool
	durations  bool
}

// TracerProvider sets where spans go; the default is OpenTelemetry's
// global provider (otel.GetTracerProvider).
func TracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// MeterProvider sets where metrics go; the default is OpenTelemetry's
// global provider (otel.GetMeterProvider).
func MeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// Propagator sets how span context is written to and read from record
// headers. The default is W3C trace context plus W3C baggage, not the
// global propagator (which is a no-op until a program sets one): records
// should carry traceparent whatever the program configured globally.
func Propagator(p propagation.TextMapPropagator) Option { return func(c *config) { c.prop = p } }

// NoTracing turns spans and header propagation off; only metrics remain.
func NoTracing() Option { return func(c *config) { c.noTracing = true } }

// SendDurations keeps messaging.client.operation.duration for sends (each
// record's time from Produce to its report) with NoTracing. Tracing keeps
// each record's send span from Produce to its report anyway and measures
// the duration with it; without tracing, keeping every record's start
// costs about as much as keel's own work per record (BenchmarkProduceHooks),
// so it is off unless asked for.
func SendDurations() Option { return func(c *config) { c.durations = true } }

// PartitionAttributes adds messaging.destination.partition.id to the
// consumed-record counters and the lag gauges. Off by default to bound
// cardinality: the lag gauges are then a topic's sum over its partitions.
func PartitionAttributes() Option { return func(c *config) { c.partitions = true } }

// New makes the plugin and its instruments.
func New(opts ...Option) (*Plugin, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.tp == nil {
		c.tp = gotel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = gotel.GetMeterProvider()
	}
	if c.prop == nil {
		c.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	p := &Plugin{
		tracing:    !c.noTracing,
		keepSends:  !c.noTracing || c.durations,
		tracer:     c.tp.Tracer(instrumentationName),
		prop:       c.prop,
		partitions: c.partitions,
	}
	p.lag.init()
	if err := p.inst.init(c.mp.Meter(instrumentationName), p); err != nil {
		return nil, fmt.Errorf("keel otel plugin: making instruments: %w", err)
	}
	return p, nil
}
