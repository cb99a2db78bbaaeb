package main

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The harness's own pieces: what the ceiling and the prefill send must be
// valid batches (the broker checks them), and the report's arithmetic must
// be right. Run with: cd bench && go test .

func TestPayloadsAreDeterministicAndSized(t *testing.T) {
	for _, size := range []int{100, 1000, 10_000} {
		a, b := payloads(16, size), payloads(16, size)
		for i := range a {
			if len(a[i]) != size {
				t.Fatalf("size %d: value %d is %d bytes", size, i, len(a[i]))
			}
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("size %d: value %d differs between calls", size, i)
			}
		}
		if bytes.Equal(a[0], a[1]) {
			t.Fatalf("size %d: values are not distinct", size)
		}
	}
}

func TestEncodeBatchIsAValidBatch(t *testing.T) {
	values := payloads(50, 100)
	for _, codec := range []string{"none", "lz4", "zstd"} {
		raw, err := encodeBatch(values, codec)
		if err != nil {
			t.Fatal(err)
		}
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			t.Fatalf("%s: %v", codec, err)
		}
		if int(b.Length) != len(raw)-12 {
			t.Fatalf("%s: length field %d, batch %d bytes", codec, b.Length, len(raw))
		}
		if uint32(b.CRC) != crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)) {
			t.Fatalf("%s: CRC does not match", codec)
		}
		if b.NumRecords != 50 || b.LastOffsetDelta != 49 {
			t.Fatalf("%s: %d records, last delta %d", codec, b.NumRecords, b.LastOffsetDelta)
		}
		// franz-go's decoder reads the records back, decompressing.
		fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: "t", Partition: 0},
			&kmsg.FetchResponseTopicPartition{RecordBatches: raw, HighWatermark: 50}, kgo.DefaultDecompressor(), nil)
		if fp.Err != nil || len(fp.Records) != 50 {
			t.Fatalf("%s: decoded %d records, err %v", codec, len(fp.Records), fp.Err)
		}
		for i, r := range fp.Records {
			if !bytes.Equal(r.Value, values[i]) || r.Offset != int64(i) {
				t.Fatalf("%s: record %d is %q at offset %d", codec, i, r.Value, r.Offset)
			}
		}
		if codec != "none" && len(raw) > 50*100*3/4 {
			t.Errorf("%s: %d bytes for 5000 bytes of values: not compressed", codec, len(raw))
		}
	}
}

func TestBatchRecordsReadsHeaders(t *testing.T) {
	raw, err := encodeBatch(payloads(7, 100), "none")
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint64(raw, 40) // as a broker stores it
	base, n, next, size, err := batchRecords(raw)
	if err != nil || base != 40 || n != 7 || next != 47 || size != len(raw) {
		t.Fatalf("base %d, %d records, next %d, size %d, err %v", base, n, next, size, err)
	}
	if _, _, _, size, err := batchRecords(raw[:len(raw)-1]); size != 0 || err != nil {
		t.Fatalf("a cut-off batch: size %d, err %v; want 0, nil", size, err)
	}
	raw[16] = 1
	if _, _, _, _, err := batchRecords(raw); err == nil {
		t.Fatal("magic 1 accepted")
	}
}

func TestRecordsPerBatchFits(t *testing.T) {
	for _, size := range []int{100, 1000, 10_000} {
		n := recordsPerBatch(size, 1_000_000)
		raw, err := encodeBatch(payloads(n, size), "none")
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) > 1_000_000 {
			t.Fatalf("%d records of %d bytes make a %d-byte batch, over the limit", n, size, len(raw))
		}
		if len(raw) < 900_000 {
			t.Fatalf("%d records of %d bytes make only %d bytes", n, size, len(raw))
		}
	}
}

func TestMediansAndRatios(t *testing.T) {
	p := func(v float64) *float64 { return &v }
	rs := []result{
		{Client: "keel", Workload: "produce-100B", Records: 10, RecPerSec: 3, CPUUsPerRec: 1},
		{Client: "keel", Workload: "produce-100B", Records: 10, RecPerSec: 1, CPUUsPerRec: 3},
		{Client: "keel", Workload: "produce-100B", Records: 10, RecPerSec: 2, CPUUsPerRec: 2},
		{Client: "keel", Workload: "produce-100B", Failed: "boom"},
		{Client: "franz-go", Workload: "produce-100B", Records: 10, RecPerSec: 4, CPUUsPerRec: 1},
		{Client: "keel", Workload: "latency-20k", Records: 10, P50ms: p(1), P99ms: p(2), P999ms: p(3)},
		{Client: "confluent", Workload: "produce-100B", Skipped: "no cgo"},
	}
	rows := medians(rs)
	k, ok := find(rows, "keel", "produce-100B")
	if !ok || k.Runs != 3 || k.RecPerSec != 2 || k.CPUUsPerRec != 2 {
		t.Fatalf("keel row %+v", k)
	}
	if l, _ := find(rows, "keel", "latency-20k"); l.P99 != 2 {
		t.Fatalf("latency row %+v", l)
	}
	if c, ok := find(rows, "confluent", "produce-100B"); ok || c.Skipped == "" {
		t.Fatalf("skipped row %+v, ok %v", c, ok)
	}
	ts := targets(rows)
	if len(ts) != 2 || ts[0].Met || ts[0].Measured != "0.50×" || ts[1].Met || ts[1].Measured != "2.00×" {
		t.Fatalf("targets %+v", ts)
	}
	if !math.IsNaN(median(nil)) || median([]float64{4, 1}) != 2.5 {
		t.Fatal("median")
	}
}

func TestResultRates(t *testing.T) {
	r := result{Records: 1000, WindowRecords: 800, WallSec: 2, CPUSec: 0.4, Allocs: 1600}
	r.finish(100)
	if r.RecPerSec != 400 || r.MBPerSec != 0.04 || r.CPUUsPerRec != 500 || r.AllocsPerRec != 2 {
		t.Fatalf("%+v", r)
	}
	if consumeSkip(10) != 2 || consumeSkip(3) != 1 {
		t.Fatal("consumeSkip")
	}
}
