package record

import (
	"errors"
	"fmt"
)

// Sentinel errors. Functions in this package wrap them with detail (which
// batch, which field), so match them with errors.Is.
var (
	// ErrCorrupt reports bytes that cannot be a valid batch: CRC mismatch,
	// impossible lengths, records that overrun or underrun their batch,
	// undecodable compressed data. Kafka's equivalent is CORRUPT_MESSAGE.
	// It is never returned for a batch that is merely cut off at the end of
	// a fetch response; those are dropped (see Reader).
	ErrCorrupt = errors.New("record: corrupt batch")

	// ErrTooLarge reports that decompressing a batch would produce more
	// bytes than the Decompressor's limit (a decompression bomb, or a limit
	// set too low for the data).
	ErrTooLarge = errors.New("record: decompressed batch exceeds size limit")

	// ErrUnsupportedMagic reports a legacy message set (magic 0 or 1) or an
	// unknown future magic. This package only decodes record batch v2.
	ErrUnsupportedMagic = errors.New("record: unsupported message format (magic)")

	// ErrUnknownCodec reports a compression codec outside 0-4 or a level the
	// codec does not support.
	ErrUnknownCodec = errors.New("record: unknown compression codec or level")

	// ErrEmptyBatch reports an attempt to finish a batch with no records;
	// Kafka rejects those and they would have lastOffsetDelta -1.
	ErrEmptyBatch = errors.New("record: batch has no records")
)

// corruptf wraps ErrCorrupt with a formatted reason.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
