package otel_test

import (
	"context"
	"log"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/keel-go/keel"
	kotel "github.com/keel-go/keel/plugin/otel"
)

// A client whose producers write trace context into every record and
// whose group consumers' handlers run in the producer's trace.
func ExampleNew() {
	tp := sdktrace.NewTracerProvider( /* sdktrace.WithBatcher(exporter), a sampler */ )
	mp := sdkmetric.NewMeterProvider( /* sdkmetric.WithReader(reader) */ )
	p, err := kotel.New(kotel.TracerProvider(tp), kotel.MeterProvider(mp))
	if err != nil {
		log.Fatal(err)
	}
	client, err := keel.NewClient(keel.SeedBrokers("127.0.0.1:9092"), keel.WithHooks(p))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(context.Background())

	g, err := keel.NewGroupConsumer(client, "billing", []string{"orders"})
	if err != nil {
		log.Fatal(err)
	}
	_ = g.Run(context.Background(), keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		// ctx carries the record's process span: spans started from it
		// are its children, in the producer's trace.
		_, span := tp.Tracer("billing").Start(ctx, "charge")
		defer span.End()
		return nil
	}))
}

// Poll-mode consumers run no handler hook: StartProcess gives each record
// its process span.
func ExamplePlugin_StartProcess() {
	p, err := kotel.New()
	if err != nil {
		log.Fatal(err)
	}
	client, err := keel.NewClient(keel.SeedBrokers("127.0.0.1:9092"), keel.WithHooks(p))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(context.Background())
	g, err := keel.NewGroupPoller(client, "billing", []string{"orders"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	msgs, err := g.Poll(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		mctx, done := p.StartProcess(ctx, "billing", m)
		err := process(mctx, m)
		done(err)
		g.MarkProcessed(m)
	}
}

func process(ctx context.Context, m *keel.Message) error {
	log.Printf("%s/%d@%d in trace %s", m.Topic, m.Partition, m.Offset, trace.SpanContextFromContext(ctx).TraceID())
	return nil
}
