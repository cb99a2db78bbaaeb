package fetch

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"
	"weak"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/internal/topicpart"
)

// offline returns a Fetcher with no cluster behind it: partitions are
// injected with inject, as a source would after a fetch answer.
func offline(t *testing.T, cfg Config) *Fetcher {
	m := meta.New(meta.Config{MinRefreshInterval: time.Hour, Backoff: cfg.RetryBackoff}, nil)
	f := New(cfg, nil, m)
	t.Cleanup(func() { f.Close(); m.Close() })
	return f
}

// inject assigns tp at offset and applies data as if fetched from there.
func inject(t *testing.T, f *Fetcher, tp topicpart.TP, offset int64, data []byte) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.topics[tp.Topic] = &topicLookup{} // known: no metadata lookup
	p := f.parts[tp]
	if p == nil {
		p = f.assignLocked(tp)
		f.startAtLocked(p, At(offset))
	}
	d := decodePartition(data, p.fetchOffset, false, nil, f.dec)
	s := &source[Record]{f: f}
	s.applyLocked(result[Record]{r: inReq[Record]{p: p, gen: p.gen, offset: p.fetchOffset}, hwm: 100, d: d}, "test")
}

func pollNow(t *testing.T, f *Fetcher, max int) []Fetch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	out, err := f.Poll(ctx, max)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	return out
}

func TestPollLimitsPositionsAndBudget(t *testing.T) {
	f := offline(t, Config{})
	tp := topicpart.TP{Topic: "t", Partition: 0}
	one := dataBatch(t, 0, 4, record.NoProducer, record.CodecNone)
	two := dataBatch(t, 4, 4, record.NoProducer, record.CodecGzip)
	inject(t, f, tp, 0, slices.Concat(one, two, controlBatch(8, 9, record.ControlCommit)))
	size := int64(len(one) - record.BatchHeaderLen)
	if got := f.Buffered(); got != 2*size {
		t.Fatalf("buffered %d, want %d", got, 2*size)
	}

	got := pollNow(t, f, 3)
	if len(got) != 1 || !slices.Equal(offsets(got[0].Records), span64(0, 3)) || got[0].HighWatermark != 100 {
		t.Fatalf("first poll %+v", got)
	}
	if pos, _ := f.Position(tp); pos.At != 3 {
		t.Fatalf("position %d", pos.At)
	}
	if f.Buffered() != 2*size {
		t.Fatal("budget released before the batch was handed out entirely")
	}
	got = pollNow(t, f, 2)
	if !slices.Equal(offsets(got[0].Records), []int64{3, 4}) || f.Buffered() != size {
		t.Fatalf("second poll %v, buffered %d", offsets(got[0].Records), f.Buffered())
	}
	got = pollNow(t, f, 0)
	if !slices.Equal(offsets(got[0].Records), span64(5, 8)) || f.Buffered() != 0 {
		t.Fatalf("third poll %v, buffered %d", offsets(got[0].Records), f.Buffered())
	}
	// The commit marker at 8 was skipped: the position is past it.
	if pos, _ := f.Position(tp); pos.At != 9 {
		t.Fatalf("position %d, want 9", pos.At)
	}
	if got := pollNow(t, f, 0); got != nil {
		t.Fatalf("nothing left, got %+v", got)
	}
}

func TestPollDropsBelowPositionAndSeekDropsBuffer(t *testing.T) {
	f := offline(t, Config{})
	tp := topicpart.TP{Topic: "t", Partition: 0}
	// The broker answers a fetch at 6 with the whole batch from 4.
	inject(t, f, tp, 6, dataBatch(t, 4, 6, record.NoProducer, record.CodecZstd))
	got := pollNow(t, f, 0)
	if !slices.Equal(offsets(got[0].Records), span64(6, 10)) {
		t.Fatalf("records %v", offsets(got[0].Records))
	}
	inject(t, f, tp, 10, dataBatch(t, 10, 5, record.NoProducer, record.CodecNone))
	if f.Buffered() == 0 {
		t.Fatal("nothing buffered")
	}
	f.Seek(tp, At(3))
	if f.Buffered() != 0 {
		t.Fatalf("Seek kept %d bytes", f.Buffered())
	}
	if pos, ok := f.Position(tp); !ok || pos.At != 3 {
		t.Fatalf("position after seek %v %v", pos, ok)
	}
	if got := pollNow(t, f, 0); got != nil {
		t.Fatalf("records from before the seek: %+v", got)
	}
}

func TestPollReportsErrorOnceAfterRecords(t *testing.T) {
	f := offline(t, Config{})
	tp := topicpart.TP{Topic: "t", Partition: 0}
	bad := dataBatch(t, 3, 3, record.NoProducer, record.CodecNone)
	bad[len(bad)-1] ^= 1
	inject(t, f, tp, 0, slices.Concat(dataBatch(t, 0, 3, record.NoProducer, record.CodecNone), bad))
	got := pollNow(t, f, 0)
	if len(got) != 1 || !slices.Equal(offsets(got[0].Records), span64(0, 3)) || !errors.Is(got[0].Err, errs.ErrCorruptMessage) {
		t.Fatalf("got %+v", got)
	}
	if pos, _ := f.Position(tp); pos.At != 3 {
		t.Fatalf("position %d, want the bad batch at 3", pos.At)
	}
	if got := pollNow(t, f, 0); got != nil {
		t.Fatalf("error reported twice: %+v", got)
	}
}

