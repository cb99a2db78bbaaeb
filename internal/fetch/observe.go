package fetch

import (
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/topicpart"
)

// Batch is one partition's part of a fetch answer, for Config.OnBatch.
type Batch struct {
	Broker        string
	TP            topicpart.TP
	Records       int
	Bytes         int64 // decompressed
	HighWatermark int64
	Err           error // a decoding error that stops the partition
}

// noteBatches tells fn of the data partitions got in one answer (not of
// partitions that failed with an error code: the fetcher retries those).
func noteBatches[R any](fn func(Batch), addr string, results []result[R]) {
	for i := range results {
		res := &results[i]
		if res.code != errs.CodeNone {
			continue
		}
		fn(Batch{Broker: addr, TP: res.r.p.tp, Records: len(res.d.records), Bytes: res.d.bytes, HighWatermark: res.hwm, Err: res.d.err})
	}
}

// PartitionInfo is where one assigned partition stands, for Partitions.
type PartitionInfo struct {
	TP            topicpart.TP
	HighWatermark int64  // -1 before the first answer
	Position      Offset // next offset Poll returns; At -1 while resolving
	State         string // "resolving", "fetching", "stopped"
	Paused        bool
}

// Partitions calls fn for every assigned partition, under the fetcher's
// lock: fn must be quick and must not call the fetcher.
func (f *Of[R]) Partitions(fn func(PartitionInfo)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for tp, p := range f.parts {
		pi := PartitionInfo{TP: tp, HighWatermark: p.hwm, Position: p.position, Paused: p.paused}
		switch p.state {
		case stResolve:
			pi.State = "resolving"
			if len(p.buf) == 0 {
				pi.Position.At = -1
			}
		case stFetch:
			pi.State = "fetching"
		default:
			pi.State = "stopped"
		}
		fn(pi)
	}
}
