package fetch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/internal/topicpart"
)

// abortedTxn is one entry of a read_committed fetch answer's aborted
// transactions: producer pid aborted a transaction whose first record is at
// first.
type abortedTxn struct {
	pid   int64
	first int64
}

// span is a run of decoded records that came from one batch, for releasing
// the buffer budget as Poll hands records out: end is the index after the
// run's last record, bytes the batch's decompressed size.
type span struct {
	end   int
	bytes int64
}

// decoded is what one partition's data in a fetch answer amounts to.
type decoded[R any] struct {
	records []R
	spans   []span
	bytes   int64 // decompressed size of the batches records came from
	// next is the offset to fetch after this data: past the last complete
	// batch read, including control and aborted batches, whose records are
	// never returned.
	next int64
	// err stops the partition after records: corrupt or unreadable data.
	err error
	// tooSmall: the data held bytes but not one complete batch, so the
	// partition's max bytes cannot fit its next batch.
	tooSmall bool
	// epoch is the leader epoch of the last batch read (control and
	// aborted ones too), -1 when none said: what the position after next
	// remembers for KIP-320 validation.
	epoch int32
}

// decodePartition turns one partition's record batches into records at or
// after fetchOffset. Whole batches come back from the broker, so the first
// may start below fetchOffset; records below it are dropped. With
// readCommitted, batches of aborted transactions are dropped (following
// aborted, the broker's list) and control batches always are.
//
// A batch that fails its CRC or cannot be decompressed ends the decoding
// with err set; the records before it are kept, and next points at the bad
// batch so that nothing after it is read past silently.
func decodePartition(data []byte, fetchOffset int64, readCommitted bool, aborted []abortedTxn, dec *record.Decompressor) decoded[Record] {
	return decodeAs(&RecordShape, topicpart.TP{}, data, fetchOffset, readCommitted, aborted, dec)
}

// decodeAs is decodePartition making records of tp with sh.
func decodeAs[R any](sh *Shape[R], tp topicpart.TP, data []byte, fetchOffset int64, readCommitted bool, aborted []abortedTxn, dec *record.Decompressor) decoded[R] {
	d := decoded[R]{next: fetchOffset, epoch: -1}
	if readCommitted && len(aborted) > 1 {
		aborted = slices.Clone(aborted)
		slices.SortFunc(aborted, func(a, b abortedTxn) int { return cmpInt64(a.first, b.first) })
	}
	if n := recordsHint(data); n > 0 {
		// One allocation of the right size: growing batch by batch
		// zeroed and copied the records again at every doubling.
		d.records = make([]R, 0, n)
	}
	var abortedPIDs map[int64]struct{}
	var rd record.Reader
	rd.Reset(data)
	any := false
	for {
		var b record.Batch
		err := rd.Next(&b)
		if err == io.EOF {
			break
		}
		any = true
		if err != nil {
			d.err = batchErr(b.BaseOffset, err)
			return d
		}
		next := b.NextOffset()
		if readCommitted && b.ProducerID >= 0 {
			// A transaction aborted at or before this batch's end is
			// in force from its first offset until its ABORT marker.
			for len(aborted) > 0 && aborted[0].first <= b.LastOffset() {
				if abortedPIDs == nil {
					abortedPIDs = make(map[int64]struct{})
				}
				abortedPIDs[aborted[0].pid] = struct{}{}
				aborted = aborted[1:]
			}
			if b.Attributes.Control() {
				typ, err := b.ControlType(dec)
				if err != nil {
					d.err = batchErr(b.BaseOffset, err)
					return d
				}
				if typ == record.ControlAbort {
					delete(abortedPIDs, b.ProducerID)
				}
			} else if _, ok := abortedPIDs[b.ProducerID]; ok && b.Attributes.Transactional() {
				d.advance(next, b.PartitionLeaderEpoch)
				continue
			}
		}
		// d.next, not fetchOffset: a log's offsets only grow, so a batch
		// whose records lie below what was already read has a corrupt
		// base offset (it is outside the CRC), and returning them would
		// hand out offsets backwards (found by FuzzFetchResponse).
		if b.Attributes.Control() || next <= d.next {
			d.advance(next, b.PartitionLeaderEpoch)
			continue
		}
		if err := d.appendBatch(sh, tp, &b, d.next, next, dec); err != nil {
			d.err = batchErr(b.BaseOffset, err)
			return d
		}
		d.advance(next, b.PartitionLeaderEpoch)
	}
	if !any && len(data) > 0 && rd.Truncated() {
		d.tooSmall = true
	}
	return d
}

