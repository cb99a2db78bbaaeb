// Package otel is keel's OpenTelemetry plugin: tracing with W3C trace
// context carried in record headers, and metrics following OpenTelemetry's
// messaging semantic conventions plus keel's own (the Prometheus plugin's
// metrics under OpenTelemetry names).
//
//	p, err := otel.New(otel.TracerProvider(tp), otel.MeterProvider(mp))
//	client, err := keel.NewClient(keel.SeedBrokers(addr), keel.WithHooks(p))
//
// Tracing: every record handed to a Producer gets a "send <topic>" span
// (kind producer, a child of the span in Produce's ctx) that ends at the
// record's report, and its context is written into the record's headers
// (traceparent, and tracestate/baggage when set). Every handler call of a
// GroupConsumer gets a "process <topic>" span (kind consumer) whose parent
// is the context found in the record's headers, with a link to it as
// well; the handler's ctx carries that span, so spans the handler starts
// are its children. Poll-mode consumers call StartProcess themselves.
//
// The package is its own Go module so that keel's dependency graph does
// not grow with OpenTelemetry's.
package otel
