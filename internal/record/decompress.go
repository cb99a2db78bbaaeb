package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// DefaultMaxDecompressed is the limit NewDecompressor uses when given a
// non-positive one: well above any batch a broker accepts by default
// (message.max.bytes ~1 MiB), yet small enough that a hostile batch cannot
// exhaust memory.
const DefaultMaxDecompressed = 256 << 20

// Decompressor expands compressed records sections, refusing to produce more
// than a fixed number of bytes per call so that a small malicious or corrupt
// batch (a "decompression bomb") cannot make the consumer allocate without
// bound. It pools its decoders and is safe for concurrent use; a consumer
// normally creates one and shares it.
type Decompressor struct {
	max  int
	gzip sync.Pool // *gzipDecoder
	lz4  sync.Pool // *lz4Decoder
	zstd sync.Pool // *zstd.Decoder configured with max
}

type gzipDecoder struct {
	r   gzip.Reader
	src bytes.Reader
}

type lz4Decoder struct {
	r   *lz4.Reader
	src bytes.Reader
}

// NewDecompressor returns a Decompressor that appends at most max bytes per
// AppendDecompressed call (DefaultMaxDecompressed if max <= 0).
func NewDecompressor(max int) *Decompressor {
	if max <= 0 {
		max = DefaultMaxDecompressed
	}
	d := &Decompressor{max: max}
	d.gzip.New = func() any { return new(gzipDecoder) }
	d.lz4.New = func() any {
		e := &lz4Decoder{}
		e.r = lz4.NewReader(&e.src)
		return e
	}
	d.zstd.New = func() any {
		z, err := zstd.NewReader(nil,
			// zstd checks this limit against the frame's declared content
			// size before decoding and against the output after every
			// block, so a bomb stops early rather than after expanding.
			zstd.WithDecoderMaxMemory(uint64(max)),
			zstd.WithDecoderConcurrency(1), // DecodeAll only; no goroutines
			zstd.WithDecoderLowmem(true),
		)
		if err != nil {
			panic(err) // options are fixed and valid
		}
		return z
	}
	return d
}

// Max returns the per-call limit on decompressed bytes.
func (d *Decompressor) Max() int { return d.max }

// AppendDecompressed appends the decompression of src (compressed with
// codec) to dst and returns the extended slice. It fails with ErrTooLarge if
// the output would exceed d.Max() bytes and with ErrCorrupt if src is not
// valid for the codec. On error the returned slice has dst's length.
//
// Snappy input may be xerial-framed (Java) or a raw block (librdkafka). LZ4
// input must be a standard LZ4 frame; any block size and block/content
// checksum flags are accepted.
func (d *Decompressor) AppendDecompressed(dst, src []byte, codec Codec) ([]byte, error) {
	start := len(dst)
	var err error
	switch codec {
	case CodecNone:
		if len(src) > d.max {
			return dst, tooLarge(codec, d.max)
		}
		return append(dst, src...), nil
	case CodecGzip:
		g := d.gzip.Get().(*gzipDecoder)
		g.src.Reset(src)
		if err = g.r.Reset(&g.src); err == nil {
			dst, err = readBounded(dst, &g.r, codec, len(src), d.max)
		}
		g.src.Reset(nil)
		d.gzip.Put(g)
	case CodecSnappy:
		dst, err = appendSnappyDecoded(dst, src, d.max)
	case CodecLZ4:
		l := d.lz4.Get().(*lz4Decoder)
		l.src.Reset(src)
		l.r.Reset(&l.src)
		dst, err = readBounded(dst, l.r, codec, len(src), d.max)
		l.src.Reset(nil)
		d.lz4.Put(l)
	case CodecZstd:
		z := d.zstd.Get().(*zstd.Decoder)
		var out []byte
		// DecodeAll may return a slice shorter than dst on error (even
		// nil), so the caller's dst is kept for the error path below.
		if out, err = z.DecodeAll(src, dst); err == nil {
			dst = out
		}
		d.zstd.Put(z)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			err = tooLarge(codec, d.max)
		}
	default:
		return dst, fmt.Errorf("%w: %v", ErrUnknownCodec, codec)
	}
	if err != nil {
		if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrCorrupt) {
			err = corruptf("%v: %v", codec, err)
		}
		return dst[:start], err
	}
	if len(dst)-start > d.max { // belt and braces; zstd checks per frame
		return dst[:start], tooLarge(codec, d.max)
	}
	return dst, nil
}

// readBounded reads r to EOF onto dst, failing with ErrTooLarge as soon as
// more than max bytes have been read. Reads never go past max+1 bytes, so
// memory stays bounded by max whatever the stream claims.
func readBounded(dst []byte, r io.Reader, codec Codec, srcLen, max int) ([]byte, error) {
	start := len(dst)
	limit := start + max + 1 // one spare byte detects "more than max"
	// First guess: 4x the input (typical for record data), capped by limit.
	dst = slices.Grow(dst, min(4*srcLen+512, max+1))
	for zeroReads := 0; ; {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, min(cap(dst)-start+512, limit-len(dst)))
		}
		end := min(cap(dst), limit)
		n, err := r.Read(dst[len(dst):end])
		dst = dst[:len(dst)+n]
		if len(dst) > start+max {
			return dst[:start], tooLarge(codec, max)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst[:start], err
		}
		// io.Reader allows (0, nil) but not forever; never spin on it.
		if zeroReads++; n > 0 {
			zeroReads = 0
		} else if zeroReads > 100 {
			return dst[:start], io.ErrNoProgress
		}
	}
}

func tooLarge(codec Codec, max int) error {
	if codec == CodecNone {
		return fmt.Errorf("%w (%d bytes)", ErrTooLarge, max)
	}
	return fmt.Errorf("%w (%d bytes, %v)", ErrTooLarge, max, codec)
}
