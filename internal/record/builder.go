package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
)

// ProducerState is the idempotence/transaction part of a batch header,
// supplied when the batch is finished because sequence numbers are assigned
// only when a batch is drained for sending.
type ProducerState struct {
	ID            int64 // producer id; -1 when not idempotent
	Epoch         int16 // producer epoch; -1 when not idempotent
	BaseSequence  int32 // sequence of the first record; -1 when not idempotent
	Transactional bool  // sets the transactional attribute bit
}

// NoProducer is the ProducerState of a non-idempotent producer.
var NoProducer = ProducerState{ID: -1, Epoch: -1, BaseSequence: -1}

// BatchBuilder accumulates records for one partition into an uncompressed
// records section, then Finish writes the complete v2 batch. It is meant to
// be reused: Reset keeps the record buffer, so in steady state appending
// allocates nothing.
//
// A BatchBuilder is not safe for concurrent use.
type BatchBuilder struct {
	comp Compression
	// buf is room for the batch header, then the encoded records,
	// uncompressed: so that an uncompressed batch can be finished in
	// place (FinishTake).
	buf     []byte
	count   int32
	firstTS int64 // base timestamp: the first record's
	maxTS   int64
	// recCRC is the CRC-32C of buf[BatchHeaderLen:crcDone], taken as
	// the records are appended, while they are still in the processor's
	// cache: computed only when the batch is finished, it read the whole
	// batch back from memory and was a third of the producer's CPU time
	// with 10 KB records (issue 6). The batch's CRC combines it with the
	// header's (crc32cCombine).
	recCRC  uint32
	crcDone int
}

// crcChunk is how many appended bytes the builder lets accumulate before
// it adds them to recCRC: enough to make the call cheap per byte, little
// enough to still be in the cache. A batch smaller than this is summed
// whole when finished, as before.
const crcChunk = 32 << 10

// NewBatchBuilder returns an empty builder that will compress with c.
func NewBatchBuilder(c Compression) *BatchBuilder {
	return &BatchBuilder{comp: c}
}

// Reset empties the builder for a new batch, keeping its buffer and
// compression setting.
func (b *BatchBuilder) Reset() {
	b.setBuf(b.buf)
	b.count = 0
	b.firstTS = 0
	b.maxTS = 0
}

// SetCompression changes the compression used by the next Finish.
func (b *BatchBuilder) SetCompression(c Compression) { b.comp = c }

// Compression returns the compression Finish will use.
func (b *BatchBuilder) Compression() Compression { return b.comp }

// NumRecords returns how many records have been appended.
func (b *BatchBuilder) NumRecords() int { return int(b.count) }

// Size returns the uncompressed size of the batch so far, header included.
// Compare Size()+RecordSize(r) with the maximum batch size before appending:
// the uncompressed size is an upper bound on what compression will produce
// (Finish falls back to no compression if compressing does not shrink it).
func (b *BatchBuilder) Size() int { return max(BatchHeaderLen, len(b.buf)) }

// setBuf makes buf (its capacity) the builder's buffer, emptied.
func (b *BatchBuilder) setBuf(buf []byte) {
	if cap(buf) < BatchHeaderLen {
		buf = make([]byte, 0, 4096)
	}
	b.buf = buf[:BatchHeaderLen]
	b.recCRC, b.crcDone = 0, BatchHeaderLen
}

// records is the encoded records section so far.
func (b *BatchBuilder) records() []byte {
	if len(b.buf) < BatchHeaderLen {
		return nil
	}
	return b.buf[BatchHeaderLen:]
}

// FirstTimestamp returns the first record's timestamp (the batch's base
// timestamp); 0 when empty.
func (b *BatchBuilder) FirstTimestamp() int64 { return b.firstTS }

// MaxTimestamp returns the largest record timestamp so far; 0 when empty.
func (b *BatchBuilder) MaxTimestamp() int64 { return b.maxTS }

// RecordSize returns the number of bytes Append(r) would add to Size().
func (b *BatchBuilder) RecordSize(r *Record) int {
	return EncodedRecordLen(r, b.tsDelta(r), b.count)
}

func (b *BatchBuilder) tsDelta(r *Record) int64 {
	if b.count == 0 {
		return 0
	}
	return r.Timestamp - b.firstTS
}

