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
//   - record chunks of reported batches (recs.go): at most the budget's
//     worth of records (min(MaxBufferedRecords,
//     MaxBufferedBytes/RecordOverhead) × RecordOverhead: 8.4 MB by
//     default), and at least minKeptRecBytes (4 MiB). With a fixed
//     4 MiB the free lists could not hold the records of a full buffer
//     of small records, so their memory was made anew at full speed:
//     225 B allocated per 100 B record, the main cause of the garbage
//     collector's share of the CPU (issue 11: produce-100B went from
//     1.28× to 1.02× franz-go's CPU per record, keyed 16 goroutines
//     from 1.22× to 1.09×, with this bound);
//   - builders (one is in use per sink while it encodes): at most
//     keptBuilders, each with a buffer of at most 2 × MaxBatchBytes;
//   - buffers to compress into: at most keptBuilders, each of at most
//     2 × MaxBatchBytes.
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
	minKeptRecBytes = 4 << 20
	keptBuilders    = 4
	keptBatches     = 1024 // spare batch structs (a few hundred bytes each)
)

// recSize is the memory one buffered record takes in its batch.
const recSize = int(unsafe.Sizeof(Rec{}))

// builders backs builders beyond keptBuilders between batches.
var builders = sync.Pool{New: func() any { return record.NewBatchBuilder(record.Compression{}) }}

// recycler is an engine's free lists.
type recycler struct {
	maxBatch int // MaxBatchBytes

	mu         sync.Mutex
	builders   []*record.BatchBuilder
	wires      [][]byte
	wireBytes  int
	scratch    [][]byte    // buffers to compress into (see compressTarget)
	batches    []*batch    // spare batch structs
	free       []*recChunk // empty record chunks
	keptChunks int         // free chunks kept at most
}

func (r *recycler) init(cfg *Config) {
	r.maxBatch = max(cfg.MaxBatchBytes, 1)
	slots := int64(cfg.MaxBufferedRecords)
	if cfg.MaxBufferedBytes > 0 {
		slots = min(slots, cfg.MaxBufferedBytes/RecordOverhead)
	}
	r.keptChunks = int(max(slots*RecordOverhead, minKeptRecBytes)) / int(unsafe.Sizeof(recChunk{}))
}

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

// compressTarget returns an empty buffer with room for n bytes to
// compress a batch into. The compressed bytes are then copied into a
// wire buffer of their exact size and the target comes back by
// putCompressTarget. These are kept apart from the wire buffers: put
// back with them, the large targets were refused once the acknowledged
// batches' small exact buffers filled the kept bytes, so every
// compressed batch made a new buffer of its uncompressed size (issue 11:
// 600 B allocated per 1 KB lz4 record in produce-1KB-keyed-64g).
func (r *recycler) compressTarget(n int) []byte {
	r.mu.Lock()
	for i, w := range r.scratch {
		if cap(w) >= n {
			last := len(r.scratch) - 1
			r.scratch[i] = r.scratch[last]
			r.scratch[last] = nil
			r.scratch = r.scratch[:last]
			r.mu.Unlock()
			return w[:0]
		}
	}
	r.mu.Unlock()
	return make([]byte, 0, max(n, r.maxBatch))
}

// putCompressTarget takes back a buffer of compressTarget.
func (r *recycler) putCompressTarget(w []byte) {
	if cap(w) > 2*r.maxBatch {
		return
	}
	r.mu.Lock()
	if len(r.scratch) < keptBuilders {
		r.scratch = append(r.scratch, w)
	}
	r.mu.Unlock()
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

// batch returns an empty open batch for p with room for want records.
func (r *recycler) batch(p *partState, want int) *batch {
	r.mu.Lock()
	var b *batch
	if n := len(r.batches); n > 0 {
		b = r.batches[n-1]
		r.batches[n-1] = nil
		r.batches = r.batches[:n-1]
	}
	r.mu.Unlock()
	if b == nil {
		b = new(batch)
	}
	// The chunks the estimate asks for come under one lock; the batch
	// takes more one at a time if it outgrows them, and gives back those
	// it did not fill when it is sealed.
	list := r.chunks(b.recs.chunks[:0], (want+chunkMask)>>chunkShift)
	*b = batch{p: p, size: record.BatchHeaderLen, recs: Recs{chunks: list}, pid: -1, epoch: -1, seq: -1}
	return b
}

// chunk returns an empty record chunk.
func (r *recycler) chunk() *recChunk {
	r.mu.Lock()
	if l := len(r.free); l > 0 {
		c := r.free[l-1]
		r.free[l-1] = nil
		r.free = r.free[:l-1]
		r.mu.Unlock()
		return c
	}
	r.mu.Unlock()
	return new(recChunk)
}

// chunks appends k empty record chunks to dst, under one lock.
func (r *recycler) chunks(dst []*recChunk, k int) []*recChunk {
	r.mu.Lock()
	take := min(k, len(r.free))
	from := len(r.free) - take
	dst = append(dst, r.free[from:]...)
	clear(r.free[from:])
	r.free = r.free[:from]
	r.mu.Unlock()
	for range k - take {
		dst = append(dst, new(recChunk))
	}
	return dst
}

// putChunks takes back cleared chunks nothing refers to; those beyond the
// kept bound are left to the collector.
func (r *recycler) putChunks(cs []*recChunk) {
	r.mu.Lock()
	room := r.keptChunks - len(r.free)
	if room > 0 {
		r.free = append(r.free, cs[:min(room, len(cs))]...)
	}
	r.mu.Unlock()
}

// putRecs takes back batch b once it is reported and nothing refers to
// it: its record slice and the batch itself.
func (r *recycler) putRecs(b *batch) {
	if b.bb != nil {
		r.putBuilder(b.bb)
		b.bb = nil
	}
	b.recs.release(r)
	list := b.recs.chunks
	*b = batch{recs: Recs{chunks: list}}
	r.mu.Lock()
	if len(r.batches) < keptBatches {
		r.batches = append(r.batches, b)
	}
	r.mu.Unlock()
}

// release drops everything (the engine is idle or closed).
func (r *recycler) release() {
	r.mu.Lock()
	r.builders, r.wires, r.batches, r.scratch = nil, nil, nil, nil
	r.free = nil
	r.wireBytes = 0
	r.mu.Unlock()
}

// RecordOverhead is what the producer counts against MaxBufferedBytes for
// each record beyond its key, value and headers: the record's place in its
// batch.
const RecordOverhead = int64(recSize)
