package integration

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/fetch"
	"github.com/keel-go/keel/internal/topicpart"
	"github.com/keel-go/keel/keeltest"
)

// KIP-320 and KIP-595: a consumer whose partition's new leader lost
// records it had read (an unclean leader election truncated the log)
// detects it and applies its reset policy with an event, instead of
// reading on past the divergence. kfake never truncates a log, so these
// tests script the new leader's answers through controls: an
// OffsetForLeaderEpoch answer whose end offset lies below the position,
// or a Fetch answer with a DivergingEpoch.

// truncationSetup is a 2-broker cluster with one partition holding n
// records written in one leader epoch, and a fetcher with policy reset
// that has polled all of them.
type truncationSetup struct {
	cl     *keeltest.Cluster
	f      *fetch.Fetcher
	tp     topicpart.TP
	epoch  int32 // of the records
	resets chan fetch.PositionReset
	got    consumed
}

func setupTruncation(t *testing.T, ctx context.Context, n int, reset fetch.ResetPolicy, before func(*keeltest.Cluster)) *truncationSetup {
	t.Helper()
	cl := startCluster(t, keeltest.Brokers(2), keeltest.Topic("trunc", 1))
	c := newClient(t, cl)
	if failed := produceIDs(t, ctx, newProducer(t, c), "trunc", n, func(i int) []byte { return []byte(strconv.Itoa(i)) }); len(failed) > 0 {
		t.Fatalf("%d deliveries failed: %v", len(failed), failed[0].Err)
	}
	s := &truncationSetup{cl: cl, tp: topicpart.TP{Topic: "trunc", Partition: 0}, epoch: cl.PartitionInfo("trunc", 0).Epoch,
		resets: make(chan fetch.PositionReset, 16), got: consumed{}}
	if before != nil {
		before(cl)
	}
	s.f = newFetcher(t, cl, fetch.Config{Reset: reset, MaxWait: 50 * time.Millisecond,
		OnPositionReset: func(r fetch.PositionReset) { s.resets <- r }})
	s.f.Assign(s.tp, fetch.Earliest)
	pollUntil(t, ctx, s.f, s.got, func() bool { return s.got.total() >= n })
	if pos, _ := s.f.Position(s.tp); pos.At != int64(n) || pos.Epoch != s.epoch {
		t.Fatalf("position after %d records = %+v, want {%d %d}: positions must remember the last record's epoch", n, pos, n, s.epoch)
	}
	return s
}

// moveLeader moves the partition to the other broker, bumping its epoch.
func (s *truncationSetup) moveLeader(t *testing.T) {
	t.Helper()
	if err := s.cl.MoveLeader(s.tp.Topic, s.tp.Partition, 1-s.cl.Leader(s.tp.Topic, s.tp.Partition)); err != nil {
		t.Fatal(err)
	}
}

