package produce

// A batch keeps its records in fixed-size chunks from one free list
// (recycler.chunk), so that it grows by taking one more chunk: nothing is
// copied, and no outgrown slice is left behind. With one slice per batch
// sized by an estimate, a batch that outgrew its slice moved to one twice
// as large; those moves made 79-85 % of the record-slice memory with
// 100 B records and left half-size slices on free lists the estimates
// rarely asked for again (issue 11, docs/BENCHMARKS.md "Third look").
// Now at most one chunk per batch is partly filled, and every chunk freed
// fits every batch.

const (
	chunkShift = 5
	// chunkRecs is the records per chunk: 32 × 168 B = 5.25 KiB. Small
	// enough that the partly filled last chunk of each of 64 partitions'
	// batches wastes little (batches of 20-30 records are common with
	// keyed records on many partitions), large enough that taking a
	// chunk (one lock) is rare per record.
	chunkRecs = 1 << chunkShift
	chunkMask = chunkRecs - 1
)

// recChunk is one chunk of a batch's records.
type recChunk [chunkRecs]Rec

// Recs is a run of records in produce order: a batch's, in chunks, or
// loose records (failed before they reached a batch, or waiting for
// metadata) in one slice.
type Recs struct {
	chunks []*recChunk
	loose  []Rec
	n      int
}

// LooseRecs returns recs as a run, without copying.
func LooseRecs(recs []Rec) Recs { return Recs{loose: recs, n: len(recs)} }

// Len is the number of records.
func (l *Recs) Len() int { return l.n }

// At returns record i, in place.
func (l *Recs) At(i int) *Rec {
	if l.loose != nil {
		return &l.loose[i]
	}
	return &l.chunks[i>>chunkShift][i&chunkMask]
}

// push appends a copy of r, taking a chunk from bufs when the last is
// full.
func (l *Recs) push(r *Rec, bufs *recycler) {
	if l.n == len(l.chunks)<<chunkShift {
		l.chunks = append(l.chunks, bufs.chunk())
	}
	l.chunks[l.n>>chunkShift][l.n&chunkMask] = *r
	l.n++
}

// truncate drops the records from n on (which the caller has moved or
// reported), clearing their places so that they keep no caller's value
// alive, and gives the chunks left empty back to bufs.
func (l *Recs) truncate(n int, bufs *recycler) {
	for i := n; i < l.n; {
		c, at := l.chunks[i>>chunkShift], i&chunkMask
		end := min(chunkRecs, at+l.n-i)
		clear(c[at:end])
		i += end - at
	}
	l.n = n
	keep := (n + chunkMask) >> chunkShift
	if keep < len(l.chunks) {
		bufs.putChunks(l.chunks[keep:])
		clear(l.chunks[keep:])
		l.chunks = l.chunks[:keep]
	}
}

// release clears every record and gives every chunk back to bufs; the
// chunk list itself is kept, empty, for the next batch.
func (l *Recs) release(bufs *recycler) {
	if l.loose != nil {
		*l = Recs{}
		return
	}
	l.truncate(0, bufs)
}
