package record

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ControlType is the type of a control record, from its key.
type ControlType int16

// Control record types Kafka defines (ControlRecordType.java). Other values
// may appear from newer brokers; consumers skip those batches too.
const (
	ControlAbort  ControlType = 0 // transaction aborted: drop its records
	ControlCommit ControlType = 1 // transaction committed
)

// String returns "ABORT", "COMMIT" or "control(N)".
func (t ControlType) String() string {
	switch t {
	case ControlAbort:
		return "ABORT"
	case ControlCommit:
		return "COMMIT"
	}
	return fmt.Sprintf("control(%d)", int16(t))
}

// ParseControlKey decodes a control record key: int16 version, int16 type.
// Like Kafka's consumer it rejects a negative version and a key shorter
// than 4 bytes, and ignores bytes after the type (future versions may add
// fields).
func ParseControlKey(key []byte) (ControlType, error) {
	if len(key) < 4 {
		return 0, corruptf("control record key of %d bytes, want at least 4", len(key))
	}
	if v := int16(binary.BigEndian.Uint16(key)); v < 0 {
		return 0, corruptf("control record key version %d", v)
	}
	return ControlType(binary.BigEndian.Uint16(key[2:])), nil
}

// ControlType returns the type of a control batch's record. Control batches
// hold exactly one record; the broker writes them uncompressed, but d is
// used if one is not. It fails if the batch is not a control batch.
func (b *Batch) ControlType(d *Decompressor) (ControlType, error) {
	if !b.Attributes.Control() {
		return 0, fmt.Errorf("record: batch at offset %d is not a control batch", b.BaseOffset)
	}
	data, err := b.Decompress(d, nil)
	if err != nil {
		return 0, err
	}
	it := b.Iter(data)
	var r Record
	if err := it.Next(&r); err != nil {
		if err == io.EOF {
			return 0, corruptf("control batch at offset %d has no records", b.BaseOffset)
		}
		return 0, err
	}
	t, err := ParseControlKey(r.Key)
	if err != nil {
		return 0, fmt.Errorf("control batch at offset %d: %w", b.BaseOffset, err)
	}
	return t, nil
}
