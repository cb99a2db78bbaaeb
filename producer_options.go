package keel

import (
	"errors"
	"fmt"
	"time"

	"github.com/keel-go/keel/internal/partition"
	"github.com/keel-go/keel/internal/record"
)

// ProducerOption configures a Producer. NewProducer checks them together.
type ProducerOption func(*producerConfig)

// Acks is how many replicas must have a record before the broker
// acknowledges it.
type Acks int16

const (
	// AcksAll waits for every in-sync replica (the default, and required
	// by idempotence).
	AcksAll Acks = -1
	// AcksLeader waits for the partition leader only.
	AcksLeader Acks = 1
	// AcksNone does not wait at all: no delivery confirmation, no
	// retries, offsets unknown.
	AcksNone Acks = 0
)

// Codec is a compression codec for produced batches.
type Codec int8

const (
	NoCompression Codec = Codec(record.CodecNone)
	Gzip          Codec = Codec(record.CodecGzip)
	Snappy        Codec = Codec(record.CodecSnappy)
	LZ4           Codec = Codec(record.CodecLZ4)
	Zstd          Codec = Codec(record.CodecZstd)
)

// String names the codec.
func (c Codec) String() string { return record.Codec(c).String() }

type producerConfig struct {
	acks            Acks
	idempotent      bool
	idempotentSet   bool
	maxInFlight     int
	deliveryTimeout time.Duration
	requestTimeout  time.Duration
	retryMin        time.Duration
	retryMax        time.Duration
	linger          time.Duration
	maxBatchBytes   int
	maxRequestBytes int
	maxRecords      int
	maxBytes        int64
	compression     record.Compression
	partitioner     partition.Partitioner
	// nilPartitionerFunc: PartitionerFunc(nil) was given (refused).
	nilPartitionerFunc bool
	manual             bool
	eventsBuffer       int
	// transactions (producer_txn_options.go)
	txnID      string
	txnIDSet   bool
	txnTimeout time.Duration
}

func defaultProducerConfig(c *Client) producerConfig {
	return producerConfig{
		acks:            AcksAll,
		idempotent:      true,
		maxInFlight:     5,
		deliveryTimeout: 2 * time.Minute,
		requestTimeout:  c.cfg.requestTimeout,
		retryMin:        100 * time.Millisecond,
		retryMax:        time.Second,
		linger:          5 * time.Millisecond,
		maxBatchBytes:   1_000_000,
		maxRequestBytes: 16 << 20,
		maxRecords:      50_000, // franz-go's default too; see MaxBufferedRecords
		maxBytes:        64 << 20,
		partitioner:     new(partition.Default),
		eventsBuffer:    1024,
		txnTimeout:      time.Minute,
	}
}

// WithAcks sets the acknowledgement level (default AcksAll).
func WithAcks(a Acks) ProducerOption { return func(c *producerConfig) { c.acks = a } }

// Idempotence turns the idempotent producer on or off (default on): the
// broker then drops duplicates of retried batches and keeps their order,
// with up to 5 requests in flight per broker. It needs AcksAll; with
// another acks level and no explicit Idempotence(true), it is turned off.
func Idempotence(on bool) ProducerOption {
	return func(c *producerConfig) { c.idempotent, c.idempotentSet = on, true }
}

// MaxInFlight bounds produce requests outstanding per broker (default 5;
// at most 5 with idempotence, which is what the broker tracks).
func MaxInFlight(n int) ProducerOption { return func(c *producerConfig) { c.maxInFlight = n } }

// DeliveryTimeout bounds the time from Produce to a record's outcome,
// through lingering, retries and waiting for answers (default 2m). It must
// be positive — there is no "forever" — and exceed linger plus the produce
// request timeout.
func DeliveryTimeout(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.deliveryTimeout = d }
}

// ProduceRequestTimeout is how long the broker may take to acknowledge a
// produce request, and keel to wait for it (default: the client's
// RequestTimeout).
func ProduceRequestTimeout(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.requestTimeout = d }
}

