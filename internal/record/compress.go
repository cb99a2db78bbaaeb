package record

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// appendWriter is an io.Writer that appends to a slice, letting streaming
// compressors (gzip, lz4) write straight into the caller's batch buffer
// instead of into an intermediate bytes.Buffer that would need a copy.
type appendWriter struct{ b []byte }

// Write appends p; it never fails.
func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// Compressor state is expensive to build (gzip ~800 KiB, zstd several MiB of
// tables and history) and the produce path compresses every batch, so
// compressors are pooled per level. The pools are indexed, not keyed by a
// map, so getting one costs no hashing or locking beyond sync.Pool's own.
var (
	gzipPools [10]sync.Pool // index 0 = default level, 1-9 = that level
	lz4Pools  [10]sync.Pool // index 0 = fast, 1-9 = HC levels
	zstdPools [5]sync.Pool  // indexed by zstd.EncoderLevel (1-4)
)

type gzipEncoder struct {
	w   *gzip.Writer
	out appendWriter
}

type lz4Encoder struct {
	w   *lz4.Writer
	out appendWriter
}

// zstdWindow bounds the encoder's back-reference window. Batches are rarely
// bigger than 1 MiB (Kafka's default max.message.bytes), so a larger window
// would only cost encoder memory; and because EncodeAll writes single-segment
// frames with a known content size for such inputs, consumers never need to
// allocate a window larger than the batch itself.
const zstdWindow = 1 << 20

func init() {
	for i := range gzipPools {
		level := i
		if level == 0 {
			level = gzip.DefaultCompression
		}
		gzipPools[i].New = func() any {
			w, err := gzip.NewWriterLevel(nil, level)
			if err != nil {
				panic(err) // levels are fixed above; cannot happen
			}
			return &gzipEncoder{w: w}
		}
	}
	for i := range lz4Pools {
		level := lz4.Fast
		if i > 0 {
			level = lz4.Level1 << (i - 1)
		}
		lz4Pools[i].New = func() any {
			e := &lz4Encoder{}
			e.w = lz4.NewWriter(&e.out)
			// Kafka's Java client writes 64 KiB independent blocks; readers
			// size their buffers from the block size, so matching Java keeps
			// every consumer's memory use where it expects. No content
			// checksum: the batch CRC-32C already covers these bytes.
			err := e.w.Apply(
				lz4.BlockSizeOption(lz4.Block64Kb),
				lz4.BlockChecksumOption(false),
				lz4.ChecksumOption(false),
				lz4.ConcurrencyOption(1),
				lz4.CompressionLevelOption(level),
			)
			if err != nil {
				panic(err)
			}
			return e
		}
	}
	for i := range zstdPools {
		if i == 0 {
			continue
		}
		level := zstd.EncoderLevel(i)
		zstdPools[i].New = func() any {
			e, err := zstd.NewWriter(nil,
				zstd.WithEncoderLevel(level),
				zstd.WithEncoderConcurrency(1), // EncodeAll only; no goroutines
				zstd.WithWindowSize(zstdWindow),
				zstd.WithZeroFrames(true), // an empty input still yields a valid frame
			)
			if err != nil {
				panic(err)
			}
			return e
		}
	}
}

// AppendCompressed appends src compressed with c to dst and returns the
// extended slice. On error dst is returned unchanged in length.
//
// Snappy output uses the xerial framing that Kafka's Java client writes (see
// appendSnappyXerial for why). LZ4 output is a standard LZ4 frame with
// independent 64 KiB blocks, as Kafka requires since KIP-57.
func AppendCompressed(dst, src []byte, c Compression) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return dst, err
	}
	switch c.Codec {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		return appendGzip(dst, src, c.Level)
	case CodecSnappy:
		return appendSnappyXerial(dst, src), nil
	case CodecLZ4:
		return appendLZ4(dst, src, c.Level)
	case CodecZstd:
		return appendZstd(dst, src, c.Level), nil
	}
	return dst, fmt.Errorf("%w: %v", ErrUnknownCodec, c.Codec)
}

func appendGzip(dst, src []byte, level int) ([]byte, error) {
	if level < 0 {
		level = 0
	}
	pool := &gzipPools[level]
	e := pool.Get().(*gzipEncoder)
	start := len(dst)
	e.out.b = dst
	e.w.Reset(&e.out)
	_, err := e.w.Write(src)
	if err == nil {
		err = e.w.Close()
	}
	out := e.out.b
	e.out.b = nil // do not keep the caller's buffer alive from the pool
	pool.Put(e)
	if err != nil {
		return out[:start], fmt.Errorf("record: gzip compression: %w", err)
	}
	return out, nil
}

func appendLZ4(dst, src []byte, level int) ([]byte, error) {
	if level > 9 {
		level = 9
	}
	pool := &lz4Pools[level]
	e := pool.Get().(*lz4Encoder)
	start := len(dst)
	e.out.b = dst
	e.w.Reset(&e.out)
	_, err := e.w.Write(src)
	if err == nil {
		err = e.w.Close()
	}
	out := e.out.b
	e.out.b = nil
	pool.Put(e)
	if err != nil {
		return out[:start], fmt.Errorf("record: lz4 compression: %w", err)
	}
	return out, nil
}

func appendZstd(dst, src []byte, level int) []byte {
	l := zstd.SpeedDefault
	if level != 0 {
		l = zstd.EncoderLevelFromZstd(level)
	}
	pool := &zstdPools[l]
	e := pool.Get().(*zstd.Encoder)
	dst = e.EncodeAll(src, dst)
	pool.Put(e)
	return dst
}
