package record

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/klauspost/compress/s2"
)

// Kafka has two snappy layouts in the wild:
//
//   - xerial framing, written by the Java client (snappy-java's
//     SnappyOutputStream): a 16-byte header (the magic below, then version
//     and compatible-version int32s), then chunks of
//     [int32 big-endian length][raw snappy block], each block holding at most
//     32 KiB of input.
//   - one raw snappy block, written by librdkafka.
//
// Every mainstream reader accepts both: Java's SnappyInputStream falls back
// to raw when the magic is absent, librdkafka and franz-go check the magic.
// We write xerial because it is what the reference implementation writes, so
// any consumer that can read Java-produced data can read ours; the cost is 16
// bytes plus 4 per 32 KiB chunk.

// xerialMagic starts a xerial-framed snappy stream.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const (
	xerialHeaderLen = 16
	// xerialBlock is snappy-java's default block size, the one Kafka's Java
	// producer uses.
	xerialBlock = 32 << 10
)

// appendSnappyXerial appends src as a xerial-framed snappy stream to dst.
func appendSnappyXerial(dst, src []byte) []byte {
	dst = append(dst, xerialMagic...)
	dst = binary.BigEndian.AppendUint32(dst, 1) // version
	dst = binary.BigEndian.AppendUint32(dst, 1) // minimum compatible version
	for len(src) > 0 {
		chunk := src[:min(len(src), xerialBlock)]
		src = src[len(chunk):]
		// Grow once so that s2 encodes straight into dst's spare capacity
		// (it allocates when cap is short of MaxEncodedLen).
		dst = slices.Grow(dst, 4+s2.MaxEncodedLen(len(chunk)))
		lenAt := len(dst)
		enc := s2.EncodeSnappy(dst[lenAt+4:lenAt+4], chunk)
		dst = dst[:lenAt+4+len(enc)]
		binary.BigEndian.PutUint32(dst[lenAt:], uint32(len(enc)))
	}
	return dst
}

// appendSnappyDecoded appends the decompression of src, in either xerial or
// raw form, to dst. At most max bytes are appended; more is ErrTooLarge.
// Each block's decoded size is read from its header before decoding, so an
// oversized block is refused without being expanded.
func appendSnappyDecoded(dst, src []byte, max int) ([]byte, error) {
	start := len(dst)
	if len(src) < xerialHeaderLen || !bytes.Equal(src[:len(xerialMagic)], xerialMagic) {
		return appendSnappyBlock(dst, src, start, max)
	}
	src = src[xerialHeaderLen:]
	for len(src) > 0 {
		if len(src) < 4 {
			return dst[:start], corruptf("snappy: truncated xerial chunk header")
		}
		n := binary.BigEndian.Uint32(src)
		src = src[4:]
		if uint64(n) > uint64(len(src)) {
			return dst[:start], corruptf("snappy: xerial chunk of %d bytes overruns its %d-byte input", n, len(src))
		}
		var err error
		if dst, err = appendSnappyBlock(dst, src[:n], start, max); err != nil {
			return dst[:start], err
		}
		src = src[n:]
	}
	return dst, nil
}

// appendSnappyBlock decodes one raw snappy block onto dst, checking that the
// total appended since start stays within max.
func appendSnappyBlock(dst, block []byte, start, max int) ([]byte, error) {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return dst[:start], corruptf("snappy: %v", err)
	}
	if n > max-(len(dst)-start) {
		return dst[:start], tooLarge(CodecSnappy, max)
	}
	dst = slices.Grow(dst, n)
	at := len(dst)
	out, err := s2.Decode(dst[at:at+n], block)
	if err != nil {
		return dst[:start], corruptf("snappy: %v", err)
	}
	return dst[:at+len(out)], nil
}
