package record

import (
	"fmt"
	"io"
	"testing"
)

// benchRecords returns 1000 records with 100-byte values that look like
// typical JSON-ish payloads (partly repetitive, partly varying).
func benchRecords() []Record {
	recs := make([]Record, 1000)
	for i := range recs {
		v := fmt.Appendf(nil, `{"id":%08d,"user":"user-%04d","event":"click","ok":true,"pad":"`, i, i%977)
		for len(v) < 99 {
			v = append(v, byte('a'+(i+len(v))%26))
		}
		v = append(v, '}')
		recs[i] = Record{Key: fmt.Appendf(nil, "key-%d", i%64), Value: v, Timestamp: 1_700_000_000_000 + int64(i)}
	}
	return recs
}

var benchCodecs = []Compression{{Codec: CodecNone}, {Codec: CodecLZ4}, {Codec: CodecZstd}}

func BenchmarkEncode1000x100B(b *testing.B) {
	recs := benchRecords()
	for _, c := range benchCodecs {
		b.Run(c.String(), func(b *testing.B) {
			bb := NewBatchBuilder(c)
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
			b.ReportMetric(float64(len(buf)), "wire-B")
		})
	}
}

func BenchmarkDecode1000x100B(b *testing.B) {
	recs := benchRecords()
	for _, c := range benchCodecs {
		raw := buildBatch(b, c, NoProducer, recs)
		d := NewDecompressor(0)
		b.Run(c.String()+"/iter", func(b *testing.B) {
			// Steady-state consumer loop: reused decompression buffer and
			// Record; what a consumer copying out of the batch would do.
			var rd Reader
			var bt Batch
			var r Record
			var scratch []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				rd.Reset(raw)
				if err := rd.Next(&bt); err != nil {
					b.Fatal(err)
				}
				data, err := bt.Decompress(d, scratch[:0])
				if err != nil {
					b.Fatal(err)
				}
				if bt.Attributes.Codec() != CodecNone {
					scratch = data
				}
				it := bt.Iter(data)
				n := 0
				for {
					if err := it.Next(&r); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != len(recs) {
					b.Fatalf("%d records", n)
				}
			}
		})
		b.Run(c.String()+"/append", func(b *testing.B) {
			// The convenience path: fresh buffers, records safe to keep.
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
				var err error
				if out, err = bt.AppendRecords(out[:0], d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
