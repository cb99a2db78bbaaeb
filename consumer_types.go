package keel

import (
	"context"
	"fmt"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/fetch"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/internal/topicpart"
)

// TopicPartition names one partition of a topic: Topic and Partition.
// Its String form is "topic/partition".
type TopicPartition = topicpart.TP

// Handler processes consumed messages, one partition's messages in order.
// Returning nil marks the message processed: its offset will be committed.
// ctx is cancelled, with cause ErrRevoked or ErrLost, when the message's
// partition is taken away; the consumer waits (up to the rebalance timeout)
// for Handle to return before the partition moves.
type Handler interface {
	Handle(ctx context.Context, m *Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, m *Message) error { return f(ctx, m) }

// Why a handler's ctx ended (context.Cause).
var (
	// ErrRevoked: the partition was revoked in a rebalance and goes to
	// another member once the handler returns.
	ErrRevoked = errs.NewSentinel("keel: partition revoked in a rebalance", false)
	// ErrLost: the member lost the partition without a rebalance handshake
	// (fenced or expired); another member may already be processing it,
	// so nothing is committed.
	ErrLost = errs.NewSentinel("keel: partition lost: this member was fenced or expired", false)
	// ErrConsumerClosed: the consumer is closing.
	ErrConsumerClosed = errs.NewSentinel("keel: consumer closed", false)
)

// ErrNotAssigned: Seek named a partition this member of the group does not
// own (any more): only the owner of a partition may move it.
var ErrNotAssigned = errs.NewSentinel("keel: partition not assigned to this member", false)

// HandlerAction is what to do after a handler failed on a message.
type HandlerAction int8

const (
	// StopPartition stops processing the partition, leaving the failed
	// message unprocessed (not committed). The default: nothing is
	// skipped silently.
	StopPartition HandlerAction = iota
	// SkipMessage marks the message processed and goes on.
	SkipMessage
)

// OffsetReset says where to start a partition with no committed offset, or
// whose offset is out of range.
type OffsetReset int8

const (
	ResetLatest   OffsetReset = OffsetReset(fetch.ResetLatest)
	ResetEarliest OffsetReset = OffsetReset(fetch.ResetEarliest)
	// ResetNone fails the partition with an error instead (matching
	// ErrOffsetOutOfRange). A GroupConsumer's Run stops reading that
	// partition, logs the error and sends it as an ErrorEvent to the
	// Events() of the client's producers; Seek restarts the partition.
	ResetNone OffsetReset = OffsetReset(fetch.ResetNone)
)

// StartOffset is where direct consumption of a partition starts.
type StartOffset struct {
	at   int64
	time time.Time
	// bad says why this start cannot be used (AtOffset of a negative
	// offset); Assign and Seek refuse it with that error.
	bad string
}

// AtOffset starts at an exact offset, 0 or more. A negative offset is
// refused by Assign and Seek (use AtEarliest or AtLatest for the ends): it
// used to be taken for a sentinel and silently start at the end.
func AtOffset(o int64) StartOffset {
	if o < 0 {
		return StartOffset{at: o, bad: fmt.Sprintf("AtOffset(%d): offsets are 0 or more; use AtEarliest() or AtLatest() for the start or end of the partition, or AtTime", o)}
	}
	return StartOffset{at: o}
}

// check returns the error of a start that cannot be used for tp.
func (s StartOffset) check(method string, tp TopicPartition) error {
	if s.bad != "" {
		return &ConfigError{Option: method, Problem: s.bad, Fix: "pass a valid StartOffset"}
	}
	if err := ValidateTopicName(tp.Topic); err != nil {
		return &ConfigError{Option: method, Problem: err.Error(), Fix: "pass a legal topic name", Err: err}
	}
	if tp.Partition < 0 {
		return &ConfigError{Option: method, Problem: fmt.Sprintf("partition %d of %q", tp.Partition, tp.Topic), Fix: "partitions are numbered from 0"}
	}
	return nil
}

// AtEarliest starts at the first record the broker still holds.
func AtEarliest() StartOffset { return StartOffset{at: fetch.OffsetEarliest} }

// AtLatest starts after the last record: only new records are read.
func AtLatest() StartOffset { return StartOffset{at: fetch.OffsetLatest} }

// AtTime starts at the first record with a timestamp at or after t.
func AtTime(t time.Time) StartOffset { return StartOffset{time: t} }

// messageShape has the fetcher decode records straight into Messages: one
// slice per partition per fetch answer and no copy of each record (a
// Message allocated per record was most of the consumer's allocations,
// issue 6). A *Message kept by the user keeps its run's slice alive, as
// its Key and Value keep their data alive: the decompressed batch, or for
// an uncompressed one the whole fetch answer it came in (not copied, see
// internal/fetch appendBatch).
var messageShape = fetch.Shape[Message]{
	// Field by field: assigning a whole Message goes through a bulk
	// write barrier per record while the GC runs, a tenth of the
	// consumer's CPU time.
	Make: func(m *Message, tp TopicPartition, r *record.Record, epoch int32) {
		m.Topic = tp.Topic
		m.Partition = tp.Partition
		m.Key = r.Key
		m.Value = r.Value
		m.Headers = r.Headers
		m.Timestamp = time.UnixMilli(r.Timestamp)
		m.Offset = r.Offset
		m.leaderEpoch = epoch
	},
	Pos: func(m *Message) (int64, int32) { return m.Offset, m.leaderEpoch },
}

// newFetcher returns the fetcher of Messages consumers read from.
func newFetcher(c *Client, cfg fetch.Config) *fetch.Of[Message] {
	if h := c.hooks; h != nil && len(h.fetchBatch) > 0 {
		cfg.OnBatch = func(b fetch.Batch) {
			h.onFetchBatch(FetchBatch{Broker: b.Broker, Topic: b.TP.Topic, Partition: b.TP.Partition,
				Records: b.Records, Bytes: b.Bytes, HighWatermark: b.HighWatermark, Err: b.Err})
		}
	}
	return fetch.NewOf(cfg, c.pool, c.meta, messageShape)
}