// Append encodes r at the end of the batch, giving it the next offset delta.
// The builder copies r's bytes; r may be reused afterwards.
func (b *BatchBuilder) Append(r *Record) {
	if b.count == 0 {
		b.firstTS, b.maxTS = r.Timestamp, r.Timestamp
	} else if r.Timestamp > b.maxTS {
		b.maxTS = r.Timestamp
	}
	delta := r.Timestamp - b.firstTS
	body := recordBodyLen(r, delta, b.count)
	if len(b.buf) < BatchHeaderLen {
		b.setBuf(b.buf) // a zero BatchBuilder
	}
	if need := len(b.buf) + binary.MaxVarintLen32 + body; need > cap(b.buf) {
		b.grow(need)
	}
	b.buf = appendRecord(b.buf, r, delta, b.count, body)
	b.count++
	if b.comp.Codec == CodecNone && len(b.buf)-b.crcDone >= crcChunk {
		b.recCRC = crc32.Update(b.recCRC, castagnoli, b.buf[b.crcDone:])
		b.crcDone = len(b.buf)
	}
}

// recordsCRC returns the CRC-32C of the records section, and false when
// the batch is small enough that summing it whole is as cheap.
func (b *BatchBuilder) recordsCRC() (uint32, bool) {
	if b.crcDone <= BatchHeaderLen {
		return 0, false
	}
	return crc32.Update(b.recCRC, castagnoli, b.buf[b.crcDone:]), true
}

// Reserve makes room for a batch of n bytes (header included), so that
// appending up to that size does not grow the buffer.
func (b *BatchBuilder) Reserve(n int) {
	if len(b.buf) < BatchHeaderLen {
		b.setBuf(b.buf)
	}
	if n > cap(b.buf) {
		b.buf = slices.Grow(b.buf, n-len(b.buf))
	}
}

// grow doubles the buffer (or more, for a record larger than it). Left to
// append, a byte slice past a few hundred bytes grows by about a quarter
// at a time: a builder growing from 4 KiB to a 1 MB batch reallocated and
// copied itself some twenty times, about five times the batch's size in
// allocations (issue 6, 10 KB records). Doubling costs twice the batch's
// size at most, and a builder keeps its buffer for the next batch.
func (b *BatchBuilder) grow(need int) {
	b.buf = slices.Grow(b.buf, max(2*cap(b.buf), need)-len(b.buf))
}

