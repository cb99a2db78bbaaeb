package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime/metrics"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The fuzz targets of this file feed decoders bytes a broker (or a corrupt
// disk, or a hostile peer) could send. The promise under test: garbage gives
// an error that matches one of the package's sentinels; it never panics,
// never loops, and never allocates beyond a bound set by the input's size
// and the Decompressor's limit. `go test` replays the seeds (f.Add and
// testdata/fuzz); docs/RELIABILITY.md ("Fuzzing") has the long runs.

// fuzzMaxDecompressed keeps a fuzzed bomb small so the fuzzer stays fast;
// the limit logic is the same at any size.
const fuzzMaxDecompressed = 1 << 20

// allocSlack is the allocation a decode may make whatever its input's
// size: pooled decoders' buffers, sized by the stream's header before any
// data is read — lz4's block buffer (up to 4 MiB for a frame declaring
// 4 MiB blocks) and zstd's window (up to the limit). Pooled, they are
// reused by the next batch (a second decode of the same input allocates
// nothing, measured), but the fuzzer's frequent GCs empty the pools, and
// one input is decompressed up to four times here (as given and CRC-fixed,
// by Decompress and by AppendRecords), each of which may pay for them
// again. docs/RELIABILITY.md lists this as a gap: a frame decoder of our
// own could size lz4's buffer by the input instead.
const allocSlack = 4*(4<<20+fuzzMaxDecompressed) + 4<<20

// FuzzReadBatches decodes a fetch response's records section: every batch
// header, its CRC, decompression with any codec, every record and header,
// control markers. Each input is decoded twice: as given (the CRC rejects
// nearly every mutation there) and with the CRC of each complete batch
// recomputed, so that the fuzzer reaches the compressed and record layers.
func FuzzReadBatches(f *testing.F) {
	for _, s := range batchSeeds(f) {
		f.Add(s)
	}
	d := NewDecompressor(fuzzMaxDecompressed)
	f.Fuzz(func(t *testing.T, data []byte) {
		before := heapAllocs()
		decodeAllChecked(t, data, d)
		decodeAllChecked(t, withFixedCRCs(data), d)
		if grew := heapAllocs() - before; grew > uint64(64*len(data)+2*fuzzMaxDecompressed+allocSlack) {
			t.Fatalf("decoding %d bytes allocated %d bytes", len(data), grew)
		}
	})
}

// decodeAllChecked decodes every batch and record of data and checks what
// the decoders promise about their results and errors.
func decodeAllChecked(t *testing.T, data []byte, d *Decompressor) {
	t.Helper()
	var rd Reader
	rd.Reset(data)
	for range len(data) + 1 { // each Next consumes bytes or ends: never more rounds
		var b Batch
		err := rd.Next(&b)
		if err == io.EOF {
			if rd.Consumed() > len(data) {
				t.Fatalf("consumed %d of %d bytes", rd.Consumed(), len(data))
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedMagic) {
				t.Fatalf("Next: error matching no sentinel: %v", err)
			}
			continue
		}
		if b.Attributes.Control() {
			if _, err := b.ControlType(d); err != nil {
				checkDecodeErr(t, "ControlType", err)
			}
		}
		plain, err := b.Decompress(d, nil)
		if err != nil {
			checkDecodeErr(t, "Decompress", err)
			continue
		}
		if len(plain) > fuzzMaxDecompressed {
			t.Fatalf("decompressed %d bytes, limit %d", len(plain), fuzzMaxDecompressed)
		}
		n := 0
		err = b.EachRecord(plain, func(r *Record) {
			n++
			if len(r.Key) > len(plain) || len(r.Value) > len(plain) {
				t.Fatalf("record field longer than its batch")
			}
		})
		if err != nil {
			checkDecodeErr(t, "EachRecord", err)
		}
		if n > int(b.NumRecords) || n > b.MaxRecords(plain) {
			t.Fatalf("%d records from a batch of %d (bound %d)", n, b.NumRecords, b.MaxRecords(plain))
		}
		if _, err := b.AppendRecords(nil, d); err != nil {
			checkDecodeErr(t, "AppendRecords", err)
		}
	}
	t.Fatalf("Reader did not finish %d bytes in %d calls", len(data), len(data)+1)
}

func checkDecodeErr(t *testing.T, op string, err error) {
	t.Helper()
	for _, s := range []error{ErrCorrupt, ErrTooLarge, ErrUnknownCodec} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("%s: error matching no sentinel: %v", op, err)
}

// withFixedCRCs returns a copy of data with the CRC of every complete v2
// batch recomputed.
func withFixedCRCs(data []byte) []byte {
	out := bytes.Clone(data)
	for p := out; len(p) >= BatchHeaderLen; {
		length := int(int32(binary.BigEndian.Uint32(p[offLength:])))
		if length < BatchHeaderLen-logOverhead || logOverhead+length > len(p) {
			break
		}
		batch := p[:logOverhead+length]
		binary.BigEndian.PutUint32(batch[offCRC:], CRC32C(batch[offAttributes:]))
		p = p[len(batch):]
	}
	return out
}

