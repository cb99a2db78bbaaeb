package produce

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
)

// reportLog records the order in which Complete reports records, by the
// int each record carries as its Owner.
type reportLog struct {
	mu    sync.Mutex
	order []int
	errs  map[int]error
}

func (l *reportLog) complete(rep *Report) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.errs == nil {
		l.errs = map[int]error{}
	}
	for i := range rep.Recs.Len() {
		id := rep.Recs.At(i).Owner.(int)
		l.order = append(l.order, id)
		l.errs[id] = rep.Result(i).Err
	}
	return false
}

func (l *reportLog) snapshot() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.order...)
}

// numbered returns a batch of n records owned by first, first+1, ...
func numbered(p *partState, first, n int) *batch {
	b := testBatch(p, 0)
	for i := range n {
		r := Rec{Owner: first + i, Record: testRecord()}
		b.add(&r, b.recordSize(&r.Record))
	}
	return b
}

func inOrder(order []int) bool {
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			return false
		}
	}
	return true
}

// Issue 18 gap: a batch expiring while in flight and the batch behind it
// succeeding at the same moment must still be reported in produce order.
// The expiry decided first (under the partition's lock) but reported after
// letting the lock go, with an epoch bump (and its warning) in between, so
// the success could overtake it.
func TestGapExpiryAndLaterSuccessReportInOrder(t *testing.T) {
	e, p, s := testEngine()
	var log reportLog
	e.cfg.Complete = log.complete
	inWarn := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	e.cfg.Warn = func(string, error) {
		once.Do(func() {
			close(inWarn)
			<-release
		})
	}
	b1, b2 := numbered(p, 0, 3), numbered(p, 3, 3)
	b1.deadline = e.now() + int64(time.Second)
	p.batches = []*batch{b1, b2}
	now := e.now()
	if send(e, p, s, now) != b1 || send(e, p, s, now) != b2 {
		t.Fatal("setup: both batches should be in flight")
	}
	expired := make(chan struct{})
	go func() {
		defer close(expired)
		p.expire(e.now() + int64(2*time.Second)) // b1's delivery timeout, while in flight
	}()
	select {
	case <-inWarn: // the expiry is decided and bumps the epoch
	case <-expired:
	}
	p.resolve(b2, "b", kmsg.ProduceResponseTopicPartition{}) // b2 acknowledged meanwhile
	close(release)
	<-expired
	p.resolve(b1, "b", kmsg.ProduceResponseTopicPartition{}) // b1's late answer: ignored
	order := log.snapshot()
	if len(order) != 6 {
		t.Fatalf("%d reports for 6 records: %v", len(order), order)
	}
	if !inOrder(order) {
		t.Fatalf("reports of one partition out of produce order: %v", order)
	}
}

// Issue 18 gap: records of a batch refused with INVALID_RECORD that were
// not at fault are sent again ahead of the records produced after them,
// and every record of the partition is reported in produce order (the bad
// record's failure included).
func TestGapInvalidRecordRequeueKeepsOrder(t *testing.T) {
	e, p, s := testEngine()
	var log reportLog
	e.cfg.Complete = log.complete
	b1 := numbered(p, 0, 4)
	p.batches = []*batch{b1}
	now := e.now()
	if send(e, p, s, now) != b1 {
		t.Fatal("setup")
	}
	// Records 4 and 5 are produced while b1 is in flight: a new open batch.
	e.cfg.Linger = time.Hour
	for id := 4; id < 6; id++ {
		p.append(&Rec{Owner: id, Record: testRecord(), deadline: e.now() + int64(time.Hour)}, true)
	}
	p.resolve(b1, "b", kmsg.ProduceResponseTopicPartition{ErrorCode: errs.CodeInvalidRecord,
		ErrorRecords: []kmsg.ProduceResponseTopicPartitionErrorRecord{{RelativeOffset: 1}}})
	later := e.now() + int64(2*time.Hour)
	var sent []int
	for range 4 {
		b, ps := p.nextBatch(s, later, true, 1<<20, 7, curEpoch(e))
		if b == nil {
			break
		}
		if b.wire == nil {
			if err := b.encode(ps); err != nil {
				t.Fatal(err)
			}
		}
		for i := range b.recs.Len() {
			if b.preset == nil || b.preset[i] == nil {
				sent = append(sent, b.recs.At(i).Owner.(int))
			}
		}
		p.resolve(b, "b", kmsg.ProduceResponseTopicPartition{})
	}
	want := []int{0, 2, 3, 4, 5}
	if len(sent) != len(want) {
		t.Fatalf("sent records %v, want %v", sent, want)
	}
	for i := range want {
		if sent[i] != want[i] {
			t.Fatalf("records went out as %v, want %v: the requeued records must keep their place", sent, want)
		}
	}
	order := log.snapshot()
	if len(order) != 6 || !inOrder(order) {
		t.Fatalf("reports %v: want all 6 records in produce order", order)
	}
	if log.errs[1] == nil {
		t.Fatal("the record named by INVALID_RECORD was not failed")
	}
	for _, id := range []int{0, 2, 3, 4, 5} {
		if log.errs[id] != nil {
			t.Fatalf("record %d failed: %v", id, log.errs[id])
		}
	}
}

func testRecord() record.Record { return record.Record{Value: []byte("v")} }
