package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestRoundTripEveryCodec(t *testing.T) {
	cases := []Compression{
		{Codec: CodecNone},
		{Codec: CodecGzip}, {Codec: CodecGzip, Level: 1}, {Codec: CodecGzip, Level: 9}, {Codec: CodecGzip, Level: -1},
		{Codec: CodecSnappy},
		{Codec: CodecLZ4}, {Codec: CodecLZ4, Level: 1}, {Codec: CodecLZ4, Level: 9}, {Codec: CodecLZ4, Level: 17},
		{Codec: CodecZstd}, {Codec: CodecZstd, Level: 1}, {Codec: CodecZstd, Level: 6}, {Codec: CodecZstd, Level: 19}, {Codec: CodecZstd, Level: -5},
	}
	d := NewDecompressor(1 << 20)
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			want := sampleRecords()
			raw := buildBatch(t, c, ProducerState{ID: 42, Epoch: 3, BaseSequence: 1000}, want)
			if got := Codec(raw[22] & 7); got != c.Codec {
				t.Fatalf("codec bits %v, want %v (data should compress)", got, c.Codec)
			}
			batches, recs, err := readAll(raw, d)
			if err != nil {
				t.Fatal(err)
			}
			if len(batches) != 1 {
				t.Fatalf("%d batches", len(batches))
			}
			b := batches[0]
			if b.ProducerID != 42 || b.ProducerEpoch != 3 || b.BaseSequence != 1000 ||
				b.NumRecords != int32(len(want)) || b.LastOffsetDelta != int32(len(want)-1) ||
				b.PartitionLeaderEpoch != -1 || b.Magic != 2 || b.Attributes.Codec() != c.Codec ||
				b.Attributes.Transactional() || b.Attributes.Control() || b.Attributes.LogAppendTime() {
				t.Fatalf("header %+v", b)
			}
			if b.BaseTimestamp != want[0].Timestamp || b.MaxTimestamp != 1_700_000_100_000 {
				t.Fatalf("timestamps %d %d", b.BaseTimestamp, b.MaxTimestamp)
			}
			if len(recs[0]) != len(want) {
				t.Fatalf("%d records, want %d", len(recs[0]), len(want))
			}
			for i, r := range recs[0] {
				if err := sameRecord(r, want[i]); err != nil {
					t.Errorf("record %d: %v", i, err)
				}
				if r.Offset != int64(i) {
					t.Errorf("record %d offset %d", i, r.Offset)
				}
			}
		})
	}
}

