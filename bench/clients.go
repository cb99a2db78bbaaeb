package main

import (
	"context"
	"fmt"
)

// Every client library gets an adapter that does the same thing with the
// library's own idiomatic asynchronous API. The drivers in driver.go run
// the workloads over these interfaces, so the timing, counting and
// measuring code is the same for all of them.

// producer is one library's producer.
type producer interface {
	// produce queues one record with this value. It may block while the
	// library's buffer is full (that is the library's backpressure). The
	// delivery report must reach the done callback given to the factory,
	// with i when the factory was asked to track records. A nil key is
	// Kafka's null key. It is called from several goroutines at once in
	// the workloads that produce concurrently.
	produce(ctx context.Context, i int, key, value []byte) error
	// close releases the producer once every report arrived.
	close(ctx context.Context) error
}

// producerConfig is what a producer factory gets.
type producerConfig struct {
	spec
	// track: pass each record's index to done (the latency workload);
	// otherwise done may get any i.
	track bool
	// done is called once per record with its delivery error, from any
	// goroutine.
	done func(i int, err error)
}

// consumer is one library's group consumer.
type consumer interface {
	// run consumes the topic from the earliest offset as a member of
	// spec.Group, calling got with each record's value, until ctx ends.
	run(ctx context.Context, got func(value []byte)) error
	close(ctx context.Context) error
}

type clientImpl struct {
	name string
	// unavailable, when set, is why this client cannot run in this build
	// (confluent-kafka-go without cgo).
	unavailable string
	newProducer func(ctx context.Context, c producerConfig) (producer, string, error)
	newConsumer func(ctx context.Context, s spec) (consumer, string, error)
	// consumeAs: this client's consumer is another's (sarama-idempotent
	// consumes with plain sarama), so its consume row is skipped.
	consumeAs string
}

// clientOrder is the order of the report; runs alternate it.
var clientOrder = []string{"keel", "franz-go", "sarama", "sarama-idempotent", "kafka-go", "confluent", "ceiling"}

var clients = map[string]*clientImpl{}

func register(c *clientImpl) {
	if _, dup := clients[c.name]; dup {
		panic("bench: client " + c.name + " registered twice")
	}
	clients[c.name] = c
}

func lookupClient(name string) (*clientImpl, error) {
	c, ok := clients[name]
	if !ok {
		return nil, fmt.Errorf("unknown client %q (known: %v)", name, clientOrder)
	}
	return c, nil
}

// codecName maps our codec names for messages.
func checkCodec(codec string) error {
	switch codec {
	case "none", "lz4", "zstd":
		return nil
	}
	return fmt.Errorf("codec %q: use none, lz4 or zstd", codec)
}
