package share

import (
	"cmp"
	"slices"
)

// pendingAck is one record's acknowledgement waiting to be sent.
type pendingAck struct {
	offset int64
	typ    AckType
	// gen is the session generation the record was acquired in: an
	// acknowledgement only means something to that session.
	gen uint64
	// late: the record's lock had run out when it was acknowledged, so
	// the broker may have given it to another member and refuse this.
	late bool
}

// ackRange is a run of contiguous offsets acknowledged the same way, the
// unit the protocol carries.
type ackRange struct {
	first, last int64
	typ         AckType
}

// ackRanges turns one partition's acknowledgements into the ranges to
// send: sorted, non-overlapping (the broker refuses a request whose
// batches overlap or go backwards), contiguous offsets of one type merged.
// When an offset appears twice, a renewal gives way to the final
// acknowledgement, which ends the acquisition anyway; otherwise the later
// one wins. acks is reordered.
func ackRanges(acks []pendingAck) []ackRange {
	slices.SortStableFunc(acks, func(a, b pendingAck) int { return cmp.Compare(a.offset, b.offset) })
	out := make([]ackRange, 0, 1)
	for i := 0; i < len(acks); {
		// Of the entries for one offset, pick the one to send.
		j, pick := i+1, acks[i].typ
		for ; j < len(acks) && acks[j].offset == acks[i].offset; j++ {
			if acks[j].typ != Renew || pick == Renew {
				pick = acks[j].typ
			}
		}
		off := acks[i].offset
		if n := len(out); n > 0 && out[n-1].typ == pick && out[n-1].last == off-1 {
			out[n-1].last = off
		} else {
			out = append(out, ackRange{first: off, last: off, typ: pick})
		}
		i = j
	}
	return out
}

// rangeOffsets lists the offsets of rs that have type typ.
func rangeOffsets(rs []ackRange, typ AckType) []int64 {
	var out []int64
	for _, r := range rs {
		if r.typ != typ {
			continue
		}
		for o := r.first; o <= r.last; o++ {
			out = append(out, o)
		}
	}
	return out
}

// ackTypesOf is the protocol's AcknowledgeTypes of a uniform range: one
// element applies to every offset of the batch.
func ackTypesOf(t AckType) []int8 { return []int8{int8(t)} }
