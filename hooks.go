package keel

import (
	"context"
	"time"
)

// Hooks let a program see what keel does — connections, requests, batches,
// records, rebalances, commits, handler calls, lag and stalls — as it
// happens. WithHooks takes values implementing any of the interfaces below;
// a value implementing several gets each call. The Prometheus and
// OpenTelemetry plugins (plugin/prometheus, plugin/otel) are hooks.
//
// Hooks are free when not installed: each call site is one nil check. An
// installed hook runs on keel's goroutines, often on the hot path of every
// record or request: it must be quick and must not block. A hook that
// panics is recovered (the panic is logged at Error and the call skipped),
// so it cannot end a keel goroutine. Values handed to a hook are the
// hook's to read during the call only, unless said otherwise.

// BrokerConnectHook is told of every connection established to a broker
// (after TLS, ApiVersions and SASL).
type BrokerConnectHook interface {
	OnBrokerConnect(broker string)
}

// BrokerDisconnectHook is told of every broker connection that closed, with
// why (nil never: a connection closed by keel has ErrClosed).
type BrokerDisconnectHook interface {
	OnBrokerDisconnect(broker string, err error)
}

// RequestWritten describes one request written to a broker.
type RequestWritten struct {
	Broker string
	API    string // kmsg's name of the API key, "Produce", "Fetch", ...
	Key    int16
	Bytes  int // written, framing included
	// WriteWait is the time from the request being ready to its write
	// ending: the wait for the connection's writer plus the write itself.
	WriteWait time.Duration
	Err       error // why the write failed; the connection is closed then
}

// RequestWrittenHook is told of every request written.
type RequestWrittenHook interface {
	OnRequestWritten(RequestWritten)
}

// ResponseRead describes one response read from a broker.
type ResponseRead struct {
	Broker string
	API    string
	Key    int16
	Bytes  int // the response's size, framing excluded
	// Latency is the time from the request's write ending to its
	// response being read (it includes what the request asks the broker
	// to wait: a fetch's max wait, say).
	Latency time.Duration
}

// ResponseReadHook is told of every response read.
type ResponseReadHook interface {
	OnResponseRead(ResponseRead)
}

// ThrottleHook is told when a broker throttles this client (quotas).
type ThrottleHook interface {
	OnThrottle(broker, api string, d time.Duration)
}

// ProduceBatch describes one record batch written in a produce request.
type ProduceBatch struct {
	Broker            string
	Topic             string
	Partition         int32
	Records           int
	UncompressedBytes int
	CompressedBytes   int // on the wire; equals UncompressedBytes without compression
	Attempt           int // 1 the first time, more for a retry
	Err               error
}

// ProduceBatchHook is told of every batch written (and of each resend).
type ProduceBatchHook interface {
	OnProduceBatch(ProduceBatch)
}

// ProduceHook is told of every record handed to Produce (and Send,
// TryProduce, ...) before the producer takes it. It may add headers to
// msg (a trace context): the record is encoded after the call. ctx is the
// caller's.
type ProduceHook interface {
	OnProduce(ctx context.Context, msg *Message)
}

// ProduceRecordHook is told of every produced record's outcome, once,
// before the record's own report is handed out. d.Err is nil when the
// record was delivered; ProduceError's Outcome says otherwise.
type ProduceRecordHook interface {
	OnProduceRecord(d Delivery)
}

// BufferHook is told when records enter the producer's buffer (at
// Produce) and leave it (at their report). Records and bytes count what
// the buffer budget counts (MaxBufferedRecords, MaxBufferedBytes).
type BufferHook interface {
	OnBuffered(topic string, records int, bytes int64)
	OnUnbuffered(topic string, records int, bytes int64)
}

// FetchBatch describes one partition's records in one fetch answer.
type FetchBatch struct {
	Broker        string
	Topic         string
	Partition     int32
	Records       int
	Bytes         int64 // decompressed, of the records handed on
	HighWatermark int64
	Err           error // the partition stopped with it
}

// FetchBatchHook is told of every partition's data in a fetch answer.
type FetchBatchHook interface {
	OnFetchBatch(FetchBatch)
}

// RebalanceStart describes a rebalance beginning.
type RebalanceStart struct {
	Group    string
	Protocol string // the assignor in use, "" before the first join
}

// Rebalance describes a rebalance that ended, successfully (Err nil) or
// not. Assigned, Revoked and Lost are the partitions that changed hands
// on this member during it; lost partitions are counted in the rebalance
// that follows their loss.
type Rebalance struct {
	Group      string
	Protocol   string
	Generation int32
	Assigned   []TopicPartition
	Revoked    []TopicPartition
	Lost       []TopicPartition
	Duration   time.Duration
	Err        error
}

// RebalanceHook is told of every rebalance of a group member (one
// JoinGroup and SyncGroup round; a cooperative rebalance that gives
// partitions up takes two).
type RebalanceHook interface {
	OnRebalanceStart(RebalanceStart)
	OnRebalance(Rebalance)
}

// Commit describes one offset commit.
type Commit struct {
	Group    string
	Offsets  map[TopicPartition]int64 // the next offset to read, per partition
	Duration time.Duration
	Err      error
}

// CommitHook is told of every offset commit a group consumer makes
// (interval, revoke, Close, Commit).
type CommitHook interface {
	OnCommit(Commit)
}

// HandlerStartHook is told before a GroupConsumer's handler is called for
// m. The ctx it returns is the one the handler gets: it may carry values
// (a tracing span) but must be derived from ctx. Return ctx itself to add
// nothing.
type HandlerStartHook interface {
	OnHandlerStart(ctx context.Context, group string, m *Message) context.Context
}

// HandlerFinish describes a handler call that returned.
type HandlerFinish struct {
	Group     string
	Topic     string
	Partition int32
	Offset    int64
	Duration  time.Duration
	Err       error
}

// HandlerFinishHook is told after every handler call; ctx is the one
// HandlerStartHooks made for it.
type HandlerFinishHook interface {
	OnHandlerFinish(ctx context.Context, f HandlerFinish)
}

// Lag is one partition's lag, as a consumer sees it.
type Lag struct {
	Group string // "" for a Consumer without a group
	TopicPartition
	// HighWatermark is the partition's end as of the last fetch answer.
	HighWatermark int64
	// Position is the next offset to process (after the last record
	// processed); Committed the last committed one, -1 if none.
	Position  int64
	Committed int64
	// Lag is HighWatermark - Position; CommittedLag HighWatermark -
	// Committed, which is what admin and `keel groups lag` compute once
	// the commit lands (-1 when unknown).
	Lag          int64
	CommittedLag int64
}

// LagHook is told when a consumed partition's lag changes: every consumer
// (GroupConsumer, GroupPoller, Consumer) samples its partitions at each
// stall-watch tick (a fifth of StallAfter, at most a second) and tells the
// hook of each partition whose Lag differs from the last told, at most
// once a second per partition, once its high watermark is known. A
// Consumer's Position is where Poll continues and its Committed is -1.
type LagHook interface {
	OnLag(Lag)
}

// StallHook is told of every stall keel detects (see StallAfter and Stall).
type StallHook interface {
	OnStall(Stall)
}

// WithHooks installs hooks in the client: every producer and consumer
// made from it calls them. Each value must implement at least one of the
// hook interfaces (BrokerConnectHook, RequestWrittenHook, ...); a value
// implementing none is refused by NewClient. May be given more than once.
func WithHooks(hooks ...any) ClientOption {
	return func(c *clientConfig) { c.hooks = append(c.hooks, hooks...) }
}