// RetryBackoff sets the wait before retrying a failed batch: from min,
// doubling per attempt up to max, with jitter (default 100ms to 1s).
func RetryBackoff(min, max time.Duration) ProducerOption {
	return func(c *producerConfig) { c.retryMin, c.retryMax = min, max }
}

// Linger is how long a batch waits for more records before it is sent
// (default 5ms). 0 sends as soon as possible.
func Linger(d time.Duration) ProducerOption { return func(c *producerConfig) { c.linger = d } }

// MaxBatchBytes bounds one partition's batch, and so the largest record
// (default 1,000,000, under the broker's default max.message.bytes).
func MaxBatchBytes(n int) ProducerOption { return func(c *producerConfig) { c.maxBatchBytes = n } }

// MaxRequestBytes bounds one produce request (default 16 MiB).
func MaxRequestBytes(n int) ProducerOption {
	return func(c *producerConfig) { c.maxRequestBytes = n }
}

// MaxBufferedRecords bounds the records held by the producer — queued, in
// flight, or with a delivery report not yet read (default 50,000). Each
// buffered record costs its key, value and headers plus about 250 bytes
// of bookkeeping; with small records this bound, not MaxBufferedBytes,
// decides the producer's memory (issue 11: 100,000 held 1.9× franz-go's
// peak RSS with 100 B records, for no more throughput).
// Produce waits for room under its ctx; TryProduce fails with
// ErrBufferFull.
func MaxBufferedRecords(n int) ProducerOption { return func(c *producerConfig) { c.maxRecords = n } }

// MaxBufferedBytes bounds the bytes held the same way (default 64 MiB).
func MaxBufferedBytes(n int64) ProducerOption { return func(c *producerConfig) { c.maxBytes = n } }

// Compression compresses batches with codec at level (0: the codec's
// default level).
func Compression(codec Codec, level int) ProducerOption {
	return func(c *producerConfig) {
		c.compression = record.Compression{Codec: record.Codec(codec), Level: level}
	}
}

// DefaultPartitioner hashes keys with murmur2 exactly as the Java client
// (and librdkafka's murmur2_random) does, and sticks records without a key
// to one partition per batch (KIP-480). It is the default.
func DefaultPartitioner() ProducerOption {
	return func(c *producerConfig) { c.partitioner, c.manual = new(partition.Default), false }
}

// RoundRobinPartitioner spreads records over partitions in turn, keys or
// not.
func RoundRobinPartitioner() ProducerOption {
	return func(c *producerConfig) { c.partitioner, c.manual = new(partition.RoundRobin), false }
}

// StickyPartitioner sticks every record, keyed or not, to one partition per
// batch.
func StickyPartitioner() ProducerOption {
	return func(c *producerConfig) { c.partitioner, c.manual = new(partition.Sticky), false }
}

// ManualPartitioner sends each record to Message.Partition.
func ManualPartitioner() ProducerOption {
	return func(c *producerConfig) { c.partitioner, c.manual = partition.Manual{}, true }
}

// PartitionerFunc chooses partitions with fn, which gets the topic, the key
// (nil for none) and the topic's partition count, and returns a partition
// in [0, numPartitions). It must be safe for concurrent use.
func PartitionerFunc(fn func(topic string, key []byte, numPartitions int32) int32) ProducerOption {
	return func(c *producerConfig) {
		if fn == nil {
			c.partitioner, c.nilPartitionerFunc = nil, true
			return
		}
		c.partitioner = partition.Func(func(topic string, key []byte, _ bool, n int32, _ []int32) int32 {
			return fn(topic, key, n)
		})
		c.manual = false
	}
}

// EventsBuffer sets the capacity of the Events() channel (default 1024).
func EventsBuffer(n int) ProducerOption { return func(c *producerConfig) { c.eventsBuffer = n } }

