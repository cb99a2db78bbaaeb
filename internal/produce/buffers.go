package produce

import (
	"sync"
	"unsafe"

	"github.com/keel-go/keel/internal/record"
)

// The engine keeps a little memory for its next batches rather than
// leaving it to the garbage collector: making a megabyte-sized buffer anew
// per batch costs a large zeroed allocation, a buffer grown by doubling
// and the collection of both, which at full speed was a quarter of the
// producer's CPU time (issue 6).
//
// What is kept, and so the memory keel holds beyond MaxBufferedBytes (the
// documented constant of issue 11):
//
//   - wire buffers of acknowledged batches: at most keptWireBatches
//     batches' worth (4 × MaxBatchBytes, 4 MB by default);
//   - record slices of reported batches: at most keptRecBytes (4 MiB);
//   - builders (one is in use per sink while it encodes): at most
//     keptBuilders, each with a buffer of at most 2 × MaxBatchBytes.
//
// Since issue 11 a batch is encoded when it is sent, so only batches in
// flight (or waiting to be resent) have a wire buffer: that memory is
// bounded by the records' own budget (a wire holds the records' encoded
// bytes, which MaxBufferedBytes counts) and is not kept per open batch as
// before (64 builders of up to a megabyte each: the 2.3-2.9× franz-go's
// peak RSS of issue 11). Everything kept is dropped when the producer
// goes idle.
const (
	keptWireBatches = 4
	keptRecBytes    = 4 << 20
	keptBuilders    = 4
)

// recSize is the memory one buffered record takes in its batch.
const recSize = int(unsafe.Sizeof(Rec{}))

// builders backs builders beyond keptBuilders between batches.
var builders = sync.Pool{New: func() any { return record.NewBatchBuilder(record.Compression{}) }}

// recycler is an engine's free lists.
type recycler struct {
	maxBatch int // MaxBatchBytes

	mu        sync.Mutex
	builders  []*record.BatchBuilder
	wires     [][]byte
	wireBytes int
	batches   []*batch
	recBytes  int
}

func (r *recycler) init(cfg *Config) { r.maxBatch = max(cfg.MaxBatchBytes, 1) }

// builder returns an empty builder compressing with c.
func (r *recycler) builder(c record.Compression) *record.BatchBuilder {
	var b *record.BatchBuilder
	r.mu.Lock()
	if n := len(r.builders); n > 0 {
		b = r.builders[n-1]
		r.builders[n-1] = nil
		r.builders = r.builders[:n-1]
	}
	r.mu.Unlock()
	if b == nil {
		b = builders.Get().(*record.BatchBuilder)
	}
	b.Reset()
	b.SetCompression(c)
	return b
}

// putBuilder takes back a builder nothing refers to any more.
func (r *recycler) putBuilder(b *record.BatchBuilder) {
	r.mu.Lock()
	if len(r.builders) < keptBuilders {
		r.builders = append(r.builders, b)
		b = nil
	}
	r.mu.Unlock()
	if b != nil {
		builders.Put(b)
	}
}

// wire returns an empty buffer with room for n bytes.
func (r *recycler) wire(n int) []byte {
	r.mu.Lock()
	best := -1
	for i, w := range r.wires {
		if cap(w) >= n && (best < 0 || cap(w) < cap(r.wires[best])) {
			best = i
		}
	}
	if best >= 0 {
		w := r.wires[best]
		last := len(r.wires) - 1
		r.wires[best] = r.wires[last]
		r.wires[last] = nil
		r.wires = r.wires[:last]
		r.wireBytes -= cap(w)
		r.mu.Unlock()
		return w[:0]
	}
	r.mu.Unlock()
	return make([]byte, 0, n)
}

// putWire takes back the wire buffer of a batch that is done for good: one
// that can still be resent must keep its exact bytes.
func (r *recycler) putWire(w []byte) {
	if cap(w) == 0 || cap(w) > 2*r.maxBatch {
		return
	}
	r.mu.Lock()
	if r.wireBytes+cap(w) <= keptWireBatches*r.maxBatch {
		r.wires = append(r.wires, w)
		r.wireBytes += cap(w)
	}
	r.mu.Unlock()
}

// batch returns an empty open batch for p with room for want records,
// with a recycled record slice when one that large is kept.
func (r *recycler) batch(p *partState, want int) *batch {
	want = max(want, 16)
	r.mu.Lock()
	var b *batch
	for i := len(r.batches) - 1; i >= 0; i-- {
		if cap(r.batches[i].recs) >= want {
			b = r.batches[i]
			last := len(r.batches) - 1
			r.batches[i] = r.batches[last]
			r.batches[last] = nil
			r.batches = r.batches[:last]
			r.recBytes -= cap(b.recs) * recSize
			break
		}
	}
	r.mu.Unlock()
	if b == nil {
		// Sized like the partition's previous batch: growing the slice
		// by doubling to thousands of records copied it a dozen times
		// per batch, with a write barrier per pointer, and was most of
		// the producer's allocations with small records.
		return &batch{p: p, size: record.BatchHeaderLen, recs: make([]Rec, 0, want), pid: -1, epoch: -1, seq: -1}
	}
	*b = batch{p: p, size: record.BatchHeaderLen, recs: b.recs[:0], pid: -1, epoch: -1, seq: -1}
	return b
}

// putRecs takes back batch b once it is reported and nothing refers to
// it. Its records are cleared first: a kept slice must not keep the
// callers' values alive.
func (r *recycler) putRecs(b *batch) {
	if b.bb != nil {
		r.putBuilder(b.bb)
		b.bb = nil
	}
	clear(b.recs)
	bytes := cap(b.recs) * recSize
	r.mu.Lock()
	if r.recBytes+bytes <= keptRecBytes {
		r.batches = append(r.batches, b)
		r.recBytes += bytes
	}
	r.mu.Unlock()
}

// release drops everything (the engine is idle or closed).
func (r *recycler) release() {
	r.mu.Lock()
	r.builders, r.wires, r.batches = nil, nil, nil
	r.wireBytes, r.recBytes = 0, 0
	r.mu.Unlock()
}

// RecordOverhead is what the producer counts against MaxBufferedBytes for
// each record beyond its key, value and headers: the record's place in its
// batch.
const RecordOverhead = int64(recSize)