// advance moves next past a batch read whose leader epoch is epoch.
func (d *decoded[R]) advance(next int64, epoch int32) {
	if next > d.next {
		d.next = next
		if epoch >= 0 {
			d.epoch = epoch
		}
	}
}

// appendBatch decodes b's records at or after fetchOffset onto d; next is
// the batch's next offset (base + last offset delta + 1).
//
// It refuses, as corrupt, a batch whose records' offsets do not increase
// or reach next: the fetch after it would return them again. Brokers never
// write such batches; the CRC covers the deltas, so only a broken writer
// could. Checked as the records are decoded: a second pass over them,
// reading each offset through sh.Pos, was 2 % of the consumer's CPU.
func (d *decoded[R]) appendBatch(sh *Shape[R], tp topicpart.TP, b *record.Batch, fetchOffset, next int64, dec *record.Decompressor) error {
	data, err := b.Decompress(dec, nil)
	if err != nil {
		return err
	}
	// Uncompressed records alias the fetch answer, as franz-go's do: a
	// copy of every batch was 10 % of the consumer's CPU and a third of
	// the bytes it allocated per record on consume-100B-64p
	// (docs/BENCHMARKS.md, "Consume at scale"). The budget still counts
	// each batch until Poll hands it out; what it no longer bounds is a
	// Message kept after that, which keeps the whole answer alive rather
	// than its batch (keel.Message says so).
	plain := *b
	plain.Records = data
	plain.Attributes &^= codecBits
	// Decode straight into d.records, grown once per batch: decoding into
	// a slice of its own first and copying, with d.records doubling its
	// way up, was a third of the consumer's CPU time (issue 6).
	start := len(d.records)
	d.records = slices.Grow(d.records, plain.MaxRecords(data))
	epoch := b.PartitionLeaderEpoch
	mk := sh.Make
	prev := int64(math.MinInt64)
	var disorder error
	err = plain.EachRecord(data, func(r *record.Record) {
		if r.Offset >= fetchOffset && disorder == nil {
			if o := r.Offset; o <= prev || o >= next {
				disorder = fmt.Errorf("%w: record offsets out of order in the batch (offset %d after %d, next offset %d)", record.ErrCorrupt, o, prev, next)
				return
			}
			prev = r.Offset
			if n := len(d.records); n < cap(d.records) {
				d.records = d.records[:n+1] // room made by the Grow above
			} else {
				var zero R
				d.records = append(d.records, zero)
			}
			mk(&d.records[len(d.records)-1], tp, r, epoch)
		}
	})
	if err == nil {
		err = disorder
	}
	if err != nil {
		clear(d.records[start:])
		d.records = d.records[:start]
		return err
	}
	if len(d.records) == start {
		return nil
	}
	size := int64(len(data))
	d.bytes += size
	d.spans = append(d.spans, span{end: len(d.records), bytes: size})
	return nil
}

// codecBits are the attribute bits naming the compression codec.
const codecBits record.Attributes = 0x07

// batchErr wraps a decoding failure so that it matches errs.ErrCorruptMessage
// (for corrupt data) and the record package's sentinel.
func batchErr(offset int64, err error) error {
	e := &errs.Error{Detail: fmt.Sprintf("cannot read the batch at offset %d", offset), Err: err}
	if errors.Is(err, record.ErrCorrupt) {
		e.Code, e.Name = errs.CodeCorruptMessage, errs.Lookup(errs.CodeCorruptMessage).Name
	}
	return e
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// recordsHint guesses from the batch headers alone how many records data
// holds, to size the records' slice once. It reads each batch's length and
// record count (v2 layout), trusting a count only as far as the batch's
// length can hold records, so that a hostile count allocates nothing big;
// decoding checks everything and grows the slice if the guess was short.
// (The bound is the one appendBatch's Grow applied batch by batch before;
// a count that fails its CRC later costs a larger slice than needed, once.)
func recordsHint(data []byte) int {
	const (
		lengthAt  = 8  // int32 after the base offset
		overhead  = 12 // base offset and length
		countAt   = record.BatchHeaderLen - 4
		minRecord = 7 // bytes of the smallest possible record
	)
	n := 0
	for len(data) >= record.BatchHeaderLen {
		length := int(int32(binary.BigEndian.Uint32(data[lengthAt:])))
		if length < record.BatchHeaderLen-overhead || len(data) < overhead+length {
			break
		}
		count := int(int32(binary.BigEndian.Uint32(data[countAt:])))
		n += max(0, min(count, (length-(record.BatchHeaderLen-overhead))/minRecord))
		data = data[overhead+length:]
	}
	return n
}
