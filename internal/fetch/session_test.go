package fetch

import (
	"math"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/topicpart"
)

func tps(ts ...topicpart.TP) []topicpart.TP {
	slices.SortFunc(ts, topicpart.Compare)
	return ts
}

func sameTPs(t *testing.T, what string, got, want []topicpart.TP) {
	t.Helper()
	if !slices.Equal(tps(slices.Clone(got)...), tps(slices.Clone(want)...)) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

var (
	a0 = topicpart.TP{Topic: "a", Partition: 0}
	a1 = topicpart.TP{Topic: "a", Partition: 1}
	b0 = topicpart.TP{Topic: "b", Partition: 0}
)

func TestSessionEpochsAndIncrementalContents(t *testing.T) {
	var s session
	want := map[topicpart.TP]sessionPart{a0: {Offset: 10, LeaderEpoch: 1, MaxBytes: 100}, a1: {Offset: 20, LeaderEpoch: 1, MaxBytes: 100}}

	// (0, 0): full request that creates a session.
	r := s.build(want)
	if r.id != 0 || r.epoch != 0 || !r.full {
		t.Fatalf("first request (%d, %d) full=%v", r.id, r.epoch, r.full)
	}
	sameTPs(t, "send", r.send, []topicpart.TP{a0, a1})
	s.answered(r, 0, 7)
	if s.id != 7 || s.epoch != 1 {
		t.Fatalf("after creation (%d, %d), want (7, 1)", s.id, s.epoch)
	}

	// Nothing changed: an incremental request with no partitions.
	r = s.build(want)
	if r.id != 7 || r.epoch != 1 || r.full || len(r.send) != 0 || len(r.forget) != 0 {
		t.Fatalf("unchanged: %+v", r)
	}
	s.answered(r, 0, 7)
	if s.epoch != 2 {
		t.Fatalf("epoch %d, want 2", s.epoch)
	}

	// a0 moved on, a1 left, b0 joined: only a0 and b0 are sent, a1 is
	// forgotten.
	want2 := map[topicpart.TP]sessionPart{a0: {Offset: 15, LeaderEpoch: 1, MaxBytes: 100}, b0: {Offset: 0, LeaderEpoch: 3, MaxBytes: 100}}
	r = s.build(want2)
	if r.full || r.epoch != 2 {
		t.Fatalf("incremental: %+v", r)
	}
	sameTPs(t, "send", r.send, []topicpart.TP{a0, b0})
	sameTPs(t, "forget", r.forget, []topicpart.TP{a1})

	// A request that got no answer leaves the broker's state unknown.
	s.failed()
	if s.id != 7 || s.epoch != 0 || s.acked != nil {
		t.Fatalf("after failure (%d, %d) acked %v", s.id, s.epoch, s.acked)
	}
	r = s.build(want2)
	if !r.full || r.id != 7 || r.epoch != 0 || len(r.forget) != 0 {
		t.Fatalf("after failure: %+v", r)
	}
	sameTPs(t, "send", r.send, []topicpart.TP{a0, b0})
	s.answered(r, 0, 9) // the broker closed 7 and made 9
	if s.id != 9 || s.epoch != 1 {
		t.Fatalf("recreated (%d, %d)", s.id, s.epoch)
	}

	// A leader epoch change alone is a change.
	want3 := map[topicpart.TP]sessionPart{a0: {Offset: 15, LeaderEpoch: 2, MaxBytes: 100}, b0: want2[b0]}
	r = s.build(want3)
	sameTPs(t, "send", r.send, []topicpart.TP{a0})
}

func TestSessionErrors(t *testing.T) {
	want := map[topicpart.TP]sessionPart{a0: {Offset: 1}}
	var s session
	s.answered(s.build(want), 0, 5)
	s.answered(s.build(want), 0, 5)
	if s.epoch != 2 {
		t.Fatalf("epoch %d", s.epoch)
	}

	// INVALID_FETCH_SESSION_EPOCH: full request on the same id.
	s.answered(s.build(want), errs.CodeInvalidFetchSessionEpoch, 0)
	if s.id != 5 || s.epoch != 0 || s.acked != nil {
		t.Fatalf("after 71: (%d, %d)", s.id, s.epoch)
	}
	r := s.build(want)
	if !r.full || r.id != 5 {
		t.Fatalf("after 71: %+v", r)
	}
	s.answered(r, 0, 6)

	// FETCH_SESSION_ID_NOT_FOUND: a brand new session.
	s.answered(s.build(want), errs.CodeFetchSessionIdNotFound, 0)
	if s.id != 0 || s.epoch != 0 {
		t.Fatalf("after 70: (%d, %d)", s.id, s.epoch)
	}

	// A broker that makes no session keeps getting full requests.
	s.answered(s.build(want), 0, 0)
	if r := s.build(want); !r.full || r.id != 0 || r.epoch != 0 {
		t.Fatalf("sessionless broker: %+v", r)
	}

	// Before Fetch v7 there are no sessions at all.
	s = session{disabled: true}
	for range 3 {
		r := s.build(want)
		if !r.full || r.id != 0 || r.epoch != -1 {
			t.Fatalf("disabled: %+v", r)
		}
		s.answered(r, 0, 0)
	}

	if nextEpoch(math.MaxInt32) != 1 || nextEpoch(1) != 2 {
		t.Fatal("nextEpoch does not wrap to 1")
	}
}

func TestRequestCarriesSessionContents(t *testing.T) {
	f := &Fetcher{cfg: Config{ReadCommitted: true}}
	f.cfg.setDefaults()
	s := &source[Record]{f: f, id: 1}
	var sess session
	want := map[topicpart.TP]sessionPart{a0: {Offset: 10, LeaderEpoch: 4, MaxBytes: 100}, a1: {Offset: 20, LeaderEpoch: 4, MaxBytes: 100}, b0: {Offset: 5, LeaderEpoch: 1, MaxBytes: 100}}
	sess.answered(sess.build(want), 0, 3)
	want2 := map[topicpart.TP]sessionPart{a0: {Offset: 11, LeaderEpoch: 4, MaxBytes: 100}, a1: want[a1]}
	req := s.request(sess.build(want2), 1000)

	if req.SessionID != 3 || req.SessionEpoch != 1 || req.IsolationLevel != 1 || req.MaxBytes != 1000 || req.ReplicaID != -1 {
		t.Fatalf("header: %+v", req)
	}
	if len(req.Topics) != 1 || req.Topics[0].Topic != "a" || len(req.Topics[0].Partitions) != 1 {
		t.Fatalf("topics: %+v", req.Topics)
	}
	rp := req.Topics[0].Partitions[0]
	if rp.Partition != 0 || rp.FetchOffset != 11 || rp.CurrentLeaderEpoch != 4 || rp.PartitionMaxBytes != 100 {
		t.Fatalf("partition: %+v", rp)
	}
	want3 := []kmsg.FetchRequestForgottenTopic{{Topic: "b", Partitions: []int32{0}}}
	if len(req.ForgottenTopics) != 1 || req.ForgottenTopics[0].Topic != want3[0].Topic || !slices.Equal(req.ForgottenTopics[0].Partitions, want3[0].Partitions) {
		t.Fatalf("forgotten: %+v", req.ForgottenTopics)
	}
}
