package produce

import (
	"cmp"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
)

// seqBroker models one partition's idempotent producer state as Kafka
// 2.5+ (and kfake) keep it: a producer it holds no state for may start at
// any sequence (KIP-360), after that sequences must follow on, and a
// resend of one of the last five batches is answered as a duplicate.
type seqBroker struct {
	keep    int // batches in the duplicate window (0: Kafka's 5)
	seen    bool
	nextSeq int32
	window  [][2]int32 // first and next sequence of the batches stored, newest last
}

// answer is the broker's response to b.
func (s *seqBroker) answer(b *batch) kmsg.ProduceResponseTopicPartition {
	first, next := b.seq, addSeq(b.seq, b.count())
	for _, w := range s.window {
		if w == [2]int32{first, next} {
			return kmsg.ProduceResponseTopicPartition{} // duplicate: acknowledged
		}
	}
	if s.seen && first != s.nextSeq {
		return kmsg.ProduceResponseTopicPartition{ErrorCode: errs.CodeOutOfOrderSequenceNumber}
	}
	s.seen, s.nextSeq = true, next
	s.window = append(s.window, [2]int32{first, next})
	if keep := cmp.Or(s.keep, 5); len(s.window) > keep {
		s.window = s.window[1:]
	}
	return kmsg.ProduceResponseTopicPartition{}
}

func (s *seqBroker) stored(b *batch) bool {
	for _, w := range s.window {
		if w[0] == b.seq {
			return true
		}
	}
	return false
}

// Found by TestExactlyOnceRunUnderFaults: a producer's first two batches
// on a partition are in flight; the first one's connection drops before
// the broker reads it, the second is stored (the broker held no state for
// the producer there, so it accepts a first sequence other than 0). Acknowledging the second then proves nothing
// about the first: its resend is refused as out of order, and it must not
// be reported delivered — it was never stored. keel took the refusal for
// "a duplicate that fell out of the window" and reported its records
// delivered, so a transaction committed without them.
func TestRegressionDroppedFirstBatchNotDeliveredByLaterAck(t *testing.T) {
	e, p, s := testEngine()
	var log reportLog
	e.cfg.Complete = log.complete
	b1, b2 := numbered(p, 0, 3), numbered(p, 3, 3)
	p.batches = []*batch{b1, b2}
	now := e.now()
	if send(e, p, s, now) != b1 || send(e, p, s, now) != b2 {
		t.Fatal("setup: both batches should be in flight")
	}
	// b1's connection drops before the broker reads it; b2, on the
	// connection that replaced it, is stored and acknowledged.
	var broker seqBroker
	p.retry(b1, errs.ErrClosed, true)
	p.resolve(b2, "b", broker.answer(b2))

	later := now
	for range 50 {
		later += int64(time.Second)
		b := send(e, p, s, later)
		if b == nil {
			if len(p.batches) == 0 {
				break
			}
			continue
		}
		p.resolve(b, "b", broker.answer(b))
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.order) != 6 {
		t.Fatalf("%d of 6 records reported (%d batches still queued)", len(log.order), len(p.batches))
	}
	for id := range 3 {
		if log.errs[id] == nil && !broker.stored(b1) {
			t.Errorf("record %d reported delivered, but its batch was never stored", id)
		}
	}
	for id := 3; id < 6; id++ {
		if log.errs[id] != nil {
			t.Errorf("record %d of the stored batch failed: %v", id, log.errs[id])
		}
	}
}

// The case the out-of-order answer does prove a duplicate: the broker
// acknowledged a batch before b1, so it held our state and stored b2 only
// after b1; b1's resend is refused because b1 fell out of the duplicate
// window (here a window of one batch, as a new leader may rebuild it). b1
// is delivered, with its offset unknown, not failed.
func TestDuplicateOutsideWindowStillDelivered(t *testing.T) {
	e, p, s := testEngine()
	var log reportLog
	e.cfg.Complete = log.complete
	b0, b1, b2 := numbered(p, 0, 2), numbered(p, 2, 2), numbered(p, 4, 2)
	p.batches = []*batch{b0, b1, b2}
	now := e.now()
	if send(e, p, s, now) != b0 || send(e, p, s, now) != b1 || send(e, p, s, now) != b2 {
		t.Fatal("setup: three batches should be in flight")
	}
	broker := seqBroker{keep: 1}
	p.resolve(b0, "b", broker.answer(b0))
	broker.answer(b1) // stored; the answer is lost
	p.retry(b1, errs.ErrClosed, true)
	p.resolve(b2, "b", broker.answer(b2))
	later := now + int64(time.Second)
	if send(e, p, s, later) != b1 {
		t.Fatal("b1 was not resent")
	}
	ans := broker.answer(b1)
	if ans.ErrorCode != errs.CodeOutOfOrderSequenceNumber {
		t.Fatalf("setup: the broker model answered b1's resend with %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", ans.ErrorCode)
	}
	p.resolve(b1, "b", ans)
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.order) != 6 {
		t.Fatalf("%d of 6 records reported", len(log.order))
	}
	for id, err := range log.errs {
		if err != nil {
			t.Errorf("record %d failed (%v); every batch was stored", id, err)
		}
	}
}