func TestAbsoluteOffsetsAndNextOffset(t *testing.T) {
	raw := buildBatch(t, Compression{}, NoProducer, sampleRecords())
	binary.BigEndian.PutUint64(raw, 5000) // the broker assigned base offset 5000
	batches, recs, err := readAll(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs[0] {
		if r.Offset != 5000+int64(i) {
			t.Errorf("record %d offset %d", i, r.Offset)
		}
	}
	if n := batches[0].NextOffset(); n != 5005 {
		t.Errorf("NextOffset %d", n)
	}
}

func TestDecodeKmsgBatch(t *testing.T) {
	// A batch built entirely by franz-go's kmsg, records via kmsg.Record.AppendTo.
	type in struct {
		key, val []byte
		tsDelta  int64
		headers  []kmsg.Header
	}
	ins := []in{
		{[]byte("a"), []byte("first"), 0, nil},
		{nil, []byte("second"), -7, []kmsg.Header{{Key: "x", Value: nil}, {Key: "y", Value: []byte("z")}}},
		{[]byte(""), nil, 300, nil},
	}
	var records []byte
	for i, r := range ins {
		kr := kmsg.Record{TimestampDelta64: r.tsDelta, OffsetDelta: int32(i), Key: r.key, Value: r.val, Headers: r.headers}
		// kmsg writes Length as given; learn the body size first.
		probe := kr.AppendTo(nil)
		kr.Length = int32(len(probe) - 1) // Length 0 took one byte
		records = kr.AppendTo(records)
	}
	kb := kmsg.RecordBatch{
		FirstOffset: 77, PartitionLeaderEpoch: 4, Magic: 2,
		LastOffsetDelta: 2, FirstTimestamp: 1_000_000, MaxTimestamp: 1_000_300,
		ProducerID: 9, ProducerEpoch: 2, FirstSequence: 11, NumRecords: 3, Records: records,
	}
	kb.Length = int32(49 + len(records))
	raw := kb.AppendTo(nil)
	kb.CRC = int32(testCRC(raw[21:]))
	raw = kb.AppendTo(nil)

	batches, recs, err := readAll(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := batches[0]
	if b.BaseOffset != 77 || b.PartitionLeaderEpoch != 4 || b.ProducerID != 9 || b.ProducerEpoch != 2 ||
		b.BaseSequence != 11 || b.NextOffset() != 80 {
		t.Fatalf("header %+v", b)
	}
	for i, r := range recs[0] {
		want := Record{Key: ins[i].key, Value: ins[i].val, Timestamp: 1_000_000 + ins[i].tsDelta}
		for _, h := range ins[i].headers {
			want.Headers = append(want.Headers, Header{Key: h.Key, Value: h.Value})
		}
		if err := sameRecord(r, want); err != nil {
			t.Errorf("record %d: %v", i, err)
		}
		if r.Offset != 77+int64(i) {
			t.Errorf("record %d offset %d", i, r.Offset)
		}
	}
}

func TestCRCCorruptionDetected(t *testing.T) {
	good := buildBatch(t, Compression{Codec: CodecLZ4}, NoProducer, sampleRecords())
	// Every byte from the CRC field onward is covered (the CRC itself
	// trivially); flipping any must be reported, never skipped.
	for i := 17; i < len(good); i++ {
		raw := bytes.Clone(good)
		raw[i] ^= 0x20
		var rd Reader
		rd.Reset(raw)
		var b Batch
		err := rd.Next(&b)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: err = %v, want ErrCorrupt", i, err)
		}
		if !strings.Contains(err.Error(), "CRC mismatch in batch at offset 0: stored 0x") {
			t.Fatalf("byte %d: unhelpful error %q", i, err)
		}
	}
	// The partition leader epoch (like the base offset) is outside the CRC
	// by design: the broker rewrites it without recomputing.
	raw := bytes.Clone(good)
	raw[13] ^= 1
	if _, _, err := readAll(raw, NewDecompressor(0)); err != nil {
		t.Fatalf("leader epoch is not CRC-covered, yet: %v", err)
	}
}

func TestMultipleBatchesAndPartialTrailer(t *testing.T) {
	recs := sampleRecords()
	b1 := buildBatch(t, Compression{}, NoProducer, recs[:2])
	b2 := buildBatch(t, Compression{Codec: CodecZstd}, NoProducer, recs[2:])
	b3 := buildBatch(t, Compression{Codec: CodecSnappy}, NoProducer, recs)
	binary.BigEndian.PutUint64(b2, 2)
	binary.BigEndian.PutUint64(b3, 5)
	all := append(append(append([]byte{}, b1...), b2...), b3...)
	ends := []int{len(b1), len(b1) + len(b2), len(all)}
	d := NewDecompressor(0)
	for cut := 0; cut <= len(all); cut++ {
		wantBatches := 0
		for _, e := range ends {
			if e <= cut {
				wantBatches++
			}
		}
		var rd Reader
		rd.Reset(all[:cut])
		got := 0
		var total int
		for {
			var b Batch
			err := rd.Next(&b)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
			rs, err := b.AppendRecords(nil, d)
			if err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
			total += len(rs)
			got++
		}
		if got != wantBatches {
			t.Fatalf("cut %d: %d batches, want %d", cut, got, wantBatches)
		}
		atBoundary := cut == 0 || cut == ends[0] || cut == ends[1] || cut == ends[2]
		if rd.Truncated() == atBoundary {
			t.Fatalf("cut %d: Truncated() = %v", cut, rd.Truncated())
		}
		if cut == len(all) && total != 2*len(recs) {
			t.Fatalf("%d records in total", total)
		}
	}
}

func TestControlBatch(t *testing.T) {
	for _, typ := range []ControlType{ControlAbort, ControlCommit} {
		key := []byte{0, 0, 0, byte(typ)}
		val := []byte{0, 0, 0, 0, 0, 5} // version 0, coordinator epoch 5
		kr := kmsg.Record{Key: key, Value: val}
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		records := kr.AppendTo(nil)
		kb := kmsg.RecordBatch{
			FirstOffset: 300, Length: int32(49 + len(records)), PartitionLeaderEpoch: 1, Magic: 2,
			Attributes:     0x30, // control | transactional
			FirstTimestamp: 1, MaxTimestamp: 1, ProducerID: 8, ProducerEpoch: 0, FirstSequence: -1,
			NumRecords: 1, Records: records,
		}
		raw := kb.AppendTo(nil)
		fixCRC(raw)
		var rd Reader
		rd.Reset(raw)
		var b Batch
		if err := rd.Next(&b); err != nil {
			t.Fatal(err)
		}
		if !b.Attributes.Control() || !b.Attributes.Transactional() {
			t.Fatalf("attributes %#x", b.Attributes)
		}
		got, err := b.ControlType(nil)
		if err != nil || got != typ {
			t.Fatalf("ControlType = %v, %v; want %v", got, err, typ)
		}
		if b.NextOffset() != 301 {
			t.Fatalf("NextOffset %d", b.NextOffset())
		}
	}
	if _, err := ParseControlKey([]byte{0, 0, 1}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short key: %v", err)
	}
	if _, err := ParseControlKey([]byte{0xff, 0xff, 0, 1}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("negative version: %v", err)
	}
	if typ, err := ParseControlKey([]byte{0, 1, 0, 1, 9, 9}); err != nil || typ != ControlCommit {
		t.Errorf("newer version with extra bytes: %v %v", typ, err)
	}
	var plain Batch
	if _, err := plain.ControlType(nil); err == nil {
		t.Error("ControlType accepted a data batch")
	}
}

func TestLogAppendTime(t *testing.T) {
	raw := buildBatch(t, Compression{Codec: CodecGzip}, NoProducer, sampleRecords())
	// What the broker does for message.timestamp.type=LogAppendTime.
	binary.BigEndian.PutUint16(raw[21:], binary.BigEndian.Uint16(raw[21:])|0x08)
	binary.BigEndian.PutUint64(raw[35:], 1_800_000_000_000)
	fixCRC(raw)
	batches, recs, err := readAll(raw, NewDecompressor(0))
	if err != nil {
		t.Fatal(err)
	}
	if !batches[0].Attributes.LogAppendTime() {
		t.Fatal("LogAppendTime bit not reported")
	}
	for i, r := range recs[0] {
		if r.Timestamp != 1_800_000_000_000 {
			t.Errorf("record %d timestamp %d, want the batch max timestamp", i, r.Timestamp)
		}
	}
}

func TestLegacyMagicReported(t *testing.T) {
	// A magic 1 message: offset | size | crc | magic 1 | attrs | timestamp |
	// key -1 | value "v". We refuse it but can move on past it.
	var m []byte
	be := binary.BigEndian
	m = be.AppendUint64(m, 10)
	m = be.AppendUint32(m, 4+1+1+8+4+4+1)
	m = be.AppendUint32(m, 0) // IEEE CRC, not checked
	m = append(m, 1, 0)
	m = be.AppendUint64(m, 123)
	m = be.AppendUint32(m, 0xffffffff)
	m = be.AppendUint32(m, 1)
	m = append(m, 'v')
	v2 := buildBatch(t, Compression{}, NoProducer, sampleRecords())
	binary.BigEndian.PutUint64(v2, 11)
	var rd Reader
	rd.Reset(append(m, v2...))
	var b Batch
	err := rd.Next(&b)
	if !errors.Is(err, ErrUnsupportedMagic) || b.Magic != 1 || b.BaseOffset != 10 {
		t.Fatalf("legacy entry: err %v, batch %+v", err, b)
	}
	if err := rd.Next(&b); err != nil || b.BaseOffset != 11 {
		t.Fatalf("after legacy entry: %v, %+v", err, b)
	}
}

func TestMalformedRecordsInsideValidCRC(t *testing.T) {
	recs := sampleRecords()
	edit := func(name string, f func(raw []byte) []byte) {
		t.Run(name, func(t *testing.T) {
			raw := f(buildBatch(t, Compression{}, NoProducer, recs))
			binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
			fixCRC(raw)
			_, _, err := readAll(raw, nil)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
	edit("count too high", func(raw []byte) []byte {
		binary.BigEndian.PutUint32(raw[57:], uint32(len(recs)+1))
		return raw
	})
	edit("count too low", func(raw []byte) []byte {
		binary.BigEndian.PutUint32(raw[57:], uint32(len(recs)-1))
		return raw
	})
	edit("negative count", func(raw []byte) []byte {
		binary.BigEndian.PutUint32(raw[57:], 0xffffffff)
		return raw
	})
	edit("record overruns", func(raw []byte) []byte {
		raw[61] = 0x7e // first record claims 63 bytes
		return raw[:61+40]
	})
	edit("record length under", func(raw []byte) []byte {
		raw[61] -= 2 // one byte shorter: the header count is cut off
		return raw
	})
	edit("trailing garbage", func(raw []byte) []byte {
		return append(raw, 0)
	})
	t.Run("impossible batch length", func(t *testing.T) {
		raw := buildBatch(t, Compression{}, NoProducer, recs)
		binary.BigEndian.PutUint32(raw[8:], 3)
		if _, _, err := readAll(raw, nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("short v2 batch", func(t *testing.T) {
		raw := buildBatch(t, Compression{}, NoProducer, recs)[:40]
		binary.BigEndian.PutUint32(raw[8:], 28)
		if _, _, err := readAll(raw, nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestAppendRecordsHeadersIsolated(t *testing.T) {
	recs := []Record{
		{Value: []byte("a"), Headers: []Header{{Key: "h", Value: []byte("1")}}},
		{Value: []byte("b"), Headers: []Header{{Key: "h", Value: []byte("2")}}},
	}
	_, got, err := readAll(buildBatch(t, Compression{}, NoProducer, recs), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(got[0][0].Headers, Header{Key: "clobber"})
	_ = append(got[0][0].Value, 'X')
	if got[0][1].Headers[0].Key != "h" || string(got[0][1].Headers[0].Value) != "2" {
		t.Fatalf("appending to record 0's headers changed record 1: %+v", got[0][1].Headers)
	}
	if string(got[0][0].Value) != "a" {
		t.Fatal("value changed")
	}
}

func TestRecordIterReusesRecord(t *testing.T) {
	recs := sampleRecords()
	raw := buildBatch(t, Compression{}, NoProducer, recs)
	var rd Reader
	rd.Reset(raw)
	var b Batch
	if err := rd.Next(&b); err != nil {
		t.Fatal(err)
	}
	data, err := b.Decompress(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	it := b.Iter(data)
	var r Record
	for i := 0; ; i++ {
		err := it.Next(&r)
		if err == io.EOF {
			if i != len(recs) {
				t.Fatalf("%d records", i)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := sameRecord(r, recs[i]); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if it.Remaining() != len(recs)-i-1 {
			t.Fatalf("Remaining %d", it.Remaining())
		}
	}
	if _, err := (&Batch{Attributes: Attributes(CodecZstd)}).Decompress(nil, nil); err == nil {
		t.Fatal("compressed batch without a Decompressor accepted")
	}
}
