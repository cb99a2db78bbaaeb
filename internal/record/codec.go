package record

import "fmt"

// Codec is a record batch compression codec: the value of attribute bits
// 0-2 of a v2 batch.
type Codec int8

// The codecs Kafka defines. Zstd needs Produce v7+ / Fetch v10+ (Kafka 2.1).
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

// String returns the codec's name as Kafka's compression.type spells it.
func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLZ4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

// Compression selects a codec and its level for producing.
//
// Level 0 always means the codec's default. Otherwise the levels follow
// Kafka's compression.<codec>.level settings (KIP-390):
//   - gzip: 1 (fastest) to 9 (smallest); -1 is also accepted as default.
//   - lz4: 1 to 17; 0 is the fast (non-HC) compressor that Kafka used before
//     KIP-390. The Go implementation has 9 HC steps, so 10-17 act like 9.
//   - zstd: any int; mapped to the closest of the four klauspost/compress
//     speeds (< 3 fastest, 3-5 default, 6-9 better, >= 10 best). 0 is
//     zstd's default level 3.
//   - snappy and none: the level is ignored.
type Compression struct {
	Codec Codec
	Level int
}

// Validate reports whether c names a codec this package can write and a
// level that codec accepts. Checking at configuration time keeps an invalid
// level from surfacing only when the first batch is finished.
func (c Compression) Validate() error {
	switch c.Codec {
	case CodecNone, CodecSnappy, CodecZstd:
		return nil
	case CodecGzip:
		if c.Level >= -1 && c.Level <= 9 {
			return nil
		}
	case CodecLZ4:
		if c.Level >= 0 && c.Level <= 17 {
			return nil
		}
	default:
		return fmt.Errorf("%w: %v", ErrUnknownCodec, c.Codec)
	}
	return fmt.Errorf("%w: %v level %d", ErrUnknownCodec, c.Codec, c.Level)
}

// String returns e.g. "zstd" or "gzip:6".
func (c Compression) String() string {
	if c.Level == 0 {
		return c.Codec.String()
	}
	return fmt.Sprintf("%v:%d", c.Codec, c.Level)
}
