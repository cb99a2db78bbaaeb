package fetch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
)

// dataBatch builds a batch of n records at base (values "v<offset>")
// written by producer p.
func dataBatch(t *testing.T, base int64, n int, p record.ProducerState, codec record.Codec) []byte {
	t.Helper()
	b := record.NewBatchBuilder(record.Compression{Codec: codec})
	for i := range n {
		b.Append(&record.Record{Key: []byte("k"), Value: fmt.Appendf(nil, "v%d-%s", base+int64(i), "padding padding padding padding"), Timestamp: 1000 + int64(i)})
	}
	out, err := b.Finish(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint64(out, uint64(base)) // not covered by the CRC
	return out
}

// txn is the producer state of transactional producer pid.
func txn(pid int64) record.ProducerState {
	return record.ProducerState{ID: pid, Epoch: 0, BaseSequence: 0, Transactional: true}
}

// controlBatch builds a transaction marker at offset for pid, as a broker
// writes it.
func controlBatch(offset, pid int64, typ record.ControlType) []byte {
	kr := kmsg.Record{Key: []byte{0, 0, 0, byte(typ)}, Value: []byte{0, 0, 0, 0, 0, 1}}
	kr.Length = int32(len(kr.AppendTo(nil)) - 1)
	recs := kr.AppendTo(nil)
	kb := kmsg.RecordBatch{
		FirstOffset: offset, Length: int32(49 + len(recs)), PartitionLeaderEpoch: 0, Magic: 2,
		Attributes:     int16(record.AttrControl | record.AttrTransactional),
		FirstTimestamp: 1, MaxTimestamp: 1, ProducerID: pid, ProducerEpoch: 0, FirstSequence: -1,
		NumRecords: 1, Records: recs,
	}
	raw := kb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], record.CRC32C(raw[21:]))
	return raw
}

func offsets(rs []Record) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.Offset)
	}
	return out
}

func span64(from, to int64) []int64 {
	var out []int64
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}

func TestDecodeDropsRecordsBelowFetchOffset(t *testing.T) {
	data := append(dataBatch(t, 10, 10, record.NoProducer, record.CodecNone), dataBatch(t, 20, 5, record.NoProducer, record.CodecZstd)...)
	d := decodePartition(data, 15, false, nil, record.NewDecompressor(0))
	if d.err != nil {
		t.Fatal(d.err)
	}
	if got := offsets(d.records); !slices.Equal(got, span64(15, 25)) {
		t.Fatalf("offsets %v", got)
	}
	if d.next != 25 {
		t.Fatalf("next %d", d.next)
	}
	for _, r := range d.records {
		if want := fmt.Sprintf("v%d-", r.Offset); string(r.Value[:len(want)]) != want {
			t.Fatalf("record %d has value %q", r.Offset, r.Value)
		}
	}
	// A batch entirely below the fetch offset adds nothing but moves next.
	d = decodePartition(data, 22, false, nil, record.NewDecompressor(0))
	if got := offsets(d.records); !slices.Equal(got, span64(22, 25)) || len(d.spans) != 1 {
		t.Fatalf("offsets %v spans %v", got, d.spans)
	}
}

func TestDecodeEveryCodecCountsDecompressedBytes(t *testing.T) {
	for _, c := range []record.Codec{record.CodecNone, record.CodecGzip, record.CodecSnappy, record.CodecLZ4, record.CodecZstd} {
		raw := dataBatch(t, 0, 50, record.NoProducer, c)
		d := decodePartition(raw, 0, false, nil, record.NewDecompressor(0))
		if d.err != nil || len(d.records) != 50 || d.next != 50 {
			t.Fatalf("%v: %d records, next %d, err %v", c, len(d.records), d.next, d.err)
		}
		plain := dataBatch(t, 0, 50, record.NoProducer, record.CodecNone)
		if want := int64(len(plain) - record.BatchHeaderLen); d.bytes != want {
			t.Fatalf("%v: counted %d bytes, want the decompressed %d", c, d.bytes, want)
		}
	}
}

// The layout of a partition with transactions, offsets in brackets:
//
//	[0-2]  pid 1 transactional, aborted
//	[3-5]  pid 2 transactional, committed
//	[6-7]  no producer id, plain data
//	[8]    pid 1 ABORT marker
//	[9]    pid 2 COMMIT marker
//	[10-11] pid 1 transactional again, committed
//	[12]   pid 1 COMMIT marker
//	[13-14] pid 3 transactional, aborted, marker not in this fetch
func txnLog(t *testing.T) ([]byte, []abortedTxn) {
	var data []byte
	data = append(data, dataBatch(t, 0, 3, txn(1), record.CodecNone)...)
	data = append(data, dataBatch(t, 3, 3, txn(2), record.CodecLZ4)...)
	data = append(data, dataBatch(t, 6, 2, record.NoProducer, record.CodecNone)...)
	data = append(data, controlBatch(8, 1, record.ControlAbort)...)
	data = append(data, controlBatch(9, 2, record.ControlCommit)...)
	data = append(data, dataBatch(t, 10, 2, txn(1), record.CodecGzip)...)
	data = append(data, controlBatch(12, 1, record.ControlCommit)...)
	data = append(data, dataBatch(t, 13, 2, txn(3), record.CodecNone)...)
	// The broker's list, deliberately out of order.
	return data, []abortedTxn{{pid: 3, first: 13}, {pid: 1, first: 0}}
}

