package integration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// retentionEnv is a slow group consumer on "orders" whose records are
// deleted ahead of its position once it has processed a little of every
// partition.
type retentionEnv struct {
	mu       sync.Mutex
	maxDone  map[int32]int64 // highest offset processed per partition
	firstBy  map[int32]int64 // per partition, first offset processed after deleteAt was set
	deleteAt map[int32]int64 // the new log start offsets, once deleted
	resets   []keel.PositionReset
	errs     []error // of ErrorEvents: partitions stopped
	others   int     // Events that were not PositionReset (ignored, counted)
}

func (e *retentionEnv) processedAt(p int32, off int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if off > e.maxDone[p] {
		e.maxDone[p] = off
	}
	if at, ok := e.deleteAt[p]; ok && off >= at {
		if f, ok := e.firstBy[p]; !ok || off < f {
			e.firstBy[p] = off
		}
	}
}

// collectEvents records the PositionReset events the client reports, on
// the Events() of one of its producers, until ctx ends.
func (e *retentionEnv) collectEvents(ctx context.Context, p *keel.Producer) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-p.Events():
			e.mu.Lock()
			switch ev := ev.(type) {
			case keel.PositionReset:
				e.resets = append(e.resets, ev)
			case keel.ErrorEvent:
				e.errs = append(e.errs, ev.Err)
			default:
				e.others++
			}
			e.mu.Unlock()
		}
	}
}

// TestFaultMatrixRetention (issue 18, "retention deleting records under a
// slow consumer"): ids 0..n-1 are written to a 3-partition topic in small
// batches; a group member processes them slowly with a small fetch
// buffer; once it has processed 100 records of every partition, the
// records up to 2500 past its position (beyond what its fetch buffer and
// its partitions' queues, 1000 records each, can hold) are deleted (DeleteRecords, what
// retention does to the log start offset). Its next fetch is out of range.
//
// keel's promise, per reset policy:
//
//   - ResetEarliest: the partition continues at the new log start; the
//     records deleted before they were read are lost to the consumer, and
//     that loss is reported: a PositionReset event (Err matching
//     ErrOffsetOutOfRange) from the old position, and an Info log. The
//     checker accounts for every id: processed, or deleted unread at or
//     above a reported reset's From. Nothing at or above the new log start
//     is skipped, nothing is processed twice, and nothing hangs.
//
//   - ResetNone (the group's offsets committed at 0 first, so the member
//     starts from them): Run ends with an error matching
//     ErrOffsetOutOfRange that names the offset, instead of hanging or
//     skipping; nothing was processed twice.
//
//     go test -race -count=1 -run TestFaultMatrixRetention -v ./integration/
func TestFaultMatrixRetention(t *testing.T) {
	perPartition := 4_000
	if os.Getenv("KEEL_FAULTS") == "full" {
		perPartition = 10_000
	}
	t.Run("ResetEarliest", func(t *testing.T) { retentionScenario(t, keel.ResetEarliest, perPartition) })
	t.Run("ResetNone", func(t *testing.T) { retentionScenario(t, keel.ResetNone, perPartition) })
}

func policyName(p keel.OffsetReset) string {
	if p == keel.ResetNone {
		return "ResetNone (stop, then Seek)"
	}
	return "ResetEarliest"
}

type place struct {
	p   int32
	off int64
}

