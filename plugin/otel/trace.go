package otel

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/keel-go/keel"
)

// send is one record between OnProduce and its report.
type send struct {
	span  trace.Span // nil with NoTracing
	start time.Time
}

// OnProduce starts the record's send span, a child of the span in ctx
// (the caller's), and writes its context into the record's headers.
func (p *Plugin) OnProduce(ctx context.Context, msg *keel.Message) {
	if !p.keepSends {
		return
	}
	s := send{start: time.Now()}
	if p.tracing {
		t := p.topic(msg.Topic)
		ctx, s.span = p.tracer.Start(ctx, t.sendName, t.sendStart...)
		// Without a valid span (no-op tracer, not sampled with no parent)
		// nor baggage, the propagators have nothing to write: skip the
		// carrier and the headers' copy.
		if s.span.SpanContext().IsValid() || baggage.FromContext(ctx).Len() > 0 {
			p.prop.Inject(ctx, &writeCarrier{msg: msg})
		}
	}
	// A message handed to Produce again before its report (a program
	// bug keel tolerates) replaces the older entry; end that span so it
	// is not lost open.
	if old, loaded := p.sends.swap(msg, s); loaded {
		old.end(keel.Delivery{Message: msg, Partition: -1, Offset: -1}, "produced again before its report")
	}
}

// OnProduceNotTaken ends the send span of a record TryProduce handed
// back (its buffer was full): no report follows, and the caller decides
// whether to produce it again (a new send span then).
func (p *Plugin) OnProduceNotTaken(msg *keel.Message, err error) {
	if s, ok := p.sends.take(msg); ok {
		why := "not taken"
		if err != nil {
			why += ": " + err.Error()
		}
		s.end(keel.Delivery{Message: msg, Partition: -1, Offset: -1}, why)
	}
}

// endSend ends the send span of d's record and returns when the record
// was handed to Produce (zero if OnProduce never saw it: a nil message,
// a closed producer).
func (p *Plugin) endSend(d keel.Delivery) time.Time {
	if d.Message == nil {
		return time.Time{}
	}
	s, ok := p.sends.take(d.Message)
	if !ok {
		return time.Time{}
	}
	s.end(d, "")
	return s.start
}

func (s *send) end(d keel.Delivery, why string) {
	if s.span == nil {
		return
	}
	if !s.span.IsRecording() { // no-op or not sampled: skip the attributes
		s.span.End()
		return
	}
	// One SetAttributes call: the SDK grows the span's attribute slice on
	// each.
	var buf [3]attribute.KeyValue
	kv := buf[:0]
	if d.Message != nil {
		kv = append(kv, semconv.MessagingMessageBodySize(len(d.Message.Value)))
	}
	if d.Partition >= 0 {
		kv = append(kv, semconv.MessagingDestinationPartitionID(strconv.Itoa(int(d.Partition))))
	}
	switch {
	case why != "":
		s.span.SetStatus(codes.Error, why)
	case d.Err != nil:
		s.span.RecordError(d.Err)
		s.span.SetStatus(codes.Error, d.Err.Error())
		kv = append(kv, semconv.ErrorTypeKey.String(outcomeName(d.Outcome())))
	case d.Offset >= 0:
		kv = append(kv, semconv.MessagingKafkaOffset(int(d.Offset)))
	}
	s.span.SetAttributes(kv...)
	s.span.End()
}

// processKey finds this plugin's process span in a handler's ctx (another
// hook may have put a span of its own on top).
type processKey struct{}

// OnHandlerStart starts the record's process span: its parent is the span
// context in the record's headers (the producer's send span), with a link
// to it too, as the messaging conventions recommend. With no trace
// context in the headers the span is a child of ctx's span, if any. The
// handler's ctx carries the span.
func (p *Plugin) OnHandlerStart(ctx context.Context, group string, m *keel.Message) context.Context {
	if !p.tracing {
		return ctx
	}
	ctx = p.prop.Extract(ctx, readCarrier(m.Headers))
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationName("process"),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(m.Topic),
			semconv.MessagingDestinationPartitionID(strconv.Itoa(int(m.Partition))),
			semconv.MessagingKafkaOffset(int(m.Offset)),
			semconv.MessagingMessageBodySize(len(m.Value)),
		),
	}
	if group != "" {
		opts = append(opts, trace.WithAttributes(semconv.MessagingConsumerGroupName(group)))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && sc.IsRemote() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	ctx, span := p.tracer.Start(ctx, "process "+m.Topic, opts...)
	return context.WithValue(ctx, processKey{}, span)
}

// endProcess ends the process span OnHandlerStart put in ctx.
func endProcess(ctx context.Context, err error) {
	span, ok := ctx.Value(processKey{}).(trace.Span)
	if !ok {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
	}
	span.End()
}

// StartProcess is for records read with Poll (Run calls the hooks
// itself): it starts m's process span, as a handler call's, and returns
// the ctx to process m in and the function to call with the processing's
// result when done. group is "" for a Consumer without a group.
//
//	ctx, done := plugin.StartProcess(ctx, "billing", m)
//	err := process(ctx, m)
//	done(err)
func (p *Plugin) StartProcess(ctx context.Context, group string, m *keel.Message) (context.Context, func(error)) {
	start := time.Now()
	pctx := p.OnHandlerStart(ctx, group, m)
	return pctx, func(err error) {
		p.OnHandlerFinish(pctx, keel.HandlerFinish{Group: group, Topic: m.Topic, Partition: m.Partition,
			Offset: m.Offset, Duration: time.Since(start), Err: err})
	}
}
