package produce

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
)

// owned returns record i of an ordered test run: Owner i, a value of its own.
func owned(i int) Rec {
	return Rec{Owner: i, Record: record.Record{Value: []byte{byte(i), byte(i >> 8)}}}
}

func checkOwners(t *testing.T, what string, l *Recs, want []int) {
	t.Helper()
	if l.Len() != len(want) {
		t.Fatalf("%s: %d records, want %d", what, l.Len(), len(want))
	}
	for i, w := range want {
		if got := l.At(i).Owner; got != w {
			t.Fatalf("%s: record %d is %v, want %d", what, i, got, w)
		}
	}
}

// A batch's records survive growth over many chunks in order, and
// truncating clears the dropped places and gives back only the chunks left
// empty.
func TestRecsGrowAcrossChunksAndTruncate(t *testing.T) {
	e, _, _ := testEngine()
	bufs := &e.bufs
	var l Recs
	n := 3*chunkRecs + 5
	var want []int
	for i := range n {
		r := owned(i)
		l.push(&r, bufs)
		want = append(want, i)
	}
	checkOwners(t, "after pushes", &l, want)
	if len(l.chunks) != 4 {
		t.Fatalf("%d records in %d chunks, want 4", n, len(l.chunks))
	}
	last := l.chunks[3]
	keep := chunkRecs + 1
	l.truncate(keep, bufs)
	checkOwners(t, "after truncate", &l, want[:keep])
	if len(l.chunks) != 2 || len(bufs.free) != 2 {
		t.Fatalf("after truncating to %d: %d chunks kept, %d free; want 2 and 2", keep, len(l.chunks), len(bufs.free))
	}
	for _, c := range bufs.free {
		for i := range c {
			if c[i].Owner != nil || c[i].Record.Value != nil {
				t.Fatal("a chunk came back to the free list with a record in it")
			}
		}
	}
	if bufs.free[0] != last && bufs.free[1] != last {
		t.Fatal("the emptied last chunk is not on the free list")
	}
	for i := keep; i < 2*chunkRecs; i++ {
		if r := l.chunks[1][i&chunkMask]; r.Owner != nil {
			t.Fatalf("place %d kept record %v after truncate", i, r.Owner)
		}
	}
	l.release(bufs)
	if l.Len() != 0 || len(l.chunks) != 0 || len(bufs.free) != 4 {
		t.Fatalf("after release: %d records, %d chunks, %d free", l.Len(), len(l.chunks), len(bufs.free))
	}
}

// The free list keeps at most keptChunks chunks.
func TestRecChunkFreeListBounded(t *testing.T) {
	e, _, _ := testEngine()
	bufs := &e.bufs
	bufs.keptChunks = 3
	cs := bufs.chunks(nil, 5)
	bufs.putChunks(cs)
	if len(bufs.free) != 3 {
		t.Fatalf("%d free chunks kept, bound 3", len(bufs.free))
	}
	got := bufs.chunks(nil, 4)
	if len(got) != 4 || len(bufs.free) != 0 {
		t.Fatalf("took %d chunks leaving %d free; want 4 and 0", len(got), len(bufs.free))
	}
}

// A batch sealed with fewer records than its estimate gives the chunks it
// did not fill back.
func TestRecsSealGivesBackUnfilledChunks(t *testing.T) {
	e, p, s := testEngine()
	b := e.bufs.batch(p, 4*chunkRecs)
	if len(b.recs.chunks) != 4 {
		t.Fatalf("an estimate of %d records took %d chunks, want 4", 4*chunkRecs, len(b.recs.chunks))
	}
	b.created = e.now() - 1e12
	b.deadline = e.now() + 1e12
	for i := range 3 {
		r := owned(i)
		b.add(&r, b.recordSize(&r.Record))
	}
	p.batches = []*batch{b}
	free := len(e.bufs.free)
	if got := send(e, p, s, e.now()); got != b {
		t.Fatal("the batch was not sent")
	}
	if len(b.recs.chunks) != 1 || len(e.bufs.free) != free+3 {
		t.Fatalf("sealed with 3 records: %d chunks kept, %d given back; want 1 and 3", len(b.recs.chunks), len(e.bufs.free)-free)
	}
}

