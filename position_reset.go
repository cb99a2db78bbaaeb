package keel

import (
	"github.com/keel-go/keel/internal/fetch"
)

// PositionReset: a consumer moved a partition's position by itself rather
// than at the caller's request. Err says why: errors.Is(Err,
// ErrLogTruncated) when the partition's new leader lost records already
// consumed (KIP-320 validation after a leader change, or the leader's
// DivergingEpoch answer) and the consumer continues at the divergence
// point To; errors.Is(Err, ErrOffsetOutOfRange) when the position was
// outside the log (records deleted by retention under a slow consumer,
// or a position past the end) and the reset policy moves it to To, which
// is then -2 (the earliest offset) or -1 (the latest) while that is
// looked up. From is where the partition was.
//
// It goes to the Events() of every producer of the consumer's client and
// is logged at Warn (truncation) or Info (out of range).
type PositionReset struct {
	Partition TopicPartition
	From, To  int64
	Err       error
}

func (PositionReset) isEvent() {}

// positionReset is the fetcher's OnPositionReset for consumers of c.
func (c *Client) positionReset(r fetch.PositionReset) {
	c.events.emit(PositionReset{Partition: r.TP, From: r.From.At, To: r.To, Err: r.Err})
}