// Finish appends the complete batch to dst and returns the extended slice.
// The builder is left unchanged (call Reset to start the next batch).
//
// The records section is compressed with the builder's Compression; if the
// compressed form is not smaller, the batch is written uncompressed with
// codec none, which every reader accepts and which saves the broker from
// decompressing for nothing.
//
// The bytes written are final: an idempotent producer must resend exactly
// these bytes on retry, so keep them rather than calling Finish again. Use
// SetProducer to change the producer fields of a batch never sent.
func (b *BatchBuilder) Finish(dst []byte, p ProducerState) ([]byte, error) {
	if b.count == 0 {
		return dst, ErrEmptyBatch
	}
	start := len(dst)
	dst = append(dst, zeroHeader[:]...)
	codec := b.comp.Codec
	recs := b.records()
	if codec == CodecNone {
		dst = append(dst, recs...)
	} else {
		var err error
		dst, err = AppendCompressed(dst, recs, b.comp)
		if err != nil {
			return dst[:start], err
		}
		if len(dst)-start-BatchHeaderLen >= len(recs) {
			dst = append(dst[:start+BatchHeaderLen], recs...)
			codec = CodecNone
		}
	}
	crc, summed := uint32(0), false
	if codec == CodecNone {
		crc, summed = b.recordsCRC() // the same records, copied
	}
	if err := b.writeHeader(dst[start:], codec, p, crc, summed); err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// FinishTake is Finish without the copy when it can: an uncompressed batch
// is finished in the builder's own buffer, which it returns, and the
// builder continues with spare as its buffer; a compressed batch is
// written into spare as by Finish(spare[:0], p). Either way the caller owns
// the returned batch and the builder owns the other buffer. Give a spare
// with capacity Size() to avoid growing it.
func (b *BatchBuilder) FinishTake(p ProducerState, spare []byte) ([]byte, error) {
	if b.count == 0 {
		return nil, ErrEmptyBatch
	}
	if b.comp.Codec != CodecNone {
		return b.Finish(spare[:0], p)
	}
	batch := b.buf
	crc, summed := b.recordsCRC()
	if err := b.writeHeader(batch, CodecNone, p, crc, summed); err != nil {
		return nil, err
	}
	b.setBuf(spare)
	return batch, nil
}

// writeHeader fills the header of batch, one whole batch whose records
// section follows the header. When summed, recordsCRC is the CRC-32C of
// that section, so that only the header needs reading.
func (b *BatchBuilder) writeHeader(batch []byte, codec Codec, p ProducerState, recordsCRC uint32, summed bool) error {
	if len(batch)-logOverhead > 1<<31-1 {
		return fmt.Errorf("record: batch of %d bytes exceeds the int32 length field", len(batch))
	}
	attrs := Attributes(codec)
	if p.Transactional {
		attrs |= AttrTransactional
	}
	be := binary.BigEndian
	be.PutUint64(batch[offBaseOffset:], 0) // the broker assigns offsets
	be.PutUint32(batch[offLength:], uint32(len(batch)-logOverhead))
	be.PutUint32(batch[offLeaderEpoch:], 0xffffffff) // -1: set by the broker
	batch[offMagic] = Magic
	be.PutUint16(batch[offAttributes:], uint16(attrs))
	// lastOffsetDelta is also what the broker adds to baseSequence to get the
	// batch's last sequence, so it must be count-1 even for one record.
	be.PutUint32(batch[offLastOffsetDelta:], uint32(b.count-1))
	be.PutUint64(batch[offBaseTimestamp:], uint64(b.firstTS))
	be.PutUint64(batch[offMaxTimestamp:], uint64(b.maxTS))
	be.PutUint32(batch[offRecordCount:], uint32(b.count))
	if !summed {
		putProducer(batch, p.ID, p.Epoch, p.BaseSequence) // also sets the CRC
		return nil
	}
	putProducerFields(batch, p.ID, p.Epoch, p.BaseSequence)
	head := CRC32C(batch[offAttributes:BatchHeaderLen])
	be.PutUint32(batch[offCRC:], crc32cCombine(head, recordsCRC, len(batch)-BatchHeaderLen))
	return nil
}

var zeroHeader [BatchHeaderLen]byte

// putProducer writes the producer fields and recomputes the CRC, which
// covers them (attributes through the end of the batch).
func putProducer(batch []byte, id int64, epoch int16, seq int32) {
	putProducerFields(batch, id, epoch, seq)
	binary.BigEndian.PutUint32(batch[offCRC:], CRC32C(batch[offAttributes:]))
}

// putProducerFields writes the producer fields only.
func putProducerFields(batch []byte, id int64, epoch int16, seq int32) {
	be := binary.BigEndian
	be.PutUint64(batch[offProducerID:], uint64(id))
	be.PutUint16(batch[offProducerEpoch:], uint16(epoch))
	be.PutUint32(batch[offBaseSequence:], uint32(seq))
}

// SetProducer rewrites the producer id, epoch and base sequence of one
// finished v2 batch in place and recomputes its CRC. It is for batches not
// yet sent (for example after an epoch bump); a batch already sent must be
// retried byte for byte. batch must hold exactly one batch, as Finish wrote.
func SetProducer(batch []byte, id int64, epoch int16, baseSequence int32) error {
	if len(batch) < BatchHeaderLen {
		return corruptf("batch of %d bytes is shorter than the %d-byte header", len(batch), BatchHeaderLen)
	}
	if m := int8(batch[offMagic]); m != Magic {
		return fmt.Errorf("%w: magic %d", ErrUnsupportedMagic, m)
	}
	if n := int64(int32(binary.BigEndian.Uint32(batch[offLength:]))); n != int64(len(batch)-logOverhead) {
		return corruptf("batch length field %d does not match its %d bytes", n, len(batch)-logOverhead)
	}
	putProducer(batch, id, epoch, baseSequence)
	return nil
}

// BeginIn starts an uncompressed batch at the end of dst, in dst's own
// memory: the records appended next go straight into it, so that a batch
// is encoded where it is sent from (a produce request being written)
// rather than into a buffer of its own and copied. dst must have room for
// the whole batch (cap(dst)-len(dst) of at least its size plus
// binary.MaxVarintLen32), or the builder moves to a buffer of its own.
// Finish it with FinishIn.
func (b *BatchBuilder) BeginIn(dst []byte) {
	// Not Reset: after FinishIn the builder has no buffer, and Reset
	// would make one (4 KiB) only to drop it here. That was 64 % of the
	// producer's allocated bytes at one record per batch (latency-20k)
	// and about 200 B per record with 20-record batches (issue 11).
	b.count, b.firstTS, b.maxTS = 0, 0, 0
	b.setBuf(dst[len(dst):len(dst)])
	b.comp = Compression{}
}

// FinishIn finishes an uncompressed batch begun with BeginIn and returns
// it (in dst's memory when it fitted). The builder lets go of the memory.
func (b *BatchBuilder) FinishIn(p ProducerState) ([]byte, error) {
	if b.count == 0 {
		return nil, ErrEmptyBatch
	}
	batch := b.buf
	crc, summed := b.recordsCRC()
	err := b.writeHeader(batch, CodecNone, p, crc, summed)
	b.buf = nil
	b.count, b.firstTS, b.maxTS = 0, 0, 0
	if err != nil {
		return nil, err
	}
	return batch, nil
}
