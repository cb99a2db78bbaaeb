package main

import (
	"context"
	"fmt"
	"strings"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(&clientImpl{name: "franz-go", newProducer: newFranzProducer, newConsumer: newFranzConsumer})
}

func franzCodec(codec string) kgo.CompressionCodec {
	switch codec {
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

type franzProducer struct {
	cl      *kgo.Client
	topic   string
	promise func(*kgo.Record, error)
}

// franzRec carries the record's index next to the record: the promise gets
// back the *kgo.Record, which is the first field.
type franzRec struct {
	kgo.Record
	i int
}

func newFranzProducer(_ context.Context, c producerConfig) (producer, string, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(c.Broker, ",")...),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent writes are franz-go's default
		kgo.ProducerLinger(c.Linger),
		kgo.ProducerBatchMaxBytes(int32(c.Settings.MaxBatchBytes)),
		kgo.ProducerBatchCompression(franzCodec(c.Codec)),
	)
	if err != nil {
		return nil, "", err
	}
	track, done := c.track, c.done
	fp := &franzProducer{cl: cl, topic: c.Topic}
	fp.promise = func(r *kgo.Record, err error) {
		i := -1
		if track {
			i = (*franzRec)(unsafe.Pointer(r)).i
		}
		done(i, err)
	}
	settings := fmt.Sprintf("RequiredAcks(AllISRAcks) idempotence=on ProducerLinger(%v) ProducerBatchMaxBytes(%d) compression=%s; Produce with a promise; defaults otherwise (5 in flight, 50k records buffered, sticky partitioner)",
		c.Linger, c.Settings.MaxBatchBytes, c.Codec)
	return fp, settings, nil
}

func (f *franzProducer) produce(ctx context.Context, i int, key, value []byte) error {
	r := &franzRec{Record: kgo.Record{Topic: f.topic, Key: key, Value: value}, i: i}
	f.cl.Produce(ctx, &r.Record, f.promise)
	return nil
}

func (f *franzProducer) close(context.Context) error {
	f.cl.Close()
	return nil
}

type franzConsumer struct{ cl *kgo.Client }

func newFranzConsumer(_ context.Context, s spec) (consumer, string, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(s.Broker, ",")...),
		kgo.ConsumerGroup(s.Group),
		kgo.ConsumeTopics(s.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return nil, "", err
	}
	return &franzConsumer{cl: cl}, "ConsumerGroup + PollFetches loop, auto-commit; defaults otherwise (cooperative-sticky, 1 MiB per partition, 50 MiB per fetch)", nil
}

func (f *franzConsumer) run(ctx context.Context, got func([]byte)) error {
	for ctx.Err() == nil {
		fs := f.cl.PollFetches(ctx)
		if fs.IsClientClosed() {
			return nil
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ctx.Err() == nil && ferr == nil {
				ferr = err
			}
		})
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) { got(r.Value) })
	}
	return ctx.Err()
}

func (f *franzConsumer) close(context.Context) error {
	f.cl.Close()
	return nil
}
