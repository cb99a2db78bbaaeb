package share

import (
	"log/slog"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/internal/wait"
)

// TP names one partition of a topic.
type TP struct {
	Topic     string
	Partition int32
}

// AckType is how a record is acknowledged; the values are the protocol's
// (KIP-932, KIP-1222).
type AckType int8

const (
	// Gap: no record at this offset (control record, compacted away).
	// keel sends it itself; users never see such offsets.
	Gap AckType = 0
	// Accept: processed; never delivered again.
	Accept AckType = 1
	// Release: not processed; delivered again (to any member) with its
	// delivery count one higher, until the broker's delivery limit.
	Release AckType = 2
	// Reject: cannot be processed; never delivered again.
	Reject AckType = 3
	// Renew: still being processed; restart its acquisition lock. The
	// record stays held and still needs one of the three above.
	Renew AckType = 4
)

// String names the type as Kafka does.
func (a AckType) String() string {
	switch a {
	case Gap:
		return "GAP"
	case Accept:
		return "ACCEPT"
	case Release:
		return "RELEASE"
	case Reject:
		return "REJECT"
	case Renew:
		return "RENEW"
	}
	return "INVALID"
}

// Record is one acquired record.
type Record struct {
	TP
	record.Record
	// DeliveryCount is how many times the broker has handed this record
	// out, this time included (1 on first delivery).
	DeliveryCount int16
}

// AckResult is the broker's answer to acknowledgements of one partition
// sent in one request (renewals are not reported).
type AckResult struct {
	TP
	Type    AckType
	Offsets []int64
	// Err is nil when the broker applied the acknowledgements. Otherwise
	// the records were not acknowledged as asked: the broker releases
	// them when their locks expire (or already did), so they are
	// delivered again.
	Err error
}

// Config configures a Consumer.
type Config struct {
	Group  string
	Topics []string
	Rack   string
	// MaxRecords bounds the records held at once (acquired and not yet
	// acknowledged): a fetch asks for at most the room left.
	MaxRecords int
	// MaxWait is how long a broker may park a fetch that found nothing.
	MaxWait           time.Duration
	MaxBytes          int32
	PartitionMaxBytes int32
	// AutoRenew renews the locks of records handed to the user too, not
	// only of those waiting to be handed out (Run mode: a handler never
	// loses its record to another member while it runs).
	AutoRenew bool
	// OnAcked, if set, receives every acknowledgement result, one call at
	// a time on a goroutine of its own.
	OnAcked func(AckResult)
	// HeartbeatInterval is used until the broker's first answer says
	// otherwise.
	HeartbeatInterval time.Duration
	Backoff           wait.Backoff
	Logger            *slog.Logger
}

// Errors of the share member.
var (
	// ErrNotHeld: the record is not held by this member: acknowledged
	// already, or its acquisition was lost (the share session to its
	// broker was reset, the member was fenced, or the consumer closed),
	// in which case the broker delivers it again.
	ErrNotHeld = errs.NewSentinel("keel: this share consumer does not hold the record (already acknowledged, or its acquisition was lost and the broker will deliver it again)", false)
	// ErrAcquisitionLost: an acknowledgement was not sent because the
	// record's acquisition ended first (session reset, fenced, closed).
	ErrAcquisitionLost = errs.NewSentinel("keel: the record's acquisition was lost before its acknowledgement was sent; the broker delivers it again", true)
	// ErrRenewUnsupported: the broker cannot renew acquisition locks
	// (ShareAcknowledge v2, Kafka 4.2+).
	ErrRenewUnsupported = errs.NewSentinel("keel: the broker cannot renew acquisition locks (needs Kafka 4.2+, KIP-1222)", false)
)
