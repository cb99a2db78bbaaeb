package produce

import (
	"sync"

	"github.com/keel-go/keel/internal/record"
)

// Every batch needs a builder (whose buffer grows to the batch's size) and
// a wire buffer (the finished batch, kept until the broker acknowledges
// it). Both are up to MaxBatchBytes, so making them anew per batch costs a
// large zeroed allocation, a buffer grown by doubling, and the garbage
// collection of both: at full speed that was a quarter of the producer's
// CPU time (cross-client benchmark, issue 6). The engine keeps a few of
// each for the next batches. sync.Pool alone was not enough: at the
// allocation rate of a busy producer the garbage collector empties it
// every few dozen batches.

// How many of each the engine keeps: enough for the batches its buffer
// budget can hold at once (Config.MaxBufferedBytes / MaxBatchBytes), so
// that a producer running at its budget, with dozens of batches queued and
// in flight, reuses its buffers instead of cycling them through the
// garbage collector (with 8 of each, a sixth of the batches of 10 KB
// records grew a new builder from 4 KiB by doubling: issue 6). The memory
// kept is what the producer just used at its busiest, within its budget,
// and is dropped when the producer goes idle.
const (
	minKeep = 8
	maxKeep = 64
)

// keepFor is how many builders (and wires) an engine configured with cfg
// keeps.
func keepFor(cfg *Config) int {
	if cfg.MaxBatchBytes <= 0 {
		return minKeep
	}
	return int(min(max(cfg.MaxBufferedBytes/int64(cfg.MaxBatchBytes), minKeep), maxKeep))
}

// builders backs the engine's own small cache.
var builders = sync.Pool{New: func() any { return record.NewBatchBuilder(record.Compression{}) }}

// recycler is an engine's cache of builders and wire buffers.
type recycler struct {
	keep     int // builders and wires kept, each
	mu       sync.Mutex
	builders []*record.BatchBuilder
	wires    [][]byte
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
	if len(r.builders) < r.keep {
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
	for i := len(r.wires) - 1; i >= 0; i-- {
		if w := r.wires[i]; cap(w) >= n {
			last := len(r.wires) - 1
			r.wires[i] = r.wires[last]
			r.wires[last] = nil
			r.wires = r.wires[:last]
			r.mu.Unlock()
			return w[:0]
		}
	}
	r.mu.Unlock()
	return make([]byte, 0, n)
}

// putWire takes back the wire buffer of an acknowledged batch. Only a
// batch that is done for good may give its buffer back: one that can
// still be retried must keep its exact bytes.
func (r *recycler) putWire(w []byte, maxBytes int) {
	if cap(w) == 0 || cap(w) > 2*maxBytes {
		return
	}
	r.mu.Lock()
	if len(r.wires) < r.keep {
		r.wires = append(r.wires, w)
	}
	r.mu.Unlock()
}

// release drops everything (the engine is closed).
func (r *recycler) release() {
	r.mu.Lock()
	r.builders, r.wires = nil, nil
	r.mu.Unlock()
}
