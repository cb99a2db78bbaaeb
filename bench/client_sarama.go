package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/IBM/sarama"
)

// sarama runs twice: "sarama" with idempotence off (5 requests in flight),
// "sarama-idempotent" with it on, which sarama allows only with one request
// in flight per broker.
func init() {
	register(&clientImpl{name: "sarama", newProducer: saramaProducerFactory(false), newConsumer: newSaramaConsumer})
	register(&clientImpl{name: "sarama-idempotent", newProducer: saramaProducerFactory(true), consumeAs: "sarama"})
}

func saramaCodec(codec string) sarama.CompressionCodec {
	switch codec {
	case "lz4":
		return sarama.CompressionLZ4
	case "zstd":
		return sarama.CompressionZSTD
	}
	return sarama.CompressionNone
}

type saramaProducer struct {
	p     sarama.AsyncProducer
	topic string
	wg    sync.WaitGroup
}

// saramaMsg carries the record's index next to the message: Successes and
// Errors give back the *sarama.ProducerMessage, which is the first field.
type saramaMsg struct {
	sarama.ProducerMessage
	i int
}

func saramaProducerFactory(idempotent bool) func(context.Context, producerConfig) (producer, string, error) {
	return func(_ context.Context, c producerConfig) (producer, string, error) {
		cfg := sarama.NewConfig()
		cfg.Version = sarama.DefaultVersion
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Return.Successes = true
		cfg.Producer.Return.Errors = true
		// Linger: sarama flushes a batch after Flush.Frequency; with
		// every Flush field zero it sends at once.
		cfg.Producer.Flush.Frequency = c.Linger
		cfg.Producer.MaxMessageBytes = c.Settings.MaxBatchBytes // also its per-partition batch bound
		cfg.Producer.Compression = saramaCodec(c.Codec)
		inFlight := cfg.Net.MaxOpenRequests
		if idempotent {
			cfg.Producer.Idempotent = true
			cfg.Net.MaxOpenRequests = 1 // sarama refuses idempotence otherwise
			inFlight = 1
		}
		p, err := sarama.NewAsyncProducer(strings.Split(c.Broker, ","), cfg)
		if err != nil {
			return nil, "", err
		}
		sp := &saramaProducer{p: p, topic: c.Topic}
		track, done := c.track, c.done
		index := func(m *sarama.ProducerMessage) int {
			if !track {
				return -1
			}
			return (*saramaMsg)(unsafe.Pointer(m)).i
		}
		sp.wg.Add(2)
		go func() {
			defer sp.wg.Done()
			for m := range p.Successes() {
				done(index(m), nil)
			}
		}()
		go func() {
			defer sp.wg.Done()
			for e := range p.Errors() {
				done(index(e.Msg), e.Err)
			}
		}()
		idem := "off"
		if idempotent {
			idem = "on"
		}
		settings := fmt.Sprintf("RequiredAcks=WaitForAll idempotence=%s MaxOpenRequests=%d Flush.Frequency=%v MaxMessageBytes=%d compression=%s Version=%s; AsyncProducer reading Successes and Errors; defaults otherwise (hash partitioner: random for null keys)",
			idem, inFlight, c.Linger, c.Settings.MaxBatchBytes, c.Codec, cfg.Version)
		return sp, settings, nil
	}
}

func (s *saramaProducer) produce(ctx context.Context, i int, key, value []byte) error {
	m := &saramaMsg{ProducerMessage: sarama.ProducerMessage{Topic: s.topic, Value: sarama.ByteEncoder(value)}, i: i}
	if key != nil {
		m.Key = sarama.ByteEncoder(key)
	}
	select {
	case s.p.Input() <- &m.ProducerMessage:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *saramaProducer) close(context.Context) error {
	s.p.AsyncClose()
	s.wg.Wait()
	return nil
}

type saramaConsumer struct {
	g     sarama.ConsumerGroup
	topic string
}

func newSaramaConsumer(_ context.Context, s spec) (consumer, string, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.DefaultVersion
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 5 * time.Second // as the others
	g, err := sarama.NewConsumerGroup(strings.Split(s.Broker, ","), s.Group, cfg)
	if err != nil {
		return nil, "", err
	}
	return &saramaConsumer{g: g, topic: s.Topic}, "ConsumerGroup.Consume with a ConsumeClaim loop marking each message, auto-commit every 5s; defaults otherwise (range assignor, 1 MiB fetch default)", nil
}

type saramaHandler struct{ got func([]byte) }

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.got(m.Value)
			sess.MarkMessage(m, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}

func (s *saramaConsumer) run(ctx context.Context, got func([]byte)) error {
	for ctx.Err() == nil {
		if err := s.g.Consume(ctx, []string{s.topic}, saramaHandler{got: got}); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				return nil
			}
			return err
		}
	}
	return ctx.Err()
}

func (s *saramaConsumer) close(context.Context) error { return s.g.Close() }
