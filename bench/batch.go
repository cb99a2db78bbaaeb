package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The ceiling and the prefill send record batches encoded here once, with
// kmsg's types and the compression libraries directly — no client's code —
// and then only replay them.

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// batchHeaderBytes is the fixed part of a v2 record batch.
const batchHeaderBytes = 61

// recordsPerBatch is how many records of valueBytes fit in one batch of at
// most maxBatchBytes (uncompressed, as the clients count it).
func recordsPerBatch(valueBytes, maxBatchBytes int) int {
	one := len(encodeRecord(nil, 0, make([]byte, valueBytes)))
	// Offset deltas and lengths grow by a byte or two in larger batches.
	return max(1, (maxBatchBytes-batchHeaderBytes)/(one+2))
}

func encodeRecord(dst []byte, delta int, value []byte) []byte {
	r := kmsg.Record{OffsetDelta: int32(delta), Value: value}
	// Length is everything after itself: encode once to learn it.
	n := len(r.AppendTo(nil))
	r.Length = int32(n - 1) // the placeholder length 0 took one byte
	return r.AppendTo(dst)
}

// encodeBatch returns a v2 record batch (not idempotent, offset 0) of the
// given values, compressed with codec.
func encodeBatch(values [][]byte, codec string) ([]byte, error) {
	var recs []byte
	for i, v := range values {
		recs = encodeRecord(recs, i, v)
	}
	var attrs int16
	switch codec {
	case "none":
	case "lz4":
		attrs = 3
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if _, err := w.Write(recs); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		recs = buf.Bytes()
	case "zstd":
		attrs = 4
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			return nil, err
		}
		recs = enc.EncodeAll(recs, nil)
		enc.Close()
	default:
		return nil, checkCodec(codec)
	}
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           attrs,
		LastOffsetDelta:      int32(len(values) - 1),
		FirstTimestamp:       now,
		MaxTimestamp:         now,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(values)),
		Records:              recs,
	}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))               // length: after itself
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32c)) // CRC-32C: attributes onward
	return out, nil
}

// batchRecords reads a fetched batch's header: its base offset, record
// count, the offset after it, and its size (0 if the batch is cut off at
// the end of the fetch).
func batchRecords(b []byte) (base int64, count int32, next int64, size int, err error) {
	if len(b) < batchHeaderBytes {
		return 0, 0, 0, 0, nil
	}
	base = int64(binary.BigEndian.Uint64(b))
	size = int(binary.BigEndian.Uint32(b[8:])) + 12
	if size < batchHeaderBytes {
		return 0, 0, 0, 0, fmt.Errorf("batch length %d", size)
	}
	if len(b) < size {
		return 0, 0, 0, 0, nil
	}
	if b[16] != 2 {
		return 0, 0, 0, 0, fmt.Errorf("batch magic %d", b[16])
	}
	lastDelta := int32(binary.BigEndian.Uint32(b[23:]))
	count = int32(binary.BigEndian.Uint32(b[57:]))
	return base, count, base + int64(lastDelta) + 1, size, nil
}