// answerEpochEnd makes the brokers answer OffsetForLeaderEpoch for the
// partition with end in epoch, once, as a leader whose log was truncated
// there would; it returns what the request asked.
func answerEpochEnd(cl *keeltest.Cluster, epoch int32, end int64) (asked func() (current, leaderEpoch int32, n int)) {
	var mu sync.Mutex
	var cur, le int32
	var hits int
	cl.Control(kmsg.OffsetForLeaderEpoch, func(kr kmsg.Request) (kmsg.Response, error, bool) {
		req := kr.(*kmsg.OffsetForLeaderEpochRequest)
		resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetForLeaderEpochResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				mu.Lock()
				cur, le, hits = rp.CurrentLeaderEpoch, rp.LeaderEpoch, hits+1
				mu.Unlock()
				sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.LeaderEpoch, sp.EndOffset = epoch, end
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return func() (int32, int32, int) {
		mu.Lock()
		defer mu.Unlock()
		return cur, le, hits
	}
}

func waitReset(t *testing.T, ctx context.Context, resets chan fetch.PositionReset) fetch.PositionReset {
	t.Helper()
	select {
	case r := <-resets:
		return r
	case <-ctx.Done():
		t.Fatal("no position reset reported")
		return fetch.PositionReset{}
	}
}

// With a reset policy, a truncation found by OffsetForLeaderEpoch after a
// leader change moves the position to the divergence point, reports it,
// and the records from there on are read (again, here: kfake kept them).
func TestTruncationDetectedAfterLeaderChange(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	s := setupTruncation(t, ctx, 100, fetch.ResetEarliest, nil)
	asked := answerEpochEnd(s.cl, s.epoch, 60)
	s.moveLeader(t)

	r := waitReset(t, ctx, s.resets)
	if r.TP != s.tp || r.From.At != 100 || r.From.Epoch != s.epoch || r.To != 60 {
		t.Fatalf("reset %+v, want %v from {100 %d} to 60", r, s.tp, s.epoch)
	}
	if !errors.Is(r.Err, errs.ErrLogTruncated) || !errors.Is(r.Err, errs.ErrOffsetOutOfRange) {
		t.Fatalf("reset error %v does not match ErrLogTruncated and ErrOffsetOutOfRange", r.Err)
	}
	t.Logf("reset: %v", r.Err)
	cur, le, _ := asked()
	if le != s.epoch || cur <= s.epoch {
		t.Fatalf("OffsetForLeaderEpoch asked for epoch %d with current epoch %d; want %d and the new leader's (> %d)", le, cur, s.epoch, s.epoch)
	}
	again := consumed{}
	pollUntil(t, ctx, s.f, again, func() bool { return again.total() >= 40 })
	if first := again[0][0].Offset; first != 60 {
		t.Fatalf("after the reset the first record is at %d, want 60", first)
	}
	for i, r := range again[0] {
		if r.Offset != int64(60+i) {
			t.Fatalf("record %d after the reset at offset %d", i, r.Offset)
		}
	}
}

// With ResetNone the partition stops with an error matching
// ErrLogTruncated (and ErrOffsetOutOfRange) and nothing is read past the
// divergence; the position stays where it was.
func TestTruncationResetNoneStops(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	s := setupTruncation(t, ctx, 50, fetch.ResetNone, nil)
	answerEpochEnd(s.cl, s.epoch, 20)
	s.moveLeader(t)
	for {
		fs, err := s.f.Poll(ctx, 0)
		if err != nil {
			t.Fatalf("Poll: %v, want the truncation error", err)
		}
		for _, fe := range fs {
			if len(fe.Records) > 0 {
				t.Fatalf("%d records returned after the truncation, first at %d", len(fe.Records), fe.Records[0].Offset)
			}
			if fe.Err == nil {
				continue
			}
			if !errors.Is(fe.Err, errs.ErrLogTruncated) || !errors.Is(fe.Err, errs.ErrOffsetOutOfRange) {
				t.Fatalf("partition error %v does not match ErrLogTruncated and ErrOffsetOutOfRange", fe.Err)
			}
			t.Logf("stopped: %v", fe.Err)
			if pos, _ := s.f.Position(s.tp); pos.At != 50 {
				t.Fatalf("position %d after the stop, want 50", pos.At)
			}
			select {
			case r := <-s.resets:
				t.Fatalf("reset reported with policy none: %+v", r)
			default:
			}
			return
		}
	}
}

// A Fetch answer's DivergingEpoch (KIP-595: the fetch carried
// LastFetchedEpoch) is a truncation found without OffsetForLeaderEpoch.
func TestTruncationFromDivergingEpoch(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	var armed atomic.Bool
	var lastFetched atomic.Int32
	lastFetched.Store(-2)
	var epoch atomic.Int32
	s := setupTruncation(t, ctx, 100, fetch.ResetLatest, func(cl *keeltest.Cluster) {
		cl.Control(kmsg.Fetch, func(kr kmsg.Request) (kmsg.Response, error, bool) {
			req := kr.(*kmsg.FetchRequest)
			for _, rt := range req.Topics {
				for _, rp := range rt.Partitions {
					if rp.FetchOffset == 100 {
						lastFetched.Store(rp.LastFetchedEpoch)
					}
				}
			}
			cl.KeepControl()
			if !armed.Load() {
				return nil, nil, false
			}
			armed.Store(false)
			resp := req.ResponseKind().(*kmsg.FetchResponse)
			resp.Version = req.Version
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = "trunc"
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = 100, 100, 0
			rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset = epoch.Load(), 80
			rt.Partitions = append(rt.Partitions, rp)
			resp.Topics = append(resp.Topics, rt)
			return resp, nil, true
		})
	})
	for lastFetched.Load() == -2 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond) // the fetch at 100 follows the answer Poll drained
	}
	if got := lastFetched.Load(); got != s.epoch {
		t.Fatalf("the fetch at offset 100 carried LastFetchedEpoch %d, want %d", got, s.epoch)
	}
	epoch.Store(s.epoch)
	armed.Store(true)

	r := waitReset(t, ctx, s.resets)
	if r.From.At != 100 || r.To != 80 || !errors.Is(r.Err, errs.ErrLogTruncated) {
		t.Fatalf("reset %+v (%v), want from 100 to 80 matching ErrLogTruncated", r, r.Err)
	}
	again := consumed{}
	pollUntil(t, ctx, s.f, again, func() bool { return again.total() >= 20 })
	if first := again[0][0].Offset; first != 80 {
		t.Fatalf("after the divergence the first record is at %d, want 80", first)
	}
}