func retentionScenario(t *testing.T, policy keel.OffsetReset, perPartition int) {
	n := 3 * perPartition
	group := "slow"
	cl := groupCluster(t, 3)
	c := newClient(t, cl)
	ctx := testCtx(t, 3*time.Minute)
	p := newProducer(t, c, keel.MaxBatchBytes(16<<10), keel.EventsBuffer(1024))
	// 2 KB keys: the fetch buffer (at least one partition's fetch size,
	// 1 MiB) then holds ~500 records and each partition's queue in the
	// group consumer 1000, well behind the deletion point.
	pad := strings.Repeat("k", 2048)
	if failed := produceIDs(t, ctx, p, "orders", n, func(i int) []byte { return []byte(strconv.Itoa(i%1009) + pad) }); len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	where := make(map[int]place, n)
	for part, recs := range readTopic(t, cl, "orders") {
		for _, r := range recs {
			id, _ := strconv.Atoi(string(r.Value))
			where[id] = place{part, r.Offset}
		}
	}
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	if policy == keel.ResetNone {
		zero := map[keel.TopicPartition]int64{}
		for part := range int32(3) {
			zero[keel.TopicPartition{Topic: "orders", Partition: part}] = 0
		}
		if err := adm.AlterGroupOffsets(ctx, group, zero); err != nil {
			t.Fatal(err)
		}
	}

	e := &retentionEnv{maxDone: map[int32]int64{}, firstBy: map[int32]int64{}, deleteAt: map[int32]int64{}}
	evCtx, stopEvents := context.WithCancel(ctx)
	var evDone sync.WaitGroup
	evDone.Go(func() { e.collectEvents(evCtx, p) })
	t.Cleanup(func() { stopEvents(); evDone.Wait() })

	seen := newProcessed()
	h := func(ctx context.Context, m *keel.Message) error {
		time.Sleep(time.Millisecond) // the slow consumer
		seen.add(m)
		e.processedAt(m.Partition, m.Offset)
		return nil
	}
	g, err := keel.NewGroupConsumer(c, group, []string{"orders"},
		fastGroup(keel.ResetOffset(policy), keel.MaxBufferedFetchBytes(1<<20))...)
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	start := time.Now()
	go func() { runDone <- g.Run(context.Background(), keel.HandlerFunc(h)) }()
	t.Cleanup(func() { closeAndWaitRun(t, g.Close, runDone) })

	// Wait for 100 records of every partition, then delete ahead.
	for {
		e.mu.Lock()
		ready := len(e.maxDone) == 3 && e.maxDone[0] >= 100 && e.maxDone[1] >= 100 && e.maxDone[2] >= 100
		before := map[keel.TopicPartition]int64{}
		for part, off := range e.maxDone {
			before[keel.TopicPartition{Topic: "orders", Partition: part}] = off + 2500
		}
		e.mu.Unlock()
		if ready {
			starts, err := adm.DeleteRecords(ctx, before)
			if err != nil {
				t.Fatal(err)
			}
			e.mu.Lock()
			for tp, at := range starts {
				e.deleteAt[tp.Partition] = at
			}
			e.mu.Unlock()
			t.Logf("deleted ahead of the consumer, new log starts %v", starts)
			break
		}
		select {
		case err := <-runDone:
			t.Fatalf("Run ended before the deletion: %v", err)
		case <-ctx.Done():
			t.Fatal("the consumer never processed 100 records of every partition")
		case <-time.After(5 * time.Millisecond):
		}
	}

	var stops []error
	if policy == keel.ResetNone {
		// Every partition stops with a typed error on Events(); Run goes
		// on (other partitions would be read), and Seek restarts one.
		deadline := time.After(60 * time.Second)
		for {
			e.mu.Lock()
			stops = slices.Clone(e.errs)
			e.mu.Unlock()
			if len(stops) >= 3 {
				break
			}
			select {
			case err := <-runDone:
				t.Fatalf("Run ended: %v", err)
			case <-deadline:
				t.Fatalf("within 60s of the deletion under ResetNone, %d of 3 partitions reported stopping: %v", len(stops), stops)
			case <-time.After(20 * time.Millisecond):
			}
		}
		for _, err := range stops {
			if !errors.Is(err, keel.ErrOffsetOutOfRange) || !strings.Contains(err.Error(), "reset policy is none") {
				t.Errorf("partition stop %v: want ErrOffsetOutOfRange naming the policy", err)
			}
		}
		t.Logf("partitions stopped: %v", stops)
		for part := range int32(3) {
			if err := g.Seek(ctx, keel.TopicPartition{Topic: "orders", Partition: part}, keel.AtEarliest()); err != nil {
				t.Fatal(err)
			}
		}
	}

	// ResetEarliest: everything from the new log starts is processed.
	e.mu.Lock()
	deleteAt := maps.Clone(e.deleteAt)
	e.mu.Unlock()
	want := 0
	for _, w := range where {
		if w.off >= deleteAt[w.p] {
			want++
		}
	}
	for {
		seen.mu.Lock()
		done := 0
		for id, w := range where {
			if w.off >= deleteAt[w.p] && seen.counts[id] > 0 {
				done++
			}
		}
		seen.mu.Unlock()
		if done == want {
			break
		}
		select {
		case err := <-runDone:
			t.Fatalf("Run ended: %v", err)
		case <-ctx.Done():
			t.Fatalf("only %d of the %d records after the new log starts processed", done, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
	took := time.Since(start)
	// Let a late event arrive before counting (the reset is reported
	// before the records after it are fetched, so it is there already).
	time.Sleep(50 * time.Millisecond)
	e.mu.Lock()
	defer e.mu.Unlock()
	seen.mu.Lock()
	counts := maps.Clone(seen.counts)
	seen.mu.Unlock()
	from := map[int32]int64{}
	if policy == keel.ResetNone && len(e.resets) != 0 {
		t.Errorf("ResetNone moved positions by itself: %+v", e.resets)
	}
	for _, err := range stops { // ResetNone: where each partition stopped
		var part int32
		var off int64
		if _, scanErr := fmt.Sscanf(err.Error()[strings.Index(err.Error(), "offset "):], "offset %d of orders/%d", &off, &part); scanErr != nil {
			t.Fatalf("cannot read the offset and partition from %q: %v", err, scanErr)
		}
		from[part] = off
	}
	for _, r := range e.resets {
		if !errors.Is(r.Err, keel.ErrOffsetOutOfRange) {
			t.Errorf("PositionReset %+v: Err does not match ErrOffsetOutOfRange", r)
		}
		if f, ok := from[r.Partition.Partition]; !ok || r.From < f {
			from[r.Partition.Partition] = r.From
		}
	}
	var reportedLoss, unreported, skipped int
	for id, w := range where {
		if counts[id] > 0 {
			continue
		}
		f, reported := from[w.p]
		switch {
		case w.off >= deleteAt[w.p]:
			skipped++
		case reported && w.off >= f:
			reportedLoss++
		default:
			unreported++
		}
	}
	_, dup := seen.report(n)
	t.Logf("resets reported: %+v; first offsets processed after them: %v", e.resets, e.firstBy)
	t.Logf("ROW | retention under a slow consumer, %s | %d | deleted unread %d, all reported | unreported %d, skipped %d, twice %d | %v |", policyName(policy), n, reportedLoss, unreported, skipped, dup, took.Round(100*time.Millisecond))
	if unreported+skipped+dup != 0 {
		t.Fatalf("%d records lost without a PositionReset, %d records after the new log start never processed, %d processed twice", unreported, skipped, dup)
	}
	if reportedLoss == 0 {
		t.Fatal("nothing was deleted ahead of the consumer: the scenario did not happen")
	}
	for part, at := range deleteAt {
		if f, ok := e.firstBy[part]; !ok || f != at {
			t.Errorf("partition %d: first record processed after the reset at %d, want the new log start %d", part, f, at)
		}
	}
}
