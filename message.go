package keel

import (
	"time"

	"github.com/keel-go/keel/internal/record"
)

// Message is one record to produce, or one record consumed.
type Message struct {
	Topic string
	// Partition is honoured only with the ManualPartitioner (and by
	// partitioners that read it); otherwise the producer sets it.
	Partition int32
	// Key decides the partition with the default partitioner: records
	// with the same key go to the same partition. A nil Key is Kafka's
	// null key (spread over partitions); an empty non-nil key is a key.
	//
	// On a consumed message Key, Value and the headers' values point
	// into the fetched data, which is not copied: an uncompressed one
	// into the whole fetch answer it came in (up to 50 MiB of one
	// broker's partitions). A message kept after its handler returns
	// (or after the next Poll) keeps that memory alive; copy what you
	// keep for long (bytes.Clone).
	Key     []byte
	Value   []byte
	Headers []Header
	// Timestamp defaults to the time of the Produce call.
	Timestamp time.Time
	// Offset is set on consumed messages.
	Offset int64

	leaderEpoch int32 // of the batch a consumed message came in
	// deliveryCount is set on records read through a share group; it
	// fits in the struct's padding, so ordinary messages pay nothing.
	deliveryCount int16
}

// DeliveryCount is how many times a share group has delivered this record,
// this delivery included: 1 the first time, one more after each release
// (a handler's retriable error, a member that closed or crashed holding
// it, an acquisition lock that ran out). It is 0 for records not read
// through a ShareConsumer.
func (m *Message) DeliveryCount() int { return int(m.deliveryCount) }

// Header is a record header: a string key and a value (nil is Kafka's
// null).
type Header = record.Header

// Outcome is how a produced record ended.
type Outcome int8

const (
	// Delivered: the broker acknowledged the record; its partition and
	// offset are known (offset -1 with acks=0).
	Delivered Outcome = iota
	// NotWritten: the record never reached a broker, or the broker refused
	// it. Producing it again cannot create a duplicate.
	NotWritten
	// OutcomeUnknown: the record was sent but no answer came within its
	// delivery timeout (or before Close); it may or may not be written.
	OutcomeUnknown
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case NotWritten:
		return "not written"
	case OutcomeUnknown:
		return "outcome unknown"
	}
	return "invalid outcome"
}

// Delivery is the report of one produced record.
type Delivery struct {
	// Message is the message given to Produce.
	Message   *Message
	Partition int32
	Offset    int64     // -1 unless delivered (and with acks=0)
	Timestamp time.Time // the record's timestamp as stored
	// Err is nil when the record was delivered. Otherwise it is a
	// *ProduceError saying whether the record may have been written.
	Err error
}

// Outcome says how the record ended.
func (d Delivery) Outcome() Outcome {
	if d.Err == nil {
		return Delivered
	}
	if pe, ok := d.Err.(*ProduceError); ok {
		return pe.Outcome
	}
	return NotWritten
}

// ProduceError is the error of a record that was not delivered. It
// matches ErrNotWritten or ErrOutcomeUnknown with errors.Is, and the cause
// (for example ErrDeliveryTimeout, ErrMessageTooLarge, ErrUnknownTopic).
type ProduceError struct {
	Topic     string
	Partition int32 // -1 when no partition was chosen
	Outcome   Outcome
	Err       error
}

// Error says which record failed, how, and why.
func (e *ProduceError) Error() string {
	where := e.Topic
	if e.Partition >= 0 {
		where = e.Topic + "/" + itoa(e.Partition)
	}
	return "keel: record for " + where + " " + e.Outcome.String() + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *ProduceError) Unwrap() error { return e.Err }

// Is matches ErrNotWritten and ErrOutcomeUnknown by outcome.
func (e *ProduceError) Is(target error) bool {
	switch target {
	case ErrNotWritten:
		return e.Outcome == NotWritten
	case ErrOutcomeUnknown:
		return e.Outcome == OutcomeUnknown
	}
	return false
}

func itoa(n int32) string {
	if n == 0 {
		return "0"
	}
	var b [12]byte
	i := len(b)
	neg := n < 0
	u := int64(n)
	if neg {
		u = -u
	}
	for u > 0 {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
