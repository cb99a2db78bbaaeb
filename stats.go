package keel

import (
	"fmt"
	"time"
)

// ProducerStats is a snapshot of a producer (Producer.Stats). Counters
// count since the producer was made.
type ProducerStats struct {
	// Records by outcome, as reported.
	Delivered      int64
	NotWritten     int64
	OutcomeUnknown int64
	// DeliveredBytes is the keys' and values' bytes of delivered records.
	DeliveredBytes int64
	// Buffered records and bytes (the buffer budget's count: records not
	// reported yet, sent or not).
	BufferedRecords int64
	BufferedBytes   int64
	// Batches written in produce requests, Retries those that were a
	// resend, WireBytes their bytes on the wire (compressed).
	Batches   int64
	Retries   int64
	WireBytes int64
	// InFlight is the batches written whose answer has not been handled.
	InFlight   int
	Partitions []ProducePartitionStats
}

// ProducePartitionStats is one partition the producer writes to.
type ProducePartitionStats struct {
	TopicPartition
	// Buffered is its records not reported yet (in batches, sent or not);
	// InFlight its batches awaiting an answer.
	Buffered int
	InFlight int
	// Oldest is when its oldest batch not reported yet was opened (zero
	// when none); LastAck when a batch of it was last acknowledged (zero
	// if never).
	Oldest  time.Time
	LastAck time.Time
	// Stalled: records wait and nothing was acknowledged for StallAfter.
	Stalled bool
}

// GroupStats is a snapshot of a group member (GroupConsumer.Stats,
// GroupPoller.Stats).
type GroupStats struct {
	Group      string
	MemberID   string
	Generation int32
	// Rebalances completed by this member, and how long the last took.
	Rebalances    int64
	LastRebalance time.Duration
	// Commits made (successful) and failed.
	Commits      int64
	CommitErrors int64
	// HandlerCalls is how many handler calls of Run returned and
	// HandlerErrors how many of them with an error (GroupPoller: zero).
	// HandlerTime is the time spent in handler calls, sampled without a
	// clock read per record: at each stall-watch tick (a fifth of
	// StallAfter, at most a second) every call running adds the time
	// since the last tick. Over minutes it converges on the real total;
	// per-call durations come from HandlerFinishHook. Zero when
	// StallAfter is 0 and no LagHook is installed (no watch runs).
	HandlerCalls  int64
	HandlerTime   time.Duration
	HandlerErrors int64
	// BufferedBytes is what the fetcher holds, fetched and not yet handed
	// to a handler or Poll.
	BufferedBytes int64
	// Lag is the sum of the partitions' Lag (those whose lag is known).
	Lag        int64
	Partitions []PartitionStats
}

// ConsumerStats is a snapshot of a Consumer (no group): its partitions,
// whose Position is where Poll continues and Committed is always -1.
type ConsumerStats struct {
	BufferedBytes int64
	Partitions    []PartitionStats
}

// PartitionStats is one partition a consumer owns.
type PartitionStats struct {
	TopicPartition
	// HighWatermark is the partition's end as of the last fetch answer
	// (-1 before the first).
	HighWatermark int64
	// Position is the next offset to process: after the last record
	// processed (marked, with GroupPoller), else where processing starts
	// (-1 while that is not resolved yet).
	Position int64
	// Committed is the last offset committed (-1: none yet).
	Committed int64
	// Lag is HighWatermark - Position; CommittedLag is HighWatermark -
	// Committed, what `keel groups lag` and admin show. -1 when unknown.
	Lag          int64
	CommittedLag int64
	// FetchState: "resolving" (looking up where to start), "fetching",
	// "stopped" (an error stopped it; Seek restarts it).
	FetchState string
	// Paused: not fetched now (Pause, or flow control while its records
	// wait for the handler).
	Paused bool
	// Stalled: the partition's position has not moved for StallAfter
	// while its lag is above zero, or its handler has run that long.
	Stalled bool
}

// lagOf returns end-at, or -1 when either is unknown.
func lagOf(end, at int64) int64 {
	if end < 0 || at < 0 {
		return -1
	}
	return max(end-at, 0)
}

// StallKind says what stalled.
type StallKind int8

const (
	// StallHandler: one handler call has run on one record for StallAfter.
	StallHandler StallKind = iota + 1
	// StallPartition: a consumed partition's position has not moved for
	// StallAfter while it has lag.
	StallPartition
	// StallProduce: a produced partition has records waiting and nothing
	// acknowledged for StallAfter.
	StallProduce
)

// String names the kind.
func (k StallKind) String() string {
	switch k {
	case StallHandler:
		return "handler"
	case StallPartition:
		return "partition"
	case StallProduce:
		return "produce"
	}
	return fmt.Sprintf("StallKind(%d)", int8(k))
}

// Stall is an Event (and a StallHook call) saying something has not
// progressed for StallAfter. It is reported once per stall: a stall that
// ends and starts again is reported again.
type Stall struct {
	Kind  StallKind
	Group string // "" for a producer
	TopicPartition
	// Offset is the record the handler runs on (StallHandler), the
	// partition's position (StallPartition), or its oldest record not
	// acknowledged yet as far as known (StallProduce: -1).
	Offset int64
	// For is how long it has not progressed, when detected.
	For time.Duration
	// Lag is the partition's lag then (consumers; -1 when unknown).
	Lag int64
}

func (Stall) isEvent() {}

// String says what stalled, for logs.
func (s Stall) String() string {
	switch s.Kind {
	case StallHandler:
		return fmt.Sprintf("handler of group %q on %s at offset %d has run for %v", s.Group, s.TopicPartition, s.Offset, s.For.Round(time.Millisecond))
	case StallPartition:
		return fmt.Sprintf("partition %s of group %q has not moved from offset %d for %v with lag %d", s.TopicPartition, s.Group, s.Offset, s.For.Round(time.Millisecond), s.Lag)
	}
	return fmt.Sprintf("produce partition %s has records waiting and nothing acknowledged for %v", s.TopicPartition, s.For.Round(time.Millisecond))
}