func TestPausedPartitionKeepsBuffer(t *testing.T) {
	f := offline(t, Config{})
	a, b := topicpart.TP{Topic: "t", Partition: 0}, topicpart.TP{Topic: "t", Partition: 1}
	inject(t, f, a, 0, dataBatch(t, 0, 2, record.NoProducer, record.CodecNone))
	inject(t, f, b, 0, dataBatch(t, 0, 2, record.NoProducer, record.CodecNone))
	f.Pause(a)
	got := pollNow(t, f, 0)
	if len(got) != 1 || got[0].TP != b {
		t.Fatalf("paused partition returned: %+v", got)
	}
	f.Resume(a)
	got = pollNow(t, f, 0)
	if len(got) != 1 || got[0].TP != a || len(got[0].Records) != 2 {
		t.Fatalf("after resume: %+v", got)
	}
}

func TestPollWaitsAndClose(t *testing.T) {
	f := offline(t, Config{})
	done := make(chan error)
	go func() {
		_, err := f.Poll(context.Background(), 0)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	inject(t, f, topicpart.TP{Topic: "t", Partition: 0}, 0, dataBatch(t, 0, 1, record.NoProducer, record.CodecNone))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := f.Poll(context.Background(), 0)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	f.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Poll after Close: %v", err)
	}
}

// A commit marker after the records a consumer took moves the position
// past it, and Poll says so with a Fetch without records whose Next is
// the end: a consumer commits that, not the marker's offset (the lag of 1
// of issue 13). Two markers in a row come as one move.
func TestPollHandsOutMovesPastMarkers(t *testing.T) {
	f := offline(t, Config{})
	tp := topicpart.TP{Topic: "t", Partition: 0}
	inject(t, f, tp, 0, slices.Concat(dataBatch(t, 0, 3, record.NoProducer, record.CodecNone), controlBatch(3, 9, record.ControlCommit)))
	got := pollNow(t, f, 0)
	if len(got) != 1 || !slices.Equal(offsets(got[0].Records), span64(0, 3)) || got[0].Next.At != 4 {
		t.Fatalf("records then marker: %+v", got)
	}
	inject(t, f, tp, 4, dataBatch(t, 4, 2, record.NoProducer, record.CodecNone))
	inject(t, f, tp, 6, controlBatch(6, 9, record.ControlCommit))
	inject(t, f, tp, 7, controlBatch(7, 9, record.ControlAbort))
	got = pollNow(t, f, 1)
	if len(got) != 1 || !slices.Equal(offsets(got[0].Records), []int64{4}) || got[0].Next.At != 5 {
		t.Fatalf("cut by the limit: %+v", got)
	}
	got = pollNow(t, f, 0)
	if len(got) != 1 || !slices.Equal(offsets(got[0].Records), []int64{5}) || got[0].Next.At != 8 {
		t.Fatalf("the last record with both markers after it: %+v", got)
	}
	inject(t, f, tp, 8, controlBatch(8, 9, record.ControlCommit))
	got = pollNow(t, f, 0)
	if len(got) != 1 || len(got[0].Records) != 0 || got[0].Err != nil || got[0].Next.At != 9 {
		t.Fatalf("a marker alone: %+v", got)
	}
	if pos, _ := f.Position(tp); pos.At != 9 {
		t.Fatalf("position %d, want 9", pos.At)
	}
	if got := pollNow(t, f, 0); got != nil {
		t.Fatalf("nothing left, got %+v", got)
	}
}

// TestPollForgetsDrainedChunks: once Poll has handed a chunk out, the
// fetcher holds nothing of it, so the records (and the fetch answer they
// point into) live only as long as the caller keeps them. Before, the
// partition's queue kept its drained slot, and so each partition's last
// chunk, alive until the next chunk came: half the consumer's live heap at
// 64 partitions.
func TestPollForgetsDrainedChunks(t *testing.T) {
	f := offline(t, Config{})
	tp := topicpart.TP{Topic: "t", Partition: 0}
	for _, queued := range []int{1, 2} { // the chunk alone, and before another
		inject(t, f, tp, int64((queued-1)*8), dataBatch(t, int64((queued-1)*8), 4, record.NoProducer, record.CodecNone))
		if queued == 2 {
			inject(t, f, tp, 4, dataBatch(t, 12, 4, record.NoProducer, record.CodecNone))
		}
		got := pollNow(t, f, 4)
		if len(got) != 1 || len(got[0].Records) != 4 {
			t.Fatalf("queued %d: poll %+v", queued, got)
		}
		handed := weak.Make(&got[0].Records[0])
		got = nil
		runtime.GC()
		runtime.GC()
		if handed.Value() != nil {
			t.Errorf("queued %d: the fetcher still holds the chunk it handed out", queued)
		}
		pollNow(t, f, 0) // what is left
	}
}
