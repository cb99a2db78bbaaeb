package share

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
)

// acquired is what one partition of a ShareFetch answer amounts to.
type acquired struct {
	tp TP
	// records are those at acquired offsets, in offset order, each with
	// the delivery count of its acquired range.
	records []Record
	// gaps are acquired offsets with no record to hand out (control
	// records, offsets compacted away): acknowledged as GAP at once so
	// the broker does not wait for their locks to expire.
	gaps []ackRange
	// unreadable are acquired offsets in or after a batch that could not
	// be read (CRC, decompression): released, so that the broker delivers
	// them again (perhaps to a member that reads them fine) and, after
	// its delivery limit, archives them.
	unreadable []ackRange
	err        error
}

// normalizeAcquired sorts the acquired ranges and drops impossible ones,
// merging overlaps: the walk below relies on sorted disjoint ranges, and a
// broker bug must not make keel skip or duplicate records.
func normalizeAcquired(in []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord) []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord {
	out := make([]kmsg.ShareFetchResponseTopicPartitionAcquiredRecord, 0, len(in))
	for _, r := range in {
		if r.FirstOffset >= 0 && r.FirstOffset <= r.LastOffset {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b kmsg.ShareFetchResponseTopicPartitionAcquiredRecord) int {
		return cmp.Compare(a.FirstOffset, b.FirstOffset)
	})
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r.FirstOffset <= merged[n-1].LastOffset {
			merged[n-1].LastOffset = max(merged[n-1].LastOffset, r.LastOffset)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// decodeAcquired reads data, one partition's record batches from a
// ShareFetch answer, keeping the records at offsets in ranges. The broker
// returns whole batches, so records outside the acquired ranges (acquired
// by other members, or already acknowledged) are dropped.
func decodeAcquired(tp TP, data []byte, ranges []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord, dec *record.Decompressor) acquired {
	out := acquired{tp: tp}
	ranges = normalizeAcquired(ranges)
	if len(ranges) == 0 {
		return out
	}
	badFrom := int64(-1) // offsets from here on are unreadable
	var rd record.Reader
	rd.Reset(data)
	ri := 0 // the range the next record may fall in
	for {
		var b record.Batch
		err := rd.Next(&b)
		if err == io.EOF {
			break
		}
		if err != nil {
			out.err, badFrom = batchErr(tp, b.BaseOffset, err), b.BaseOffset
			break
		}
		if b.Attributes.Control() || b.LastOffset() < ranges[ri].FirstOffset {
			continue
		}
		plain, err := b.Decompress(dec, nil)
		if err != nil {
			out.err, badFrom = batchErr(tp, b.BaseOffset, err), b.BaseOffset
			break
		}
		if b.Attributes.Codec() == record.CodecNone {
			// Records would alias the whole answer and keep it alive as
			// long as any one of them is referenced.
			plain = slices.Clone(plain)
		}
		err = b.EachRecord(plain, func(r *record.Record) {
			for ri < len(ranges) && r.Offset > ranges[ri].LastOffset {
				ri++
			}
			if ri == len(ranges) || r.Offset < ranges[ri].FirstOffset {
				return
			}
			out.records = append(out.records, Record{TP: tp, Record: *r, DeliveryCount: max(ranges[ri].DeliveryCount, 1)})
		})
		if err != nil {
			// Keep what came before this batch; its records are retried.
			n := len(out.records)
			for n > 0 && out.records[n-1].Offset >= b.BaseOffset {
				n--
			}
			clear(out.records[n:])
			out.records = out.records[:n]
			out.err, badFrom = batchErr(tp, b.BaseOffset, err), b.BaseOffset
			break
		}
		if ri == len(ranges) {
			break
		}
	}
	out.gaps, out.unreadable = missing(ranges, out.records, badFrom)
	return out
}

// missing returns the acquired offsets that no record covers: gaps below
// badFrom (or all, when badFrom < 0) and unreadable ones from it on.
func missing(ranges []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord, recs []Record, badFrom int64) (gaps, bad []ackRange) {
	add := func(first, last int64) {
		if first > last {
			return
		}
		if badFrom >= 0 && last >= badFrom {
			if first < badFrom {
				gaps = append(gaps, ackRange{first, badFrom - 1, Gap})
				first = badFrom
			}
			bad = append(bad, ackRange{first, last, Release})
			return
		}
		gaps = append(gaps, ackRange{first, last, Gap})
	}
	i := 0
	for _, r := range ranges {
		next := r.FirstOffset
		for ; i < len(recs) && recs[i].Offset <= r.LastOffset; i++ {
			if recs[i].Offset < next {
				continue // a duplicate offset in a broken answer
			}
			add(next, recs[i].Offset-1)
			next = recs[i].Offset + 1
		}
		add(next, r.LastOffset)
	}
	return gaps, bad
}

// batchErr says which batch of which partition could not be read; it
// matches errs.ErrCorruptMessage for corrupt data.
func batchErr(tp TP, offset int64, err error) error {
	e := &errs.Error{Detail: fmt.Sprintf("cannot read the batch at offset %d of %s/%d", offset, tp.Topic, tp.Partition), Err: err}
	if errors.Is(err, record.ErrCorrupt) {
		e.Code, e.Name = errs.CodeCorruptMessage, errs.Lookup(errs.CodeCorruptMessage).Name
	}
	return e
}
