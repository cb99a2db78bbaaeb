package main

import (
	"context"
	"fmt"
	"strings"
	"unsafe"

	"github.com/keel-go/keel"
)

func init() {
	register(&clientImpl{name: "keel", newProducer: newKeelProducer, newConsumer: newKeelConsumer})
}

func keelCodec(codec string) keel.Codec {
	switch codec {
	case "lz4":
		return keel.LZ4
	case "zstd":
		return keel.Zstd
	}
	return keel.NoCompression
}

type keelProducer struct {
	client *keel.Client
	p      *keel.Producer
	topic  string
	track  bool
	// With -keel-reports channel, reports go to one buffered channel read
	// by one goroutine (keel's per-message channel target). The default
	// is the callback (ProduceFunc), the same shape as franz-go's promise.
	reports chan keel.Delivery
	stop    chan struct{}
	done    chan struct{}
	// callback, with -keel-reports callback: ProduceFunc instead.
	callback func(keel.Delivery)
}

// keelMsg carries the record's index next to the message: the report
// gives back the *keel.Message, which is the first field.
type keelMsg struct {
	keel.Message
	i int
}

func newKeelProducer(ctx context.Context, c producerConfig) (producer, string, error) {
	cl, err := keel.NewClient(keel.SeedBrokers(strings.Split(c.Broker, ",")...))
	if err != nil {
		return nil, "", err
	}
	opts := []keel.ProducerOption{
		keel.WithAcks(keel.AcksAll),
		keel.Idempotence(true),
		keel.Linger(c.Linger),
		keel.MaxBatchBytes(c.Settings.MaxBatchBytes),
		keel.Compression(keelCodec(c.Codec), 0),
	}
	p, err := keel.NewProducer(cl, opts...)
	if err != nil {
		cl.Close(ctx)
		return nil, "", err
	}
	kp := &keelProducer{client: cl, p: p, topic: c.Topic, track: c.track,
		reports: make(chan keel.Delivery, 1<<14), stop: make(chan struct{}), done: make(chan struct{})}
	done := c.done
	if c.KeelReports == "callback" {
		kp.callback = func(d keel.Delivery) {
			i := -1
			if kp.track {
				i = (*keelMsg)(unsafe.Pointer(d.Message)).i
			}
			done(i, d.Err)
		}
	}
	go func() {
		defer close(kp.done)
		for {
			select {
			case d := <-kp.reports:
				i := -1
				if kp.track {
					i = (*keelMsg)(unsafe.Pointer(d.Message)).i
				}
				done(i, d.Err)
			case <-kp.stop:
				return
			}
		}
	}()
	reports := "Produce with a delivery channel (16k buffer) read by one goroutine"
	if kp.callback != nil {
		reports = "ProduceFunc callback"
	}
	settings := fmt.Sprintf("acks=all idempotence=on linger=%v max_batch_bytes=%d compression=%s; %s; defaults otherwise (5 in flight, 50k records / 64 MiB buffered, sticky partitioner)",
		c.Linger, c.Settings.MaxBatchBytes, c.Codec, reports)
	return kp, settings, nil
}

func (k *keelProducer) produce(ctx context.Context, i int, key, value []byte) error {
	m := &keelMsg{Message: keel.Message{Topic: k.topic, Key: key, Value: value}, i: i}
	if k.callback != nil {
		k.p.ProduceFunc(ctx, &m.Message, k.callback)
		return nil
	}
	k.p.Produce(ctx, &m.Message, k.reports)
	return nil
}

func (k *keelProducer) close(ctx context.Context) error {
	err := k.p.Close(ctx)
	// Not close(k.reports): keel may hand over a late report even after
	// Close (then into the buffer, or it is counted unread).
	close(k.stop)
	<-k.done
	if cerr := k.client.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

type keelConsumer struct {
	client *keel.Client
	g      *keel.GroupConsumer
}

func newKeelConsumer(ctx context.Context, s spec) (consumer, string, error) {
	cl, err := keel.NewClient(keel.SeedBrokers(strings.Split(s.Broker, ",")...))
	if err != nil {
		return nil, "", err
	}
	g, err := keel.NewGroupConsumer(cl, s.Group, []string{s.Topic}, keel.ResetOffset(keel.ResetEarliest))
	if err != nil {
		cl.Close(ctx)
		return nil, "", err
	}
	return &keelConsumer{client: cl, g: g}, "GroupConsumer.Run (one worker per partition, records marked processed and auto-committed); defaults otherwise (cooperative-sticky, 1 MiB per partition, 50 MiB per fetch)", nil
}

func (k *keelConsumer) run(ctx context.Context, got func([]byte)) error {
	return k.g.Run(ctx, keel.HandlerFunc(func(_ context.Context, m *keel.Message) error {
		got(m.Value)
		return nil
	}))
}

func (k *keelConsumer) close(ctx context.Context) error {
	err := k.g.Close(ctx)
	if cerr := k.client.Close(ctx); err == nil {
		err = cerr
	}
	return err
}