// An ordinary leader change (no truncation) is validated and changes
// nothing: every record exactly once, no reset. The validation is held
// until more records were written in the new epoch, so that the leader
// answers with a real end offset for the old one (kfake answers "unknown"
// while the new epoch holds no record).
func TestLeaderChangeValidatedWithoutTruncation(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	s := setupTruncation(t, ctx, 100, fetch.ResetEarliest, nil)
	var validations atomic.Int64
	s.cl.Control(kmsg.OffsetForLeaderEpoch, func(kmsg.Request) (kmsg.Response, error, bool) {
		validations.Add(1)
		s.cl.KeepControl()
		return nil, nil, false
	})
	hold := s.cl.HoldRequests(kmsg.OffsetForLeaderEpoch)
	s.moveLeader(t)
	if err := hold.Wait(ctx, 1); err != nil {
		t.Fatal("no OffsetForLeaderEpoch after the leader change:", err)
	}
	c := newClient(t, s.cl)
	if failed := produceIDs(t, ctx, newProducer(t, c), "trunc", 100, func(i int) []byte { return []byte(strconv.Itoa(100 + i)) }); len(failed) > 0 {
		t.Fatalf("%d deliveries failed: %v", len(failed), failed[0].Err)
	}
	hold.Resume()
	pollUntil(t, ctx, s.f, s.got, func() bool { return s.got.total() >= 200 })
	for i, r := range s.got[0] {
		if r.Offset != int64(i) {
			t.Fatalf("record %d at offset %d", i, r.Offset)
		}
	}
	pollNothing(t, s.f, 200*time.Millisecond)
	if validations.Load() == 0 {
		t.Fatal("the position was not validated after the leader change")
	}
	select {
	case r := <-s.resets:
		t.Fatalf("reset without a truncation: %+v (%v)", r, r.Err)
	default:
	}
}

