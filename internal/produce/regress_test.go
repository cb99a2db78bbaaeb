package produce

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/record"
)

func testEngine() (*Engine, *partState, *sink) {
	e := newEngine(Config{Idempotent: true, MaxInFlight: 5, DeliveryTimeout: time.Hour, Linger: 0,
		MaxBatchBytes: 1 << 20, MaxRequestBytes: 16 << 20, MaxBufferedRecords: 1 << 20, MaxBufferedBytes: 1 << 30,
		RetryBackoff: conn.Backoff{Min: time.Millisecond, Max: time.Millisecond},
		Complete:     func(*Report) bool { return false }, Warn: func(string, error) {}})
	e.idem.pid, e.idem.epoch, e.idem.ready = 7, 0, true
	t := newTopicState(e, "t")
	p := newPartState(t, 0)
	s := &sink{e: e, id: 1, draining: true} // maybeDrain only sets again
	p.sink, p.leader = s, 1
	return e, p, s
}

// testBatch returns an open batch of n records, past its linger.
func testBatch(p *partState, n int) *batch {
	e := p.e()
	nb := e.bufs.batch(p, n)
	nb.created, nb.deadline = e.now()-int64(time.Minute), e.now()+int64(time.Hour)
	for range n {
		r := Rec{Record: record.Record{Value: []byte("v")}}
		nb.add(&r, nb.recordSize(&r.Record))
	}
	return nb
}

// send is what a sink does with partition p at engine time now: take the
// next batch and encode it if it was sealed on its way out.
func send(e *Engine, p *partState, s *sink, now int64) *batch {
	b, ps := p.nextBatch(s, now, false, 1<<20, 7, curEpoch(e))
	if b != nil && b.wire == nil {
		if err := b.encode(ps); err != nil {
			panic(err)
		}
	}
	return b
}

func curEpoch(e *Engine) int16 {
	_, ep, _ := e.idem.current()
	return ep
}

func wireEpochSeq(w []byte) (int16, int32) {
	return int16(binary.BigEndian.Uint16(w[51:])), int32(binary.BigEndian.Uint32(w[53:]))
}

func TestRegressionEpochBumpResequencesInFlight(t *testing.T) {
	e, p, s := testEngine()
	b1, b2, b3 := testBatch(p, 10), testBatch(p, 10), testBatch(p, 10)
	p.batches = []*batch{b1, b2, b3}
	now := e.now()
	if send(e, p, s, now) != b1 || send(e, p, s, now) != b2 {
		t.Fatal("setup")
	}
	ep, sq := wireEpochSeq(b1.wire)
	t.Logf("b1 in flight: wire epoch %d seq %d", ep, sq)
	e.idem.bump(0, "another partition")
	if b := send(e, p, s, now); b != nil {
		t.Fatalf("sent a batch at the new epoch while epoch-0 batches are in flight (seq %d)", b.seq)
	}
	for _, b := range []*batch{b1, b2} {
		if ep, _ := wireEpochSeq(b.wire); ep != 0 || b.epoch != 0 {
			t.Fatalf("an in-flight batch was renumbered into epoch %d", ep)
		}
		p.resolve(b, "b", kmsg.ProduceResponseTopicPartition{})
	}
	b := send(e, p, s, now)
	if b != b3 {
		t.Fatal("b3 not sent once the epoch-0 batches were answered")
	}
	if ep, sq := wireEpochSeq(b3.wire); ep != 1 || sq != 0 {
		t.Fatalf("b3 went out at epoch %d seq %d; a new epoch starts at seq 0", ep, sq)
	}
}