// Records cancelled in an open batch leave it; the others close up in
// order across chunk boundaries.
func TestRecsDropCancelledAcrossChunks(t *testing.T) {
	e, p, _ := testEngine()
	b := testBatch(p, 0)
	ctx, cancel := context.WithCancel(context.Background())
	live := context.Background()
	n := 2*chunkRecs + 3
	var want []int
	for i := range n {
		r := owned(i)
		r.Ctx = live
		if i%3 == 0 {
			r.Ctx = ctx
		} else {
			want = append(want, i)
		}
		b.add(&r, b.recordSize(&r.Record))
	}
	cancel()
	var log reportLog
	e.cfg.Complete = log.complete
	p.dropCancelledLocked(b)
	p.deliver()
	checkOwners(t, "kept", &b.recs, want)
	if got := len(log.snapshot()); got != n-len(want) {
		t.Fatalf("%d cancelled records reported, want %d", got, n-len(want))
	}
	size := record.BatchHeaderLen
	for i := range b.recs.Len() {
		size += int(b.recs.At(i).size)
	}
	if size != b.size {
		t.Fatalf("batch size %d, records add up to %d", b.size, size)
	}
}

// A batch refused as too large splits into two halves across a chunk
// boundary, every record once and in order, and both halves are reported.
func TestRecsSplitAcrossChunksKeepsOrder(t *testing.T) {
	e, p, s := testEngine()
	var log reportLog
	e.cfg.Complete = log.complete
	n := 3*chunkRecs + 7
	b := numbered(p, 0, n)
	b.created = e.now() - 1e12
	p.batches = []*batch{b}
	if send(e, p, s, e.now()) != b {
		t.Fatal("setup: not sent")
	}
	p.resolve(b, "b", kmsg.ProduceResponseTopicPartition{ErrorCode: errs.CodeMessageTooLarge})
	if len(p.batches) != 2 {
		t.Fatalf("%d batches after the split, want 2", len(p.batches))
	}
	var want []int
	for i := range n {
		want = append(want, i)
	}
	checkOwners(t, "first half", &p.batches[0].recs, want[:n/2])
	checkOwners(t, "second half", &p.batches[1].recs, want[n/2:])
	later := e.now() + 1e12
	for range 2 {
		nb := send(e, p, s, later)
		if nb == nil {
			t.Fatal("a half was not sent")
		}
		p.resolve(nb, "b", kmsg.ProduceResponseTopicPartition{})
	}
	order := log.snapshot()
	if len(order) != n || !inOrder(order) {
		t.Fatalf("reported %d records (in order: %v), want %d in order", len(order), inOrder(order), n)
	}
	for id, err := range log.errs {
		if err != nil {
			t.Fatalf("record %d failed: %v", id, err)
		}
	}
}

// A report Complete keeps holds its records until the producer gives it
// back with Recycle: later batches do not take its chunks meanwhile, and
// Recycle returns them to the free list.
func TestKeptReportHoldsItsRecordsUntilRecycled(t *testing.T) {
	e, p, s := testEngine()
	e.cfg.Acks = -1 // offsets known
	var kept []*Report
	e.cfg.Complete = func(rep *Report) bool {
		if !rep.Delivered() {
			return false
		}
		kept = append(kept, rep)
		return true
	}
	n := 2*chunkRecs + 5
	var want []int
	for round := range 2 {
		b := numbered(p, round*n, n)
		b.created = e.now() - 1e12
		p.batches = []*batch{b}
		if send(e, p, s, e.now()) != b {
			t.Fatalf("round %d: not sent", round)
		}
		free := len(e.bufs.free)
		p.resolve(b, "b", kmsg.ProduceResponseTopicPartition{BaseOffset: int64(round * n)})
		if len(kept) != round+1 {
			t.Fatalf("round %d: %d reports kept, want %d", round, len(kept), round+1)
		}
		if got := len(e.bufs.free); got != free {
			t.Fatalf("round %d: %d chunks freed while the report is kept", round, got-free)
		}
		for i := range n {
			want = append(want, round*n+i)
		}
	}
	for k, rep := range kept {
		checkOwners(t, fmt.Sprintf("kept report %d", k), &rep.Recs, want[k*n:(k+1)*n])
		if res := rep.Result(n - 1); res.Err != nil || res.Offset != int64(k*n+n-1) {
			t.Fatalf("kept report %d: last record's result %+v", k, res)
		}
	}
	free := len(e.bufs.free)
	chunks := len(kept[0].Recs.chunks)
	e.Recycle(kept[0])
	if got := len(e.bufs.free) - free; got != chunks {
		t.Fatalf("Recycle gave back %d chunks, want %d", got, chunks)
	}
}