// FENCED_LEADER_EPOCH from the fetch (the leader moved away and back
// between two metadata refreshes, so our epoch is old at the right
// broker) makes the fetcher refresh metadata and validate the position.
func TestFencedLeaderEpochLeadsToValidation(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	s := setupTruncation(t, ctx, 100, fetch.ResetEarliest, nil)
	var validations atomic.Int64
	s.cl.Control(kmsg.OffsetForLeaderEpoch, func(kmsg.Request) (kmsg.Response, error, bool) {
		validations.Add(1)
		s.cl.KeepControl()
		return nil, nil, false
	})
	var fenced atomic.Int64
	s.cl.Control(kmsg.Fetch, func(kr kmsg.Request) (kmsg.Response, error, bool) {
		s.cl.KeepControl()
		for _, rt := range kr.(*kmsg.FetchRequest).Topics {
			for _, rp := range rt.Partitions {
				if rp.CurrentLeaderEpoch == s.epoch {
					fenced.Add(1) // sent with the epoch before the moves
				}
			}
		}
		return nil, nil, false
	})
	leader := s.cl.Leader(s.tp.Topic, 0)
	s.moveLeader(t)
	if err := s.cl.MoveLeader(s.tp.Topic, 0, leader); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, s.cl)
	if failed := produceIDs(t, ctx, newProducer(t, c), "trunc", 50, func(i int) []byte { return []byte(strconv.Itoa(100 + i)) }); len(failed) > 0 {
		t.Fatalf("%d deliveries failed: %v", len(failed), failed[0].Err)
	}
	pollUntil(t, ctx, s.f, s.got, func() bool { return s.got.total() >= 150 })
	for i, r := range s.got[0] {
		if r.Offset != int64(i) {
			t.Fatalf("record %d at offset %d", i, r.Offset)
		}
	}
	if validations.Load() == 0 {
		t.Fatalf("no validation after the epoch moved by 2 (%d fetches with the old epoch)", fenced.Load())
	}
}

// The keel consumer reports a truncation to its client's producers'
// Events() as a keel.PositionReset, and with ResetNone Poll's error
// matches keel.ErrLogTruncated.
func TestConsumerTruncationEventAndError(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	cl := startCluster(t, keeltest.Brokers(2), keeltest.Topic("trunc", 1))
	c := newClient(t, cl)
	p := newProducer(t, c)
	if failed := produceIDs(t, ctx, p, "trunc", 30, func(i int) []byte { return []byte(strconv.Itoa(i)) }); len(failed) > 0 {
		t.Fatalf("%d deliveries failed: %v", len(failed), failed[0].Err)
	}
	epoch := cl.PartitionInfo("trunc", 0).Epoch
	for _, policy := range []keel.OffsetReset{keel.ResetEarliest, keel.ResetNone} {
		cons, err := keel.NewConsumer(c, keel.ResetOffset(policy), keel.FetchMaxWait(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		tp := keel.TopicPartition{Topic: "trunc", Partition: 0}
		if err := cons.Assign(tp, keel.AtEarliest()); err != nil {
			t.Fatal(err)
		}
		n := 0
		for n < 30 {
			ms, err := cons.Poll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n += len(ms)
		}
		answerEpochEnd(cl, epoch, 10)
		if err := cl.MoveLeader("trunc", 0, 1-cl.Leader("trunc", 0)); err != nil {
			t.Fatal(err)
		}
		epoch = cl.PartitionInfo("trunc", 0).Epoch
		if policy == keel.ResetNone {
			_, err := cons.Poll(ctx)
			if !errors.Is(err, keel.ErrLogTruncated) || !errors.Is(err, keel.ErrOffsetOutOfRange) {
				t.Fatalf("Poll after the truncation: %v, want ErrLogTruncated", err)
			}
		} else {
		events:
			for {
				select {
				case ev := <-p.Events():
					if r, ok := ev.(keel.PositionReset); ok {
						if r.Partition != tp || r.From != 30 || r.To != 10 || !errors.Is(r.Err, keel.ErrLogTruncated) {
							t.Fatalf("event %+v", r)
						}
						break events
					}
				case <-ctx.Done():
					t.Fatal("no PositionReset event")
				}
			}
		}
		cons.Close(ctx)
	}
}
