package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"testing"
)

// testCRC computes CRC-32C with its own table, independently of crc.go.
func testCRC(b []byte) uint32 {
	return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
}

// fixCRC recomputes the CRC of a batch a test has edited.
func fixCRC(batch []byte) {
	binary.BigEndian.PutUint32(batch[17:], testCRC(batch[21:]))
}

// sampleRecords covers keys, null keys, empty keys, null and empty values,
// headers with null and empty values, and out-of-order timestamps. Values
// repeat text so that every codec actually compresses them.
func sampleRecords() []Record {
	long := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog. "), 40)
	return []Record{
		{Key: []byte("key-0"), Value: []byte("value-0"), Timestamp: 1_700_000_000_000},
		{Key: nil, Value: long, Timestamp: 1_700_000_000_005},
		{Key: []byte{}, Value: nil, Timestamp: 1_700_000_000_003},
		{Key: []byte("k3"), Value: []byte{}, Timestamp: 1_699_999_999_000,
			Headers: []Header{{Key: "h-null", Value: nil}, {Key: "h-empty", Value: []byte{}}, {Key: "", Value: []byte("v")}}},
		{Key: long[:100], Value: long, Timestamp: 1_700_000_100_000,
			Headers: []Header{{Key: "trace", Value: []byte("abc")}}},
	}
}

// buildBatch finishes recs into one batch.
func buildBatch(t testing.TB, c Compression, p ProducerState, recs []Record) []byte {
	t.Helper()
	b := NewBatchBuilder(c)
	for i := range recs {
		b.Append(&recs[i])
	}
	out, err := b.Finish(nil, p)
	if err != nil {
		t.Fatalf("Finish(%v): %v", c, err)
	}
	return out
}

// readAll decodes every batch in data and their records.
func readAll(data []byte, d *Decompressor) ([]Batch, [][]Record, error) {
	var rd Reader
	rd.Reset(data)
	var batches []Batch
	var recs [][]Record
	for {
		var b Batch
		err := rd.Next(&b)
		if err == io.EOF {
			return batches, recs, nil
		}
		if err != nil {
			return batches, recs, err
		}
		rs, err := b.AppendRecords(nil, d)
		if err != nil {
			return batches, recs, err
		}
		batches = append(batches, b)
		recs = append(recs, rs)
	}
}

// sameRecord compares content including nil-versus-empty distinctions.
func sameRecord(got, want Record) error {
	eq := func(name string, a, b []byte) error {
		if (a == nil) != (b == nil) || !bytes.Equal(a, b) {
			return fmt.Errorf("%s = %q (nil %v), want %q (nil %v)", name, a, a == nil, b, b == nil)
		}
		return nil
	}
	if err := eq("key", got.Key, want.Key); err != nil {
		return err
	}
	if err := eq("value", got.Value, want.Value); err != nil {
		return err
	}
	if got.Timestamp != want.Timestamp {
		return fmt.Errorf("timestamp = %d, want %d", got.Timestamp, want.Timestamp)
	}
	if len(got.Headers) != len(want.Headers) {
		return fmt.Errorf("%d headers, want %d", len(got.Headers), len(want.Headers))
	}
	for i := range got.Headers {
		if got.Headers[i].Key != want.Headers[i].Key {
			return fmt.Errorf("header %d key %q, want %q", i, got.Headers[i].Key, want.Headers[i].Key)
		}
		if err := eq(fmt.Sprintf("header %d value", i), got.Headers[i].Value, want.Headers[i].Value); err != nil {
			return err
		}
	}
	return nil
}
