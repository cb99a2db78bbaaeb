package fetch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/internal/topicpart"
)

// BenchmarkFetchAnswer measures the fetcher's bookkeeping for one fetch
// round of one broker of three — collect the request's partitions, apply
// the answer (8 of them with 10 records each), and the Poll that hands the
// records out — as the number of assigned partitions grows. What grows
// with the partitions of the whole consumer rather than with those of the
// answer is the cost that keeps a consumer of many partitions from
// scaling (issue 11). No network and no decoding: those are the same
// whatever the bookkeeping.
//
//	go test -run '^$' -bench FetchAnswer ./internal/fetch
func BenchmarkFetchAnswer(b *testing.B) {
	for _, n := range []int{64, 1024, 8192} {
		b.Run(fmt.Sprintf("partitions=%d", n), func(b *testing.B) { benchFetchAnswer(b, n) })
	}
}

func benchFetchAnswer(b *testing.B, n int) {
	const brokers, withData, perPartition = 3, 8, 10
	snap := &meta.Snapshot{Brokers: map[int32]meta.Broker{}, Topics: map[string]*meta.Topic{}, At: time.Now()}
	t := &meta.Topic{Name: "t", Partitions: make([]meta.Partition, n)}
	for i := range n {
		t.Partitions[i] = meta.Partition{ID: int32(i), Leader: int32(i % brokers), LeaderEpoch: 1}
	}
	snap.Topics["t"] = t
	for id := range int32(brokers) {
		snap.Brokers[id] = meta.Broker{ID: id, Host: "127.0.0.1", Port: 9000 + id}
	}
	m := meta.New(meta.Config{MinRefreshInterval: time.Hour}, nil)
	m.SetForTest(snap)
	f := New(Config{}, nil, m)
	b.Cleanup(func() { f.Close(); m.Close() })
	f.mu.Lock()
	f.topics["t"] = &topicLookup{} // known: no metadata lookup
	for id := range int32(brokers) {
		// Marked running, so that routing starts no goroutine: the
		// benchmark drives the broker's source itself.
		f.sources[id] = &source[Record]{f: f, id: id, running: true}
	}
	f.mu.Unlock()
	for i := range n {
		f.Assign(topicpart.TP{Topic: "t", Partition: int32(i)}, At(0))
	}
	s := f.sources[0]
	recs := make([]Record, perPartition)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		f.mu.Lock()
		_, parts, _ := s.collectLocked()
		f.mu.Unlock()
		if len(parts) == 0 {
			b.Fatal("nothing to fetch")
		}
		results := make([]result[Record], 0, withData)
		for _, r := range parts {
			if len(results) == withData {
				break
			}
			for i := range recs {
				recs[i].Offset = r.offset + int64(i)
			}
			d := decoded[Record]{records: recs, spans: []span{{end: perPartition, bytes: 1000}}, bytes: 1000, next: r.offset + perPartition}
			results = append(results, result[Record]{r: r, hwm: 1 << 40, d: d})
		}
		s.release(parts, func() {
			for _, res := range results {
				s.applyLocked(res, "bench")
			}
		})
		got, err := f.Poll(ctx, 0)
		if err != nil || len(got) != withData {
			b.Fatalf("polled %d partitions, %v", len(got), err)
		}
	}
}
