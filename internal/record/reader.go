package record

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Reader walks the batches in the records bytes of one partition of a Fetch
// response. The zero Reader is empty; use Reset to give it data.
//
// The broker returns whole batches but cuts the response at its byte limit,
// so the data may end with part of a batch. Reader drops such a trailing
// partial batch silently (Next returns io.EOF) and reports it through
// Truncated, as Kafka's consumer does; it is not corruption.
//
// Every complete v2 batch has its CRC-32C checked. Legacy message sets
// (magic 0 and 1, pre-0.11 brokers or old data on disk) are not decoded:
// Next returns ErrUnsupportedMagic for them. Kafka 4.0 removed those formats,
// and a client that needs them should fail loudly rather than skip data.
type Reader struct {
	data      []byte
	pos       int
	truncated bool
}

// Reset points r at data, the records field of a fetch response partition.
// Batches returned by Next alias data.
func (r *Reader) Reset(data []byte) {
	r.data, r.pos, r.truncated = data, 0, false
}

// Next parses the next batch into b. It returns io.EOF when no complete batch
// remains. On ErrCorrupt or ErrUnsupportedMagic the reader has already moved
// past the offending entry (its length field is trusted for that), so a
// caller could continue, but a consumer should surface the error: data it
// cannot read must not be skipped silently. b.BaseOffset and b.Magic are
// filled even then, to say where the bad entry is.
func (r *Reader) Next(b *Batch) error {
	rest := r.data[r.pos:]
	if len(rest) == 0 {
		return io.EOF
	}
	if len(rest) < logOverhead {
		r.truncated = true
		return io.EOF
	}
	be := binary.BigEndian
	base := int64(be.Uint64(rest[offBaseOffset:]))
	length := int32(be.Uint32(rest[offLength:]))
	*b = Batch{BaseOffset: base, Length: length}
	// The smallest entry of any format is a magic 0 message (14 bytes after
	// the length). Anything shorter cannot be a partial batch either: the
	// length field itself is complete, so it is simply wrong.
	if length < 14 {
		r.pos = len(r.data) // the length is unusable; we cannot resync
		return corruptf("entry at offset %d has impossible length %d", base, length)
	}
	size := logOverhead + int(length)
	if len(rest) < size {
		r.truncated = true
		return io.EOF
	}
	entry := rest[:size]
	r.pos += size
	b.Magic = int8(entry[offMagic])
	if b.Magic != Magic {
		return fmt.Errorf("%w: magic %d at offset %d", ErrUnsupportedMagic, b.Magic, base)
	}
	if size < BatchHeaderLen {
		return corruptf("batch at offset %d has length %d, shorter than a v2 header", base, length)
	}
	b.parseHeader(entry)
	if crc := CRC32C(entry[offAttributes:]); crc != b.CRC {
		return corruptf("CRC mismatch in batch at offset %d: stored 0x%08x computed 0x%08x", base, b.CRC, crc)
	}
	if b.NumRecords < 0 {
		return corruptf("batch at offset %d has negative record count %d", base, b.NumRecords)
	}
	return nil
}

// Truncated reports whether the data ended with an incomplete batch that
// Next dropped. A fetch whose data is non-empty yet yields no batch and is
// truncated means the first batch is larger than the fetch size allowed
// (Kafka's consumer reports that as an error).
func (r *Reader) Truncated() bool { return r.truncated }

// Consumed returns how many bytes of data Next has moved past.
func (r *Reader) Consumed() int { return r.pos }
