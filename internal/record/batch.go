package record

import "encoding/binary"

// Layout of the record batch v2 header (all big-endian). Offsets are from the
// start of the batch.
const (
	offBaseOffset      = 0
	offLength          = 8 // int32: bytes after this field
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17 // uint32 CRC-32C of bytes [offAttributes, end)
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57

	// BatchHeaderLen is the size of a v2 batch header; records follow it.
	BatchHeaderLen = 61

	// logOverhead is baseOffset + length: the part of every batch (and of
	// every legacy message) not counted by the length field.
	logOverhead = 12
)

// Magic is the record batch format version this package encodes and decodes.
const Magic = 2

// Attributes is a v2 batch's attributes field.
type Attributes int16

// Attribute bits above the codec (bits 0-2).
const (
	// AttrLogAppendTime: the broker stamped the batch; every record's
	// timestamp is the batch's MaxTimestamp, whatever its delta says.
	AttrLogAppendTime Attributes = 1 << 3
	// AttrTransactional: the batch was written inside a transaction.
	AttrTransactional Attributes = 1 << 4
	// AttrControl: the batch holds a transaction marker, not user data.
	AttrControl Attributes = 1 << 5
	// AttrDeleteHorizon: set by the broker's log cleaner (KIP-534); the
	// base timestamp is then the delete horizon. Informational for clients.
	AttrDeleteHorizon Attributes = 1 << 6

	attrCodecMask Attributes = 0x07
)

// Codec returns the compression codec of the records section.
func (a Attributes) Codec() Codec { return Codec(a & attrCodecMask) }

// LogAppendTime reports whether record timestamps are the broker's append
// time (use Batch.MaxTimestamp) rather than the producer's create time.
func (a Attributes) LogAppendTime() bool { return a&AttrLogAppendTime != 0 }

// Transactional reports whether the batch belongs to a transaction.
func (a Attributes) Transactional() bool { return a&AttrTransactional != 0 }

// Control reports whether the batch is a control (transaction marker) batch.
func (a Attributes) Control() bool { return a&AttrControl != 0 }

// Batch is a decoded v2 batch header plus its records section, as the
// Reader returns it. Records aliases the buffer given to the Reader and is
// still compressed if Attributes.Codec() says so.
type Batch struct {
	BaseOffset           int64
	Length               int32 // bytes after the Length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32 // stored and verified
	Attributes           Attributes
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
	Records              []byte
}

// LastOffset is the offset of the batch's last record as written, which
// compaction may have removed (so it can exceed every record's offset).
func (b *Batch) LastOffset() int64 { return b.BaseOffset + int64(b.LastOffsetDelta) }

// NextOffset is the fetch position after this batch: LastOffset()+1. Use it
// rather than the last record's offset+1, or compacted batches (and control
// batches, whose records are never returned) would be fetched again forever.
func (b *Batch) NextOffset() int64 { return b.LastOffset() + 1 }

// parseHeader fills b from a complete v2 batch (len(p) == 12+length).
func (b *Batch) parseHeader(p []byte) {
	be := binary.BigEndian
	b.BaseOffset = int64(be.Uint64(p[offBaseOffset:]))
	b.Length = int32(be.Uint32(p[offLength:]))
	b.PartitionLeaderEpoch = int32(be.Uint32(p[offLeaderEpoch:]))
	b.Magic = int8(p[offMagic])
	b.CRC = be.Uint32(p[offCRC:])
	b.Attributes = Attributes(be.Uint16(p[offAttributes:]))
	b.LastOffsetDelta = int32(be.Uint32(p[offLastOffsetDelta:]))
	b.BaseTimestamp = int64(be.Uint64(p[offBaseTimestamp:]))
	b.MaxTimestamp = int64(be.Uint64(p[offMaxTimestamp:]))
	b.ProducerID = int64(be.Uint64(p[offProducerID:]))
	b.ProducerEpoch = int16(be.Uint16(p[offProducerEpoch:]))
	b.BaseSequence = int32(be.Uint32(p[offBaseSequence:]))
	b.NumRecords = int32(be.Uint32(p[offRecordCount:]))
	b.Records = p[BatchHeaderLen:]
}
