//go:build cgo

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// confluent-kafka-go wraps librdkafka (C), so it needs cgo; without it the
// bench still builds and reports the confluent rows as skipped
// (client_confluent_nocgo.go).
func init() {
	register(&clientImpl{name: "confluent", newProducer: newConfluentProducer, newConsumer: newConfluentConsumer})
}

// confluentVersion is librdkafka's version, for the report.
func confluentVersion() string {
	_, v := kafka.LibraryVersion()
	return "librdkafka " + v
}

type confluentProducer struct {
	p     *kafka.Producer
	topic string
	track bool
	wg    sync.WaitGroup
}

func newConfluentProducer(_ context.Context, c producerConfig) (producer, string, error) {
	codec := c.Codec
	conf := kafka.ConfigMap{
		"bootstrap.servers":  c.Broker,
		"acks":               "all",
		"enable.idempotence": true,
		"linger.ms":          int(c.Linger / time.Millisecond),
		"batch.size":         c.Settings.MaxBatchBytes,
		// librdkafka also bounds a batch by a message count (default
		// 10000): make it loose enough that bytes decide.
		"batch.num.messages": 1_000_000,
		"compression.codec":  codec,
		// The Go wrapper copies key and value back into every delivery
		// report by default; no other client does that.
		"go.delivery.report.fields": "none",
	}
	p, err := kafka.NewProducer(&conf)
	if err != nil {
		return nil, "", err
	}
	cp := &confluentProducer{p: p, topic: c.Topic, track: c.track}
	done := c.done
	cp.wg.Add(1)
	go func() {
		defer cp.wg.Done()
		for ev := range p.Events() {
			m, ok := ev.(*kafka.Message)
			if !ok {
				continue // logs, stats, client-level errors: librdkafka retries on its own
			}
			i := -1
			if n, ok := m.Opaque.(int); ok {
				i = n
			}
			done(i, m.TopicPartition.Error)
		}
	}()
	settings := fmt.Sprintf("acks=all enable.idempotence=true linger.ms=%d batch.size=%d batch.num.messages=1000000 compression.codec=%s go.delivery.report.fields=none; Produce with reports on Events(), retried on ErrQueueFull; defaults otherwise (5 in flight, 100k messages queued, sticky partitioning of null keys); %s",
		c.Linger/time.Millisecond, c.Settings.MaxBatchBytes, codec, confluentVersion())
	return cp, settings, nil
}

func (c *confluentProducer) produce(ctx context.Context, i int, key, value []byte) error {
	m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &c.topic, Partition: kafka.PartitionAny}, Key: key, Value: value}
	if c.track {
		m.Opaque = i
	}
	for {
		err := c.p.Produce(m, nil)
		var kerr kafka.Error
		if err == nil || !errors.As(err, &kerr) || kerr.Code() != kafka.ErrQueueFull {
			return err
		}
		// librdkafka's queue is full: its backpressure. Wait a little
		// for deliveries to make room.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Microsecond):
		}
	}
}

func (c *confluentProducer) close(context.Context) error {
	c.p.Flush(10_000)
	c.p.Close() // closes Events()
	c.wg.Wait()
	return nil
}

type confluentConsumer struct{ c *kafka.Consumer }

func newConfluentConsumer(_ context.Context, s spec) (consumer, string, error) {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":       s.Broker,
		"group.id":                s.Group,
		"auto.offset.reset":       "earliest",
		"enable.auto.commit":      true,
		"auto.commit.interval.ms": 5000,
	})
	if err != nil {
		return nil, "", err
	}
	if err := c.SubscribeTopics([]string{s.Topic}, nil); err != nil {
		c.Close()
		return nil, "", err
	}
	return &confluentConsumer{c: c}, "Consumer with group.id, SubscribeTopics + ReadMessage loop, auto-commit every 5s; defaults otherwise (range/roundrobin assignors, 1 MiB per partition); " + confluentVersion(), nil
}

func (c *confluentConsumer) run(ctx context.Context, got func([]byte)) error {
	for ctx.Err() == nil {
		m, err := c.c.ReadMessage(100 * time.Millisecond)
		if err != nil {
			var kerr kafka.Error
			if errors.As(err, &kerr) && (kerr.IsTimeout() || !kerr.IsFatal()) {
				continue
			}
			return err
		}
		got(m.Value)
	}
	return ctx.Err()
}

func (c *confluentConsumer) close(context.Context) error { return c.c.Close() }
