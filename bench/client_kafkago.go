package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// kafka-go has no idempotent producer; it runs with acks=all and
// idempotence off.
func init() {
	register(&clientImpl{name: "kafka-go", newProducer: newKafkaGoProducer, newConsumer: newKafkaGoConsumer})
}

func kafkaGoCodec(codec string) kafka.Compression {
	switch codec {
	case "lz4":
		return kafka.Lz4
	case "zstd":
		return kafka.Zstd
	}
	return 0
}

type kafkaGoProducer struct {
	w      *kafka.Writer
	track  bool
	closed atomic.Bool
}

func newKafkaGoProducer(_ context.Context, c producerConfig) (producer, string, error) {
	linger := c.Linger
	if linger == 0 {
		// kafka-go reads 0 as its 1s default; 1µs is the least it takes.
		linger = time.Microsecond
	}
	// kafka-go also bounds a batch by a record count, which it
	// preallocates: make it loose enough that bytes decide, as for the
	// other clients.
	batchSize := c.Settings.MaxBatchBytes/c.ValueBytes + 1
	done := c.done
	w := &kafka.Writer{
		Addr:         kafka.TCP(strings.Split(c.Broker, ",")...),
		Topic:        c.Topic,
		RequiredAcks: kafka.RequireAll,
		Async:        true,
		BatchTimeout: linger,
		BatchBytes:   int64(c.Settings.MaxBatchBytes),
		BatchSize:    batchSize,
		Compression:  kafkaGoCodec(c.Codec),
		Completion: func(msgs []kafka.Message, err error) {
			for k := range msgs {
				i := -1
				if n, ok := msgs[k].WriterData.(int); ok {
					i = n
				}
				done(i, err)
			}
		},
	}
	settings := fmt.Sprintf("RequiredAcks=RequireAll (no idempotence in kafka-go) Async BatchTimeout=%v BatchBytes=%d BatchSize=%d compression=%s; WriteMessages with one message per call, reports from Completion; defaults otherwise (round-robin balancer)",
		linger, c.Settings.MaxBatchBytes, batchSize, c.Codec)
	return &kafkaGoProducer{w: w, track: c.track}, settings, nil
}

func (k *kafkaGoProducer) produce(ctx context.Context, i int, key, value []byte) error {
	m := kafka.Message{Key: key, Value: value}
	if k.track {
		m.WriterData = i
	}
	return k.w.WriteMessages(ctx, m)
}

func (k *kafkaGoProducer) close(context.Context) error {
	if k.closed.Swap(true) {
		return nil
	}
	return k.w.Close()
}

type kafkaGoConsumer struct{ r *kafka.Reader }

func newKafkaGoConsumer(_ context.Context, s spec) (consumer, string, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     strings.Split(s.Broker, ","),
		GroupID:     s.Group,
		Topic:       s.Topic,
		StartOffset: kafka.FirstOffset,
		// Without an interval kafka-go commits synchronously after every
		// ReadMessage; the others commit every 5s in the background.
		CommitInterval: 5 * time.Second,
	})
	return &kafkaGoConsumer{r: r}, "Reader with GroupID, ReadMessage loop, CommitInterval=5s; defaults otherwise (range and round-robin balancers, 1 MiB MaxBytes)", nil
}

func (k *kafkaGoConsumer) run(ctx context.Context, got func([]byte)) error {
	for {
		m, err := k.r.ReadMessage(ctx)
		if err != nil {
			return err
		}
		got(m.Value)
	}
}

func (k *kafkaGoConsumer) close(context.Context) error { return k.r.Close() }