func TestRegressionSplitResequenceOrder(t *testing.T) {
	e, p, s := testEngine()
	b1, b2 := testBatch(p, 10), testBatch(p, 10)
	p.batches = []*batch{b1, b2}
	now := e.now()
	send(e, p, s, now)
	send(e, p, s, now)
	p.resolve(b1, "b", kmsg.ProduceResponseTopicPartition{ErrorCode: 10})
	p.resolve(b2, "b", kmsg.ProduceResponseTopicPartition{ErrorCode: 45})
	later := e.now() + int64(time.Hour)
	// The sequence each batch went out with (a batch's memory is reused
	// once it is reported, so it is read when sent).
	var order []int32
	for range 3 {
		b := send(e, p, s, later)
		if b == nil {
			break
		}
		order = append(order, b.seq)
		t.Logf("sent batch with %d records at seq %d (queue position %d)", b.recs.Len(), b.seq, indexOf(p.batches, b))
		// acknowledge it so the next one can go
		p.resolve(b, "b", kmsg.ProduceResponseTopicPartition{})
	}
	if len(order) != 3 {
		t.Fatalf("sent %d batches after the split, want 3", len(order))
	}
	for i, want := range []int32{0, 5, 10} {
		if order[i] != want {
			t.Errorf("batch %d after the split went out at seq %d, want %d (queue order)", i, order[i], want)
		}
	}
}

func indexOf(bs []*batch, b *batch) int {
	for i, x := range bs {
		if x == b {
			return i
		}
	}
	return -1
}

func TestRegressionUnknownBatchResequencedAfterExpiry(t *testing.T) {
	e, p, s := testEngine()
	b1, b2 := testBatch(p, 10), testBatch(p, 10)
	b1.deadline = e.now() + int64(time.Second)
	p.batches = []*batch{b1, b2}
	now := e.now()
	send(e, p, s, now)
	send(e, p, s, now)
	// the request timed out: both may have been written at epoch 0
	p.retry(b1, context.DeadlineExceeded, true)
	p.retry(b2, context.DeadlineExceeded, true)
	later := e.now() + int64(time.Minute)
	if send(e, p, s, later) != b1 { // b1 resent alone
		t.Fatal("b1 not resent")
	}
	p.expire(e.now() + int64(2*time.Second))    // b1's delivery timeout hits while in flight
	p.retry(b1, context.DeadlineExceeded, true) // its abandoned answer
	b := send(e, p, s, later)
	if b == b2 && b2.epoch != 0 {
		t.Errorf("b2 may have been written at epoch 0 seq 10, and is resent as epoch %d seq %d: a duplicate if it was", b2.epoch, b2.seq)
	}
	if b == b2 {
		return
	}
	// b2 must have been failed as outcome unknown instead.
	if len(p.batches) != 0 {
		t.Errorf("b2 still queued (%d batches) but not sent", len(p.batches))
	}
}

// A batch whose answer was lost (the connection dropped) must be settled
// under its own epoch and sequence when another partition's trouble bumps
// the producer epoch meanwhile: failing it as OutcomeUnknown is needless
// (the broker still accepts the old epoch on this partition), and was seen
// as hundreds of "outcome unknown" records in the fault run under load.
func TestRegressionUnknownBatchSettledUnderOldEpochAfterForeignBump(t *testing.T) {
	e, p, s := testEngine()
	b1 := testBatch(p, 10)
	p.batches = []*batch{b1}
	now := e.now()
	if send(e, p, s, now) != b1 {
		t.Fatal("setup")
	}
	p.retry(b1, context.DeadlineExceeded, true) // connection lost after the write
	e.idem.bump(0, "another partition reported UNKNOWN_PRODUCER_ID")
	b2 := testBatch(p, 5)
	p.batches = append(p.batches, b2)

	later := e.now() + int64(time.Minute)
	got := send(e, p, s, later)
	if got != b1 {
		t.Fatalf("the maybe-written batch was not resent (got %v, %d batches queued)", got, len(p.batches))
	}
	if ep, sq := wireEpochSeq(b1.wire); ep != 0 || sq != 0 {
		t.Fatalf("the maybe-written batch went out as epoch %d seq %d, want its own epoch 0 seq 0", ep, sq)
	}
	if b := send(e, p, s, later); b != nil {
		t.Fatal("a new batch went out while the old epoch's batch was unsettled")
	}
	p.resolve(b1, "b", kmsg.ProduceResponseTopicPartition{})
	got = send(e, p, s, later)
	if got != b2 {
		t.Fatal("the next batch was not sent once the old one was settled")
	}
	if ep, sq := wireEpochSeq(b2.wire); ep != 1 || sq != 0 {
		t.Fatalf("the next batch went out as epoch %d seq %d, want the new epoch 1 from seq 0", ep, sq)
	}
}