func (c *producerConfig) validate() error {
	var problems []error
	bad := func(opt, problem, fix string) {
		problems = append(problems, &ConfigError{Option: opt, Problem: problem, Fix: fix})
	}
	c.validateTxn(bad)
	switch c.acks {
	case AcksAll, AcksLeader, AcksNone:
	default:
		bad("WithAcks", fmt.Sprintf("%d is not an acks level", c.acks), "use AcksAll, AcksLeader or AcksNone")
	}
	if c.acks != AcksAll && c.idempotent {
		if c.idempotentSet {
			bad("Idempotence", "idempotence needs WithAcks(AcksAll)", "use AcksAll, or Idempotence(false)")
		}
		c.idempotent = false
	}
	if c.maxInFlight < 1 {
		bad("MaxInFlight", fmt.Sprintf("%d is below 1", c.maxInFlight), "use 1 to 5")
	}
	if c.idempotent && c.maxInFlight > 5 {
		bad("MaxInFlight", fmt.Sprintf("%d is above 5 with idempotence", c.maxInFlight), "brokers track the last 5 batches per producer: use at most 5")
	}
	if c.deliveryTimeout <= 0 {
		bad("DeliveryTimeout", fmt.Sprintf("%v is not positive; keel has no infinite delivery timeout", c.deliveryTimeout), "use e.g. DeliveryTimeout(2*time.Minute)")
	} else if c.deliveryTimeout < c.linger+c.requestTimeout {
		bad("DeliveryTimeout", fmt.Sprintf("%v is shorter than Linger (%v) plus the produce request timeout (%v)", c.deliveryTimeout, c.linger, c.requestTimeout), "raise it, or lower ProduceRequestTimeout")
	}
	if c.requestTimeout <= 0 {
		bad("ProduceRequestTimeout", fmt.Sprintf("%v is not positive", c.requestTimeout), "use e.g. 30*time.Second")
	}
	if c.retryMin <= 0 || c.retryMax < c.retryMin {
		bad("RetryBackoff", fmt.Sprintf("min %v, max %v: need 0 < min <= max", c.retryMin, c.retryMax), "use e.g. RetryBackoff(100*time.Millisecond, time.Second)")
	}
	if c.linger < 0 {
		bad("Linger", fmt.Sprintf("%v is negative", c.linger), "use 0 to send at once")
	}
	if c.maxBatchBytes < 1024 {
		bad("MaxBatchBytes", fmt.Sprintf("%d is below 1024", c.maxBatchBytes), "use e.g. 1_000_000")
	}
	if c.maxRequestBytes < c.maxBatchBytes+512 {
		bad("MaxRequestBytes", fmt.Sprintf("%d cannot hold one batch of MaxBatchBytes (%d)", c.maxRequestBytes, c.maxBatchBytes), "raise MaxRequestBytes or lower MaxBatchBytes")
	}
	if c.maxRecords < 1 {
		bad("MaxBufferedRecords", fmt.Sprintf("%d is below 1", c.maxRecords), "use e.g. 50_000")
	}
	if c.maxBytes < int64(c.maxBatchBytes) {
		bad("MaxBufferedBytes", fmt.Sprintf("%d is below MaxBatchBytes (%d)", c.maxBytes, c.maxBatchBytes), "raise it")
	}
	if err := c.compression.Validate(); err != nil {
		bad("Compression", err.Error(), "use NoCompression, Gzip, Snappy, LZ4 or Zstd with level 0 for the default")
	}
	if c.nilPartitionerFunc {
		bad("PartitionerFunc", "nil function", "pass a function, or use DefaultPartitioner()")
	} else if c.partitioner == nil {
		bad("partitioner", "nil", "use DefaultPartitioner()")
	}
	if c.eventsBuffer < 1 {
		bad("EventsBuffer", fmt.Sprintf("%d is below 1", c.eventsBuffer), "use e.g. 1024")
	}
	return errors.Join(problems...)
}
