package fetch

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/internal/topicpart"
)

// ResetPolicy says where a partition continues when its fetch offset is out
// of the range the broker holds (Kafka's auto.offset.reset).
type ResetPolicy int8

const (
	// ResetLatest continues at the end of the partition (Kafka's default):
	// records written meanwhile and beyond the range are skipped.
	ResetLatest ResetPolicy = iota
	// ResetEarliest continues at the first record the broker still holds.
	ResetEarliest
	// ResetNone reports ErrOffsetOutOfRange for the partition through
	// Fetch.Err and stops it until Seek or Unassign.
	ResetNone
)

func (r ResetPolicy) String() string {
	switch r {
	case ResetLatest:
		return "latest"
	case ResetEarliest:
		return "earliest"
	case ResetNone:
		return "none"
	}
	return fmt.Sprintf("ResetPolicy(%d)", int8(r))
}

// Config configures a Fetcher. Zero fields take the defaults noted.
type Config struct {
	// MaxWait is how long a broker may hold a fetch waiting for MinBytes
	// (fetch.max.wait.ms, default 500ms).
	MaxWait time.Duration
	// MinBytes is what a broker waits for before answering (default 1).
	MinBytes int32
	// MaxBytes caps one fetch response (default 50 MiB). The broker still
	// returns one whole batch larger than it, so progress never stalls.
	MaxBytes int32
	// PartitionMaxBytes caps one partition's data in a response (default
	// 1 MiB). A broker too old to return an oversized first batch anyway
	// makes the fetcher raise this for that partition.
	PartitionMaxBytes int32
	// ReadCommitted hides records of aborted transactions and stops at
	// the last stable offset; the default, read_uncommitted, returns every
	// data record. Control records are never returned.
	ReadCommitted bool
	// Reset is the out-of-range policy (default ResetLatest).
	Reset ResetPolicy
	// MaxBufferedBytes is the client-wide budget of fetched data waiting
	// for Poll, counted on decompressed size (default 64 MiB). No fetch is
	// sent while the buffered total is at or above it, and each fetch asks
	// for no more than the room left (scaled by the compression ratio seen
	// so far). The total can still pass the budget by what one response
	// per broker brings beyond that: the one batch a broker returns even
	// when it is larger than the limit, and more when data compresses
	// better than the data before it.
	MaxBufferedBytes int64
	// RetryBackoff spaces retries after errors (default 100ms..1s).
	RetryBackoff conn.Backoff
	// MaxDecompressed bounds one batch's decompressed size (default
	// record.DefaultMaxDecompressed), against decompression bombs.
	MaxDecompressed int
	Logger          *slog.Logger
	// OnPositionReset, when set, is told each time a partition's
	// position is moved by the fetcher itself rather than by the caller:
	// an out-of-range offset reset, or a truncated log found by KIP-320
	// validation. It is called under the fetcher's lock: it must return
	// quickly and not call the fetcher.
	OnPositionReset func(PositionReset)
	// OnBatch, when set, is told of each partition's data in each fetch
	// answer (observe.go), outside the fetcher's lock.
	OnBatch func(Batch)
}

// PositionReset describes a position the fetcher moved: From is where the
// partition was, To where it continues (OffsetEarliest or OffsetLatest
// while that is being resolved), Err why (matching errs.ErrLogTruncated or
// errs.ErrOffsetOutOfRange).
type PositionReset struct {
	TP   topicpart.TP
	From Offset
	To   int64
	Err  error
}

func (c *Config) setDefaults() {
	if c.MaxWait <= 0 {
		c.MaxWait = 500 * time.Millisecond
	}
	if c.MinBytes <= 0 {
		c.MinBytes = 1
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 50 << 20
	}
	if c.PartitionMaxBytes <= 0 {
		c.PartitionMaxBytes = 1 << 20
	}
	if c.MaxBufferedBytes <= 0 {
		c.MaxBufferedBytes = 64 << 20
	}
	if c.RetryBackoff.Min <= 0 {
		c.RetryBackoff.Min = 100 * time.Millisecond
	}
	if c.RetryBackoff.Max < c.RetryBackoff.Min {
		c.RetryBackoff.Max = max(time.Second, c.RetryBackoff.Min)
	}
	if c.MaxDecompressed <= 0 {
		c.MaxDecompressed = record.DefaultMaxDecompressed
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Special values of Offset.At for Assign and Seek.
const (
	// OffsetEarliest starts at the first record the broker holds.
	OffsetEarliest int64 = -2
	// OffsetLatest starts after the last record (at the last stable
	// offset with ReadCommitted): only records written later are read.
	OffsetLatest int64 = -1
)

// Offset is a position in a partition: At is the offset of the next record
// to read (or OffsetEarliest/OffsetLatest), Epoch the leader epoch of the
// record before it when known (-1 otherwise), as committed offsets carry it.
type Offset struct {
	At    int64
	Epoch int32
}

// Earliest and Latest are the Offsets of OffsetEarliest and OffsetLatest.
var (
	Earliest = Offset{At: OffsetEarliest, Epoch: -1}
	Latest   = Offset{At: OffsetLatest, Epoch: -1}
)

// At returns the Offset of an exact offset with an unknown epoch.
func At(offset int64) Offset { return Offset{At: offset, Epoch: -1} }

// Record is one fetched record with the leader epoch of the batch that
// holds it (committed alongside the offset for KIP-320 validation).
type Record struct {
	record.Record
	LeaderEpoch int32
}

// Fetch is what Poll returns for one partition: records in offset order,
// or an error that stopped the partition (reported once; the partition
// stays stopped until Seek or Unassign). A Fetch may carry both: records
// read before the error, then the error. A Fetch may also carry neither:
// the position moved past offsets that hold no records for the reader
// (transaction markers, aborted transactions), and Next says where to.
type Fetch = FetchOf[Record]

// FetchOf is Fetch for a Fetcher of records of type R (see NewOf).
type FetchOf[R any] struct {
	TP            topicpart.TP
	Seq           uint64 // of the Assign or Seek the records follow
	Records       []R
	HighWatermark int64
	Err           error
	// Bytes is the decompressed size of the batches whose last record
	// Records holds (what stopped counting against the buffer budget):
	// roughly the records' size, for the caller's own flow control.
	Bytes int64
	// Next is the partition's position once Records are handed out: the
	// offset of the next record Poll returns, with the leader epoch of
	// what precedes it. Past the last of Records it may skip offsets that
	// hold no records for the reader (a commit marker, an aborted
	// transaction): once every record of Records is processed, Next is
	// the offset to commit, so that a fully read transactional partition
	// shows no lag. Never below the last record's offset + 1.
	Next Offset
}

// Fetcher is the Fetcher of Records that New returns.
type Fetcher = Of[Record]

// Shape says how a Fetcher of records of type R makes them. Decoding
// straight into the caller's type spares a second slice per fetch and a
// copy per record (the keel package's Message: issue 6).
type Shape[R any] struct {
	// Make fills out from r, a record of tp from a batch of leader epoch
	// epoch. r's Key, Value and Headers may be kept: they are r's own.
	Make func(out *R, tp topicpart.TP, r *record.Record, epoch int32)
	// Pos returns the offset and leader epoch of a record Make filled.
	Pos func(r *R) (offset int64, epoch int32)
}

// RecordShape makes Records.
var RecordShape = Shape[Record]{
	Make: func(out *Record, _ topicpart.TP, r *record.Record, epoch int32) {
		*out = Record{Record: *r, LeaderEpoch: epoch}
	},
	Pos: func(r *Record) (int64, int32) { return r.Offset, r.LeaderEpoch },
}
