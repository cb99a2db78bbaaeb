package record

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Batch encode and decode at the shapes of the cross-client benchmark's
// workloads (bench/, issue 6): full batches of about 1 MB of 100 B, 1 KB
// and 10 KB values, with the codecs those workloads use. Run with:
//
//	go test -run XXX -bench 'Workload' -benchmem ./internal/record

// workloadShapes are the bench workloads' value sizes and codecs.
var workloadShapes = []struct {
	name  string
	value int
	codec Codec
}{
	{"100B-none", 100, CodecNone},
	{"1KB-lz4", 1000, CodecLZ4},
	{"1KB-zstd", 1000, CodecZstd},
	{"10KB-none", 10_000, CodecNone},
}

// workloadRecords fills about 1 MB (the producers' batch limit) with
// records of JSON-like values that compress to about a half (lz4) or a
// third (zstd), like the bench's payloads.
func workloadRecords(valueBytes int) []Record {
	rng := rand.New(rand.NewPCG(1, 2))
	const hex = "0123456789abcdef"
	n := 1_000_000 / (valueBytes + 10)
	recs := make([]Record, n)
	for i := range recs {
		v := fmt.Appendf(make([]byte, 0, valueBytes), `{"id":%d,"user":"user-%05d","data":"`, rng.Uint64(), rng.IntN(50_000))
		for len(v) < valueBytes {
			if rng.IntN(2) == 0 {
				for range 16 {
					v = append(v, hex[rng.IntN(16)])
				}
			} else {
				v = append(v, "click-event-payload-"...)
			}
		}
		recs[i] = Record{Value: v[:valueBytes], Timestamp: 1_700_000_000_000 + int64(i)}
	}
	return recs
}

// BenchmarkWorkloadEncode is the producer's per-batch work: append every
// record to a reused builder and finish the batch (compressing it) into a
// reused buffer. ns/op is per batch; ns/rec is per record.
func BenchmarkWorkloadEncode(b *testing.B) {
	for _, s := range workloadShapes {
		b.Run(s.name, func(b *testing.B) {
			recs := workloadRecords(s.value)
			bb := NewBatchBuilder(Compression{Codec: s.codec})
			var buf []byte
			var err error
			b.ReportAllocs()
			for b.Loop() {
				bb.Reset()
				for i := range recs {
					bb.Append(&recs[i])
				}
				if buf, err = bb.Finish(buf[:0], NoProducer); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(bb.Size()))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(recs)), "ns/rec")
			b.ReportMetric(float64(len(buf)), "wire-B")
		})
	}
}

// BenchmarkWorkloadDecode is the consumer's per-batch work as
// internal/fetch does it: decompress, then decode every record into a
// slice grown once (EachRecord), keeping the records.
func BenchmarkWorkloadDecode(b *testing.B) {
	for _, s := range workloadShapes {
		b.Run(s.name, func(b *testing.B) {
			recs := workloadRecords(s.value)
			raw := buildBatch(b, Compression{Codec: s.codec}, NoProducer, recs)
			d := NewDecompressor(0)
			var rd Reader
			var bt Batch
			out := make([]Record, 0, len(recs))
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				rd.Reset(raw)
				if err := rd.Next(&bt); err != nil {
					b.Fatal(err)
				}
				data, err := bt.Decompress(d, nil)
				if err != nil {
					b.Fatal(err)
				}
				out = out[:0]
				if err := bt.EachRecord(data, func(r *Record) { out = append(out, *r) }); err != nil {
					b.Fatal(err)
				}
				if len(out) != len(recs) {
					b.Fatalf("%d records, want %d", len(out), len(recs))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(recs)), "ns/rec")
		})
	}
}
