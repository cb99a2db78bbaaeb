package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// vectorRecords and vectorBatch are a batch derived by hand from the
// protocol description, field by field, without this package's encoders.
func vectorRecords() []Record {
	return []Record{
		{Key: []byte("k"), Value: []byte("v1"), Timestamp: 1000},
		{Key: nil, Value: []byte("hello"), Timestamp: 1005,
			Headers: []Header{{Key: "h", Value: nil}, {Key: "h2", Value: []byte("x")}}},
	}
}

func vectorBatch() []byte {
	// Record 0: length 9 (zigzag 0x12) | attrs 0 | tsDelta 0 | offsetDelta 0 |
	// key len 1 (0x02) "k" | value len 2 (0x04) "v1" | 0 headers.
	rec0 := []byte{0x12, 0x00, 0x00, 0x00, 0x02, 'k', 0x04, 'v', '1', 0x00}
	// Record 1: length 19 (0x26) | attrs 0 | tsDelta 5 (0x0a) | offsetDelta 1
	// (0x02) | null key (0x01) | value len 5 (0x0a) "hello" | 2 headers (0x04)
	// | "h" (0x02 'h') null (0x01) | "h2" (0x04 'h' '2') len 1 (0x02) "x".
	rec1 := []byte{0x26, 0x00, 0x0a, 0x02, 0x01, 0x0a, 'h', 'e', 'l', 'l', 'o',
		0x04, 0x02, 'h', 0x01, 0x04, 'h', '2', 0x02, 'x'}
	records := append(append([]byte{}, rec0...), rec1...)

	be := binary.BigEndian
	var b []byte
	b = be.AppendUint64(b, 0)                       // baseOffset
	b = be.AppendUint32(b, uint32(49+len(records))) // length: 61-12 + records
	b = be.AppendUint32(b, 0xffffffff)              // partitionLeaderEpoch -1
	b = append(b, 2)                                // magic
	b = be.AppendUint32(b, 0)                       // crc, filled below
	b = be.AppendUint16(b, 0)                       // attributes: none
	b = be.AppendUint32(b, 1)                       // lastOffsetDelta
	b = be.AppendUint64(b, 1000)                    // baseTimestamp
	b = be.AppendUint64(b, 1005)                    // maxTimestamp
	b = be.AppendUint64(b, 7)                       // producerId
	b = be.AppendUint16(b, 1)                       // producerEpoch
	b = be.AppendUint32(b, 3)                       // baseSequence
	b = be.AppendUint32(b, 2)                       // recordCount
	b = append(b, records...)                       // records
	be.PutUint32(b[17:], testCRC(b[21:]))           // CRC over attributes..end
	if len(b) != 61+30 {
		panic("vector arithmetic is off")
	}
	return b
}

func TestFinishMatchesHandVector(t *testing.T) {
	got := buildBatch(t, Compression{}, ProducerState{ID: 7, Epoch: 1, BaseSequence: 3}, vectorRecords())
	want := vectorBatch()
	if !bytes.Equal(got, want) {
		t.Fatalf("batch bytes differ\n got % x\nwant % x", got, want)
	}
}