// FuzzDecompress gives each codec's decoder arbitrary bytes, and checks
// that every codec gives back exactly what it compressed.
func FuzzDecompress(f *testing.F) {
	for _, s := range decompressSeeds(f) {
		f.Add(s.codec, s.data)
	}
	d := NewDecompressor(fuzzMaxDecompressed)
	f.Fuzz(func(t *testing.T, codecByte byte, data []byte) {
		codec := Codec(codecByte % 6) // 5 is unknown: must be refused
		before := heapAllocs()
		out, err := d.AppendDecompressed([]byte("prefix"), data, codec)
		if err != nil {
			checkDecodeErr(t, "AppendDecompressed", err)
			if string(out) != "prefix" {
				t.Fatalf("failed call changed dst to %q", out)
			}
		} else if len(out)-len("prefix") > fuzzMaxDecompressed {
			t.Fatalf("%v: %d bytes out, limit %d", codec, len(out)-len("prefix"), fuzzMaxDecompressed)
		}
		if grew := heapAllocs() - before; grew > uint64(64*len(data)+2*fuzzMaxDecompressed+allocSlack) {
			t.Fatalf("%v: decompressing %d bytes allocated %d", codec, len(data), grew)
		}
		if codec > CodecZstd {
			return
		}
		// data as plain text: compress, then decompress must restore it.
		comp, err := AppendCompressed(nil, data, Compression{Codec: codec})
		if err != nil {
			t.Fatalf("compressing %d bytes with %v: %v", len(data), codec, err)
		}
		back, err := d.AppendDecompressed(nil, comp, codec)
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("%v round trip of %d bytes: err %v, got %d bytes", codec, len(data), err, len(back))
		}
	})
}

type codecSeed struct {
	codec byte
	data  []byte
}

// batchSeeds are real batches: ours with every codec, producer state,
// transactional and control batches, a franz-go (kmsg) encoded batch, a
// legacy message, and cut and concatenated runs of those.
func batchSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	recs := sampleRecords()
	for _, c := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		seeds = append(seeds, buildBatch(tb, Compression{Codec: c}, NoProducer, recs))
		seeds = append(seeds, buildBatch(tb, Compression{Codec: c}, ProducerState{ID: 7, Epoch: 1, BaseSequence: 40, Transactional: true}, recs[:2]))
	}
	seeds = append(seeds, controlSeed(ControlCommit), controlSeed(ControlAbort), kmsgSeed(), legacySeed())
	all := bytes.Join(seeds, nil)
	seeds = append(seeds, all, all[:len(all)-17], nil)
	return seeds
}

// controlSeed is a transaction marker as a broker writes it.
func controlSeed(typ ControlType) []byte {
	kr := kmsg.Record{Key: []byte{0, 0, 0, byte(typ)}, Value: []byte{0, 0, 0, 0, 0, 1}}
	kr.Length = int32(len(kr.AppendTo(nil)) - 1)
	recs := kr.AppendTo(nil)
	kb := kmsg.RecordBatch{
		FirstOffset: 100, Length: int32(49 + len(recs)), Magic: 2,
		Attributes:     int16(AttrControl | AttrTransactional),
		FirstTimestamp: 1, MaxTimestamp: 1, ProducerID: 7, FirstSequence: -1,
		NumRecords: 1, Records: recs,
	}
	raw := kb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[offCRC:], CRC32C(raw[offAttributes:]))
	return raw
}

// kmsgSeed is a two-record batch encoded by franz-go's kmsg, not by us.
func kmsgSeed() []byte {
	var recs []byte
	for i, v := range []string{"first", "second"} {
		kr := kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: int64(i), Key: []byte("k"), Value: []byte(v),
			Headers: []kmsg.Header{{Key: "h", Value: []byte("x")}}}
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		recs = kr.AppendTo(recs)
	}
	kb := kmsg.RecordBatch{
		FirstOffset: 5, Length: int32(49 + len(recs)), Magic: 2, LastOffsetDelta: 1,
		FirstTimestamp: 1000, MaxTimestamp: 1001, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: 2, Records: recs,
	}
	raw := kb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[offCRC:], CRC32C(raw[offAttributes:]))
	return raw
}

// legacySeed is a magic 1 message, which the Reader refuses by name.
func legacySeed() []byte {
	m := kmsg.MessageV1{Offset: 3, Magic: 1, Timestamp: 1, Key: []byte("k"), Value: []byte("v")}
	m.MessageSize = int32(len(m.AppendTo(nil)) - 12)
	return m.AppendTo(nil)
}

func decompressSeeds(tb testing.TB) []codecSeed {
	plain := bytes.Repeat([]byte("keel fuzz seed: the quick brown fox. "), 30)
	seeds := []codecSeed{{0, plain}, {5, plain}}
	for _, c := range []Codec{CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		comp, err := AppendCompressed(nil, plain, Compression{Codec: c})
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, codecSeed{byte(c), comp}, codecSeed{byte(c), comp[:len(comp)/2]})
	}
	// librdkafka writes raw snappy blocks rather than xerial frames.
	seeds = append(seeds, codecSeed{byte(CodecSnappy), s2.EncodeSnappy(nil, plain)})
	return seeds
}

// heapAllocs is the process's cumulative heap allocation in bytes. Reading
// it does not stop the world, so a fuzz target can afford it per input.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
