package record

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// payload is compressible and spans several xerial/lz4 blocks.
func payload(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		b.WriteString("record payload line ")
		b.WriteByte(byte('a' + i%26))
		b.WriteByte('\n')
	}
	return b.Bytes()[:n]
}

func TestCompressRoundTrip(t *testing.T) {
	d := NewDecompressor(1 << 20)
	for _, c := range []Compression{
		{Codec: CodecNone}, {Codec: CodecGzip, Level: 5}, {Codec: CodecSnappy},
		{Codec: CodecLZ4, Level: 3}, {Codec: CodecZstd, Level: 10},
	} {
		for _, n := range []int{0, 1, 1000, 200_000} {
			src := payload(n)
			comp, err := AppendCompressed([]byte("pre"), src, c)
			if err != nil {
				t.Fatalf("%v/%d: %v", c, n, err)
			}
			if string(comp[:3]) != "pre" {
				t.Fatalf("%v: prefix lost", c)
			}
			out, err := d.AppendDecompressed([]byte("x"), comp[3:], c.Codec)
			if err != nil {
				t.Fatalf("%v/%d: decompress: %v", c, n, err)
			}
			if !bytes.Equal(out[1:], src) || out[0] != 'x' {
				t.Fatalf("%v/%d: round trip mismatch", c, n)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []Compression{{Codec: 5}, {Codec: -1}, {Codec: CodecGzip, Level: 10}, {Codec: CodecGzip, Level: -2}, {Codec: CodecLZ4, Level: 18}, {Codec: CodecLZ4, Level: -1}}
	for _, c := range bad {
		if !errors.Is(c.Validate(), ErrUnknownCodec) {
			t.Errorf("%v accepted", c)
		}
		if _, err := AppendCompressed(nil, []byte("x"), c); !errors.Is(err, ErrUnknownCodec) {
			t.Errorf("AppendCompressed(%v): %v", c, err)
		}
	}
	if _, err := NewDecompressor(0).AppendDecompressed(nil, []byte("x"), 7); !errors.Is(err, ErrUnknownCodec) {
		t.Errorf("decompress codec 7: %v", err)
	}
}

func TestSnappyXerialOutputFormat(t *testing.T) {
	src := payload(100_000) // 4 chunks of at most 32 KiB
	comp, err := AppendCompressed(nil, src, Compression{Codec: CodecSnappy})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1}
	if !bytes.Equal(comp[:16], want) {
		t.Fatalf("xerial header % x", comp[:16])
	}
	// Walk the chunks independently of the decoder.
	var got []byte
	for p := comp[16:]; len(p) > 0; {
		n := binary.BigEndian.Uint32(p)
		block, err := s2.Decode(nil, p[4:4+n])
		if err != nil {
			t.Fatal(err)
		}
		if len(block) > 32<<10 {
			t.Fatalf("chunk of %d bytes", len(block))
		}
		got = append(got, block...)
		p = p[4+n:]
	}
	if !bytes.Equal(got, src) {
		t.Fatal("chunks do not reassemble the input")
	}
}

func TestSnappyDecodesRawAndXerial(t *testing.T) {
	src := payload(80_000)
	d := NewDecompressor(0)

	raw := s2.EncodeSnappy(nil, src) // librdkafka's form: one raw block
	// Java's form, framed by hand with uneven chunk sizes.
	x := []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1}
	for _, part := range [][]byte{src[:10_000], src[10_000:50_000], src[50_000:]} {
		blk := s2.EncodeSnappy(nil, part)
		x = binary.BigEndian.AppendUint32(x, uint32(len(blk)))
		x = append(x, blk...)
	}
	for name, in := range map[string][]byte{"raw": raw, "xerial": x} {
		out, err := d.AppendDecompressed(nil, in, CodecSnappy)
		if err != nil || !bytes.Equal(out, src) {
			t.Errorf("%s: %v (equal %v)", name, err, bytes.Equal(out, src))
		}
	}
	// A xerial chunk that claims more bytes than remain is corrupt.
	bad := bytes.Clone(x)
	binary.BigEndian.PutUint32(bad[16:], 1<<20)
	if _, err := d.AppendDecompressed(nil, bad, CodecSnappy); !errors.Is(err, ErrCorrupt) {
		t.Errorf("overrunning chunk: %v", err)
	}
	if _, err := d.AppendDecompressed(nil, []byte{0xff, 0xff, 0xff}, CodecSnappy); !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage: %v", err)
	}
}

func TestLZ4DecodesOtherFrameOptions(t *testing.T) {
	src := payload(300_000)
	d := NewDecompressor(0)
	opts := [][]lz4.Option{
		{lz4.BlockSizeOption(lz4.Block4Mb), lz4.ChecksumOption(true), lz4.BlockChecksumOption(true)},
		{lz4.BlockSizeOption(lz4.Block256Kb), lz4.ChecksumOption(false), lz4.SizeOption(uint64(len(src)))},
		{lz4.BlockSizeOption(lz4.Block1Mb), lz4.CompressionLevelOption(lz4.Level9)},
	}
	for i, o := range opts {
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if err := w.Apply(o...); err != nil {
			t.Fatal(err)
		}
		w.Write(src)
		w.Close()
		out, err := d.AppendDecompressed(nil, buf.Bytes(), CodecLZ4)
		if err != nil || !bytes.Equal(out, src) {
			t.Errorf("options %d: %v", i, err)
		}
	}
	// Our own output: a standard frame with 64 KiB blocks (BD byte 0x40).
	comp, _ := AppendCompressed(nil, src, Compression{Codec: CodecLZ4})
	if binary.LittleEndian.Uint32(comp) != 0x184D2204 {
		t.Fatalf("lz4 magic % x", comp[:4])
	}
	if flg, bd := comp[4], comp[5]; flg&0x20 == 0 || bd != 0x40 {
		t.Fatalf("FLG %#x BD %#x: want independent blocks, 64 KiB", flg, bd)
	}
	comp[len(comp)/2] ^= 0xff
	if _, err := d.AppendDecompressed(nil, comp, CodecLZ4); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupt lz4: %v", err)
	}
}