func TestDecodeReadCommittedSkipsAbortedAndControl(t *testing.T) {
	data, aborted := txnLog(t)
	dec := record.NewDecompressor(0)

	d := decodePartition(data, 0, true, aborted, dec)
	if d.err != nil {
		t.Fatal(d.err)
	}
	if got, want := offsets(d.records), []int64{3, 4, 5, 6, 7, 10, 11}; !slices.Equal(got, want) {
		t.Fatalf("read_committed offsets %v, want %v", got, want)
	}
	if d.next != 15 {
		t.Fatalf("next %d, want 15 (past the aborted batch)", d.next)
	}

	// read_uncommitted returns every data record, never control records.
	d = decodePartition(data, 0, false, aborted, dec)
	if got, want := offsets(d.records), []int64{0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 13, 14}; !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted offsets %v, want %v", got, want)
	}

	// Fetching from the middle: the abort of pid 1 still applies to the
	// rest of its aborted batch.
	d = decodePartition(data, 1, true, aborted, dec)
	if got, want := offsets(d.records), []int64{3, 4, 5, 6, 7, 10, 11}; !slices.Equal(got, want) {
		t.Fatalf("from 1: %v, want %v", got, want)
	}

	// Only markers: nothing returned, but the position moves past them.
	markers := append(controlBatch(8, 1, record.ControlAbort), controlBatch(9, 2, record.ControlCommit)...)
	for _, rc := range []bool{false, true} {
		d = decodePartition(markers, 8, rc, nil, dec)
		if len(d.records) != 0 || d.next != 10 || d.err != nil {
			t.Fatalf("markers only (read_committed %v): %v next %d err %v", rc, offsets(d.records), d.next, d.err)
		}
	}
}

func TestDecodeCorruptBatchIsAnError(t *testing.T) {
	good := dataBatch(t, 0, 5, record.NoProducer, record.CodecNone)
	bad := dataBatch(t, 5, 5, record.NoProducer, record.CodecSnappy)
	bad[len(bad)-3] ^= 0x40
	after := dataBatch(t, 10, 5, record.NoProducer, record.CodecNone)
	data := slices.Concat(good, bad, after)

	d := decodePartition(data, 0, false, nil, record.NewDecompressor(0))
	if !errors.Is(d.err, errs.ErrCorruptMessage) || !errors.Is(d.err, record.ErrCorrupt) {
		t.Fatalf("err = %v, want corrupt", d.err)
	}
	if got := offsets(d.records); !slices.Equal(got, span64(0, 5)) {
		t.Fatalf("records before the bad batch: %v", got)
	}
	if d.next != 5 {
		t.Fatalf("next %d, want 5 (the bad batch, not past it)", d.next)
	}
}

func TestDecodePartialBatches(t *testing.T) {
	one := dataBatch(t, 0, 5, record.NoProducer, record.CodecNone)
	two := dataBatch(t, 5, 5, record.NoProducer, record.CodecNone)
	data := slices.Concat(one, two)
	dec := record.NewDecompressor(0)

	// Cut inside the second batch: dropped silently.
	d := decodePartition(data[:len(one)+30], 0, false, nil, dec)
	if d.err != nil || d.tooSmall || !slices.Equal(offsets(d.records), span64(0, 5)) || d.next != 5 {
		t.Fatalf("trailing partial: %v next %d err %v tooSmall %v", offsets(d.records), d.next, d.err, d.tooSmall)
	}
	// Not one complete batch: the partition max bytes is too small.
	d = decodePartition(data[:40], 0, false, nil, dec)
	if d.err != nil || !d.tooSmall || len(d.records) != 0 || d.next != 0 {
		t.Fatalf("no complete batch: %+v", d)
	}
	// Empty data is just empty.
	if d = decodePartition(nil, 3, false, nil, dec); d.tooSmall || d.next != 3 {
		t.Fatalf("empty: %+v", d)
	}
}