func TestFinishAgreesWithKmsg(t *testing.T) {
	for _, c := range []Compression{{}, {Codec: CodecGzip}, {Codec: CodecSnappy}, {Codec: CodecLZ4}, {Codec: CodecZstd}} {
		t.Run(c.String(), func(t *testing.T) {
			recs := sampleRecords()
			p := ProducerState{ID: 12345, Epoch: 6, BaseSequence: 99, Transactional: true}
			raw := buildBatch(t, c, p, recs)

			var kb kmsg.RecordBatch
			if err := kb.ReadFrom(raw); err != nil {
				t.Fatalf("kmsg ReadFrom: %v", err)
			}
			if again := kb.AppendTo(nil); !bytes.Equal(again, raw) {
				t.Fatalf("kmsg re-encoding differs from ours")
			}
			check := func(name string, got, want int64) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
			check("FirstOffset", kb.FirstOffset, 0)
			check("Length", int64(kb.Length), int64(len(raw)-12))
			check("PartitionLeaderEpoch", int64(kb.PartitionLeaderEpoch), -1)
			check("Magic", int64(kb.Magic), 2)
			check("CRC", int64(uint32(kb.CRC)), int64(testCRC(raw[21:])))
			check("codec", int64(kb.Attributes&7), int64(c.Codec))
			check("transactional", int64(kb.Attributes&0x10), 0x10)
			check("LastOffsetDelta", int64(kb.LastOffsetDelta), int64(len(recs)-1))
			check("FirstTimestamp", kb.FirstTimestamp, recs[0].Timestamp)
			check("MaxTimestamp", kb.MaxTimestamp, 1_700_000_100_000)
			check("ProducerID", kb.ProducerID, 12345)
			check("ProducerEpoch", int64(kb.ProducerEpoch), 6)
			check("FirstSequence", int64(kb.FirstSequence), 99)
			check("NumRecords", int64(kb.NumRecords), int64(len(recs)))

			// Parse the records with kmsg too.
			plain, err := NewDecompressor(0).AppendDecompressed(nil, kb.Records, Codec(kb.Attributes&7))
			if err != nil {
				t.Fatal(err)
			}
			for i := range recs {
				l, n := binary.Varint(plain)
				var kr kmsg.Record
				if err := kr.ReadFrom(plain[:n+int(l)]); err != nil {
					t.Fatalf("record %d: kmsg ReadFrom: %v", i, err)
				}
				plain = plain[n+int(l):]
				got := Record{Key: kr.Key, Value: kr.Value, Timestamp: kb.FirstTimestamp + kr.TimestampDelta64}
				for _, h := range kr.Headers {
					got.Headers = append(got.Headers, Header{Key: h.Key, Value: h.Value})
				}
				if err := sameRecord(got, recs[i]); err != nil {
					t.Errorf("record %d via kmsg: %v", i, err)
				}
				if kr.OffsetDelta != int32(i) {
					t.Errorf("record %d offset delta %d", i, kr.OffsetDelta)
				}
			}
			if len(plain) != 0 {
				t.Errorf("%d bytes after the last record", len(plain))
			}
		})
	}
}

func TestSizeAccounting(t *testing.T) {
	b := NewBatchBuilder(Compression{})
	recs := sampleRecords()
	for i := range recs {
		before := b.Size()
		want := b.RecordSize(&recs[i])
		b.Append(&recs[i])
		if got := b.Size() - before; got != want {
			t.Errorf("record %d: RecordSize %d, Append added %d", i, want, got)
		}
	}
	out, err := b.Finish(nil, NoProducer)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != b.Size() {
		t.Errorf("uncompressed batch is %d bytes, Size said %d", len(out), b.Size())
	}
	if b.FirstTimestamp() != recs[0].Timestamp || b.MaxTimestamp() != 1_700_000_100_000 {
		t.Errorf("timestamps %d/%d", b.FirstTimestamp(), b.MaxTimestamp())
	}
}

func TestFinishAppendsAndKeepsPrefix(t *testing.T) {
	prefix := []byte("prefix")
	b := NewBatchBuilder(Compression{Codec: CodecZstd})
	recs := sampleRecords()
	for i := range recs {
		b.Append(&recs[i])
	}
	out, err := b.Finish(append([]byte{}, prefix...), NoProducer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, prefix) {
		t.Fatal("prefix lost")
	}
	alone, _ := b.Finish(nil, NoProducer)
	if !bytes.Equal(out[len(prefix):], alone) {
		t.Fatal("Finish output depends on dst")
	}
	if int(binary.BigEndian.Uint32(alone[8:])) != len(alone)-12 {
		t.Fatal("length field wrong")
	}
}

