package keel_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/keel-go/keel"
)

// The examples talk to the brokers in $KEEL_BROKERS (for example those of
// `keel dev`); the integration tests run the same patterns against keeltest
// clusters.
func seeds() string {
	if s := os.Getenv("KEEL_BROKERS"); s != "" {
		return s
	}
	return "127.0.0.1:9092"
}

// Async producing with a delivery channel: every record's report arrives
// on the channel, in order per partition.
func ExampleProducer_Produce() {
	ctx := context.Background()
	client, err := keel.NewClient(keel.SeedBrokers(seeds()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)
	p, err := keel.NewProducer(client)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	deliveries := make(chan keel.Delivery, 100)
	for i := range 10 {
		p.Produce(ctx, &keel.Message{Topic: "orders", Key: []byte(fmt.Sprint("customer-", i%3)), Value: []byte("order")}, deliveries)
	}
	for range 10 {
		d := <-deliveries
		switch d.Outcome() {
		case keel.Delivered:
			fmt.Printf("stored at %s/%d@%d\n", d.Message.Topic, d.Partition, d.Offset)
		case keel.NotWritten:
			fmt.Println("not written, safe to produce again:", d.Err)
		case keel.OutcomeUnknown:
			fmt.Println("may or may not be stored:", d.Err)
		}
	}
}

// The callback form: callbacks run one at a time, in order, never on the
// network path.
func ExampleProducer_ProduceFunc() {
	ctx := context.Background()
	client, _ := keel.NewClient(keel.SeedBrokers(seeds()))
	defer client.Close(ctx)
	p, _ := keel.NewProducer(client, keel.Compression(keel.Zstd, 0))
	defer p.Close(ctx)

	p.ProduceFunc(ctx, &keel.Message{Topic: "orders", Value: []byte("order")}, func(d keel.Delivery) {
		if d.Err != nil {
			log.Printf("order not stored: %v", d.Err)
		}
	})
	if err := p.Flush(ctx); err != nil {
		log.Print(err)
	}
}

// Sync producing: Send is a wait over Produce.
func ExampleProducer_Send() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _ := keel.NewClient(keel.SeedBrokers(seeds()))
	defer client.Close(ctx)
	p, _ := keel.NewProducer(client)
	defer p.Close(ctx)

	d, err := p.Send(ctx, &keel.Message{Topic: "orders", Key: []byte("customer-1"), Value: []byte("order")})
	switch {
	case errors.Is(err, keel.ErrUnknownTopic):
		fmt.Println("create the topic first")
	case err != nil:
		fmt.Println("failed:", err)
	default:
		fmt.Println("offset", d.Offset)
	}
}

// The "two channels" pattern done right: business code tracks its own
// records on a per-message channel, while one loop watches Events() for
// operations — and for records produced with no target. Neither channel
// can block the producer: an unread channel only makes Produce wait for
// buffer room, and Close returns within its ctx regardless.
func ExampleProducer_Events() {
	ctx := context.Background()
	client, _ := keel.NewClient(keel.SeedBrokers(seeds()))
	defer client.Close(ctx)
	p, _ := keel.NewProducer(client)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range p.Events() { // closed by Close
			switch ev := ev.(type) {
			case keel.DeliveryEvent:
				if ev.Err != nil {
					log.Printf("audit record failed: %v", ev.Err)
				}
			case keel.BrokerDisconnected:
				log.Printf("lost %s: %v", ev.Broker, ev.Err)
			case keel.Throttled:
				log.Printf("throttled by %s for %v", ev.Broker, ev.Duration)
			case keel.EventsDropped:
				log.Printf("%d operational events dropped", ev.Count)
			}
		}
	}()

	orders := make(chan keel.Delivery, 1)
	p.Produce(ctx, &keel.Message{Topic: "orders", Value: []byte("order")}, orders) // tracked
	p.Produce(ctx, &keel.Message{Topic: "audit", Value: []byte("seen")}, nil)      // to Events()
	fmt.Println((<-orders).Outcome())

	closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p.Close(closeCtx)
	<-done
}