func TestGzipAndZstdInterop(t *testing.T) {
	src := payload(50_000)
	d := NewDecompressor(0)
	// Two concatenated gzip members from the standard library.
	var gz bytes.Buffer
	for _, part := range [][]byte{src[:20_000], src[20_000:]} {
		w := stdgzip.NewWriter(&gz)
		w.Write(part)
		w.Close()
	}
	if out, err := d.AppendDecompressed(nil, gz.Bytes(), CodecGzip); err != nil || !bytes.Equal(out, src) {
		t.Errorf("gzip multi-member: %v", err)
	}
	// A streamed zstd frame (no content size in its header) followed by a
	// second frame.
	var zs bytes.Buffer
	w, _ := zstd.NewWriter(&zs, zstd.WithEncoderConcurrency(1))
	w.Write(src[:30_000])
	w.Close()
	enc, _ := zstd.NewWriter(nil)
	two := enc.EncodeAll(src[30_000:], zs.Bytes())
	if out, err := d.AppendDecompressed(nil, two, CodecZstd); err != nil || !bytes.Equal(out, src) {
		t.Errorf("zstd streamed + second frame: %v", err)
	}
	for _, c := range []Codec{CodecGzip, CodecZstd} {
		if _, err := d.AppendDecompressed(nil, []byte("definitely not compressed"), c); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%v garbage: %v", c, err)
		}
	}
}

func TestDecompressionBomb(t *testing.T) {
	const limit = 64 << 10
	zeros := make([]byte, 8<<20) // 8 MiB of zeros compresses to a few KiB
	d := NewDecompressor(limit)
	for _, c := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		bomb, err := AppendCompressed(nil, zeros, Compression{Codec: c})
		if err != nil {
			t.Fatal(err)
		}
		out, err := d.AppendDecompressed([]byte("keep"), bomb, c)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%v: err = %v, want ErrTooLarge", c, err)
		}
		if string(out) != "keep" {
			t.Errorf("%v: dst not restored on error", c)
		}
		// Exactly at the limit is fine.
		ok, _ := AppendCompressed(nil, zeros[:limit], Compression{Codec: c})
		if out, err := d.AppendDecompressed(nil, ok, c); err != nil || len(out) != limit {
			t.Errorf("%v at the limit: %v, %d bytes", c, err, len(out))
		}
	}
	// A streamed zstd frame hides its size; the per-block check must still stop it.
	var zs bytes.Buffer
	w, _ := zstd.NewWriter(&zs, zstd.WithEncoderConcurrency(1))
	w.Write(zeros)
	w.Close()
	if _, err := d.AppendDecompressed(nil, zs.Bytes(), CodecZstd); !errors.Is(err, ErrTooLarge) {
		t.Errorf("streamed zstd bomb: %v", err)
	}
	// Through the batch API: a compressed batch expanding past the limit.
	big := []Record{{Value: zeros[:1<<20]}}
	raw := buildBatch(t, Compression{Codec: CodecZstd}, NoProducer, big)
	if _, _, err := readAll(raw, d); !errors.Is(err, ErrTooLarge) {
		t.Errorf("batch bomb: %v", err)
	}
	if NewDecompressor(-1).Max() != DefaultMaxDecompressed {
		t.Error("default limit not applied")
	}
}

func TestDecompressionBombMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	const limit = 64 << 10
	zeros := make([]byte, 64<<20)
	d := NewDecompressor(limit)
	for _, c := range []Codec{CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		bomb, err := AppendCompressed(nil, zeros, Compression{Codec: c})
		if err != nil {
			t.Fatal(err)
		}
		d.AppendDecompressed(nil, bomb, c) // warm the decoder pools
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range 4 {
			if _, err := d.AppendDecompressed(nil, bomb, c); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%v: %v", c, err)
			}
		}
		runtime.ReadMemStats(&after)
		// 64 MiB bombs; allow up to 4 MiB for decoder state re-created
		// after GC emptied the pools, but never the bomb's size.
		if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
			t.Errorf("%v: refusing 4 bombs allocated %d bytes", c, n)
		} else {
			t.Logf("%v: %d bytes allocated for 4 refusals", c, n)
		}
	}
}

func TestConcurrentCodecs(t *testing.T) {
	d := NewDecompressor(1 << 20)
	src := payload(20_000)
	done := make(chan error)
	for g := range 8 {
		go func() {
			c := Compression{Codec: Codec(g%4 + 1), Level: g % 3}
			var buf, out []byte
			for range 50 {
				var err error
				if buf, err = AppendCompressed(buf[:0], src, c); err != nil {
					done <- err
					return
				}
				if out, err = d.AppendDecompressed(out[:0], buf, c.Codec); err != nil {
					done <- err
					return
				}
				if !bytes.Equal(out, src) {
					done <- errors.New(c.String() + ": mismatch")
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