func TestRecordsHint(t *testing.T) {
	plain := record.ProducerState{ID: -1, Epoch: -1, BaseSequence: -1}
	data := slices.Concat(dataBatch(t, 0, 10, plain, record.CodecNone), dataBatch(t, 10, 25, plain, record.CodecNone))
	if got := recordsHint(data); got != 35 {
		t.Fatalf("hint %d, want 35", got)
	}
	// A partial batch at the end is not counted; decoding does not read it.
	if got := recordsHint(data[:len(data)-5]); got != 10 {
		t.Fatalf("hint with a partial last batch %d, want 10", got)
	}
	// A hostile count allocates no more than the batch can hold.
	bomb := dataBatch(t, 0, 2, plain, record.CodecNone)
	binary.BigEndian.PutUint32(bomb[record.BatchHeaderLen-4:], 1<<30)
	if got, most := recordsHint(bomb), (len(bomb)-record.BatchHeaderLen)/7; got > most {
		t.Fatalf("hint %d for a forged count, want at most %d", got, most)
	}
	if got := recordsHint(nil); got != 0 {
		t.Fatalf("hint %d for no data", got)
	}
	// The decoded records fill the hinted slice without growing it.
	d := decodePartition(data, 0, false, nil, record.NewDecompressor(0))
	if len(d.records) != 35 || cap(d.records) != 35 {
		t.Fatalf("decoded %d records into a slice of cap %d, want 35 and 35", len(d.records), cap(d.records))
	}
}

// TestUncompressedRecordsAliasTheAnswer: an uncompressed batch's records
// point into the fetch answer itself, with no copy of the batch (the copy
// was a tenth of the consumer's CPU at 64 partitions), while a compressed
// batch's point into its own decompressed buffer; the budget counts both
// batches' records either way.
func TestUncompressedRecordsAliasTheAnswer(t *testing.T) {
	plain := record.ProducerState{ID: -1, Epoch: -1, BaseSequence: -1}
	data := append(dataBatch(t, 0, 5, plain, record.CodecNone), dataBatch(t, 5, 5, plain, record.CodecLZ4)...)
	inAnswer := func(b []byte) bool {
		if len(b) == 0 {
			return false
		}
		lo, hi := &data[0], &data[len(data)-1]
		p := &b[0]
		return uintptr(unsafe.Pointer(p)) >= uintptr(unsafe.Pointer(lo)) && uintptr(unsafe.Pointer(p)) <= uintptr(unsafe.Pointer(hi))
	}
	d := decodePartition(data, 0, false, nil, record.NewDecompressor(0))
	if d.err != nil || len(d.records) != 10 {
		t.Fatalf("decoded %d records, err %v; want 10", len(d.records), d.err)
	}
	for i, r := range d.records {
		want := fmt.Sprintf("v%d-%s", i, "padding padding padding padding")
		if string(r.Value) != want {
			t.Fatalf("record %d: value %q, want %q", i, r.Value, want)
		}
		if got, wantAlias := inAnswer(r.Value), i < 5; got != wantAlias {
			t.Errorf("record %d (uncompressed: %v): value points into the answer: %v", i, i < 5, got)
		}
	}
	if len(d.spans) != 2 || d.bytes <= 0 {
		t.Fatalf("spans %v, bytes %d: want one span per batch counted", d.spans, d.bytes)
	}
}

// TestBatchWithDisorderedOffsetsIsCorrupt: a batch (CRC intact) whose
// records' offset deltas do not increase is refused as corrupt, its
// records dropped and those of the batch before it kept.
func TestBatchWithDisorderedOffsetsIsCorrupt(t *testing.T) {
	plain := record.ProducerState{ID: -1, Epoch: -1, BaseSequence: -1}
	good := dataBatch(t, 0, 3, plain, record.CodecNone)
	var recs []byte
	for _, delta := range []int32{0, 0} { // the second should be 1
		kr := kmsg.Record{OffsetDelta: delta, Value: []byte("x")}
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		recs = kr.AppendTo(recs)
	}
	kb := kmsg.RecordBatch{
		FirstOffset: 3, Length: int32(49 + len(recs)), PartitionLeaderEpoch: 0, Magic: 2,
		FirstTimestamp: 1, MaxTimestamp: 1, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		LastOffsetDelta: 1, NumRecords: 2, Records: recs,
	}
	bad := kb.AppendTo(nil)
	binary.BigEndian.PutUint32(bad[17:], record.CRC32C(bad[21:]))
	d := decodePartition(append(good, bad...), 0, false, nil, record.NewDecompressor(0))
	if !errors.Is(d.err, record.ErrCorrupt) || !errors.Is(d.err, errs.ErrCorruptMessage) || !strings.Contains(d.err.Error(), "out of order") {
		t.Fatalf("err %v, want a corrupt-message error for offsets out of order", d.err)
	}
	if got := offsets(d.records); !slices.Equal(got, []int64{0, 1, 2}) {
		t.Fatalf("records %v, want the first batch's 0-2 only", got)
	}
	if d.next != 3 || len(d.spans) != 1 {
		t.Fatalf("next %d spans %d, want 3 and 1 (nothing of the bad batch)", d.next, len(d.spans))
	}
}