func TestFinishEmptyAndNonIdempotent(t *testing.T) {
	b := NewBatchBuilder(Compression{})
	if _, err := b.Finish(nil, NoProducer); !errors.Is(err, ErrEmptyBatch) {
		t.Fatalf("empty Finish: %v", err)
	}
	b.Append(&Record{Value: []byte("x"), Timestamp: 5})
	out, err := b.Finish(nil, NoProducer)
	if err != nil {
		t.Fatal(err)
	}
	if pid := int64(binary.BigEndian.Uint64(out[43:])); pid != -1 {
		t.Errorf("producer id %d", pid)
	}
	if ep := int16(binary.BigEndian.Uint16(out[51:])); ep != -1 {
		t.Errorf("epoch %d", ep)
	}
	if seq := int32(binary.BigEndian.Uint32(out[53:])); seq != -1 {
		t.Errorf("sequence %d", seq)
	}
	if lod := binary.BigEndian.Uint32(out[23:]); lod != 0 {
		t.Errorf("lastOffsetDelta %d for one record", lod)
	}
	// Reset starts over: the next batch's base timestamp is its own.
	b.Reset()
	b.Append(&Record{Value: []byte("y"), Timestamp: 99})
	out, _ = b.Finish(nil, NoProducer)
	if ts := binary.BigEndian.Uint64(out[27:]); ts != 99 {
		t.Errorf("base timestamp after Reset %d", ts)
	}
}

func TestIncompressibleFallsBackToNone(t *testing.T) {
	// Pseudo-random bytes do not compress; the batch must say "none".
	v := make([]byte, 4096)
	x := uint32(1)
	for i := range v {
		x = x*1664525 + 1013904223
		v[i] = byte(x >> 24)
	}
	for _, c := range []Codec{CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		raw := buildBatch(t, Compression{Codec: c}, NoProducer, []Record{{Value: v}})
		if codec := raw[22] & 7; codec != 0 {
			t.Errorf("%v: codec bits %d, want 0", c, codec)
		}
		_, recs, err := readAll(raw, NewDecompressor(0))
		if err != nil || !bytes.Equal(recs[0][0].Value, v) {
			t.Errorf("%v: round trip failed: %v", c, err)
		}
	}
}

func TestSetProducer(t *testing.T) {
	recs := sampleRecords()
	for _, c := range []Compression{{}, {Codec: CodecLZ4}} {
		raw := buildBatch(t, c, ProducerState{ID: 1, Epoch: 1, BaseSequence: 10}, recs)
		if err := SetProducer(raw, 2, 5, 20); err != nil {
			t.Fatal(err)
		}
		want := buildBatch(t, c, ProducerState{ID: 2, Epoch: 5, BaseSequence: 20}, recs)
		if !bytes.Equal(raw, want) {
			t.Errorf("%v: SetProducer result differs from a fresh Finish", c)
		}
	}
	if err := SetProducer(make([]byte, 10), 1, 1, 1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short batch: %v", err)
	}
	raw := buildBatch(t, Compression{}, NoProducer, recs)
	if err := SetProducer(raw[:len(raw)-1], 1, 1, 1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("length mismatch: %v", err)
	}
	raw[16] = 1
	if err := SetProducer(raw, 1, 1, 1); !errors.Is(err, ErrUnsupportedMagic) {
		t.Errorf("magic 1: %v", err)
	}
}

func TestEncodeAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	recs := sampleRecords()
	b := NewBatchBuilder(Compression{})
	buf := make([]byte, 0, 64<<10)
	run := func() {
		b.Reset()
		for i := range recs {
			b.Append(&recs[i])
		}
		var err error
		if buf, err = b.Finish(buf[:0], NoProducer); err != nil {
			t.Fatal(err)
		}
	}
	run() // size the builder's buffer
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("uncompressed encode allocates %.1f times per batch, want 0", n)
	}
}
