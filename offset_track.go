package keel

import (
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"
)

// offsetTrack is a parallel lane's record of the records it took from its
// partition and not yet retired, in offset order: which of them finished.
// Retiring the finished head gives the contiguous processed prefix, the
// only thing a commit may claim (never past a record that has not
// finished). Each entry has a sequence number, so that a finishing handler
// finds its entry without a search.
type offsetTrack struct {
	ents []trackEntry // ring
	head int          // index of the oldest entry
	n    int          // entries in use
	base uint64       // sequence number of the oldest entry
}

type trackEntry struct {
	offset int64
	epoch  int32
	done   bool
}

// push adds the record at offset (of a batch of leader epoch epoch) as
// taken, and returns its sequence number.
func (t *offsetTrack) push(offset int64, epoch int32, done bool) uint64 {
	if t.n == len(t.ents) {
		t.grow()
	}
	t.ents[(t.head+t.n)%len(t.ents)] = trackEntry{offset: offset, epoch: epoch, done: done}
	t.n++
	return t.base + uint64(t.n-1)
}

func (t *offsetTrack) grow() {
	ents := make([]trackEntry, max(64, 2*len(t.ents)))
	for i := range t.n {
		ents[i] = t.ents[(t.head+i)%len(t.ents)]
	}
	t.ents, t.head = ents, 0
}

// finish marks the entry seq finished; it reports false for a sequence
// number the track does not hold (retired, or from before a reset).
func (t *offsetTrack) finish(seq uint64) bool {
	if seq < t.base || seq >= t.base+uint64(t.n) {
		return false
	}
	t.ents[(t.head+int(seq-t.base))%len(t.ents)].done = true
	return true
}

// retire drops the finished entries at the head and returns the last one
// dropped: the end of the processed prefix.
func (t *offsetTrack) retire() (last trackEntry, ok bool) {
	for t.n > 0 {
		e := t.ents[t.head]
		if !e.done {
			break
		}
		last, ok = e, true
		t.ents[t.head] = trackEntry{}
		t.head = (t.head + 1) % len(t.ents)
		t.n--
		t.base++
	}
	return last, ok
}

// len is the number of entries held: taken and not retired.
func (t *offsetTrack) len() int { return t.n }

// reset forgets every entry; sequence numbers given out before never
// match again.
func (t *offsetTrack) reset() {
	clear(t.ents)
	t.base += uint64(t.n) + 1
	t.head, t.n = 0, 0
}

// doneRuns appends to out the runs of finished entries, as offset ranges;
// runs of entries taken one after another are one range, whatever offsets
// lie between them (compaction gaps and control records are no records).
func (t *offsetTrack) doneRuns(out []offsetRange) []offsetRange {
	inRun := false
	for i := range t.n {
		e := t.ents[(t.head+i)%len(t.ents)]
		switch {
		case e.done && inRun:
			out[len(out)-1].end = e.offset + 1
		case e.done:
			out = append(out, offsetRange{start: e.offset, end: e.offset + 1})
			inRun = true
		default:
			inRun = false
		}
	}
	return out
}

// offsetRange is the offsets [start, end).
type offsetRange struct{ start, end int64 }

// doneRanges is what a commit says besides the offset: the records after
// it that were processed already, out of order, so that whoever continues
// the partition (another member after a rebalance or a crash, or the next
// Run) skips them instead of processing them again. Kafka has one
// committed offset per partition; the ranges travel in the commit's
// metadata string, which every broker keeps with it (Confluent's Parallel
// Consumer does the same). Other clients ignore them: they only process
// those records again.
type doneRanges []offsetRange

// maxDoneMetadata bounds the encoded ranges below the brokers' default
// offset.metadata.max.bytes (4096); ranges that do not fit are left out,
// which only means their records may be processed again.
const maxDoneMetadata = 3000

const doneMetadataPrefix = "keel.done.v1:"

// encode writes the ranges at or after committed as the commit metadata
// of offset committed. Empty when there are none.
func (d doneRanges) encode(committed int64) string {
	s, _ := d.encodeFit(committed)
	return s
}

// encodeFit is encode, and whether every range fit: ExactlyOnce must not
// commit ranges left out, whose outputs its transaction holds.
func (d doneRanges) encodeFit(committed int64) (string, bool) {
	fit := true
	var buf []byte
	prev := committed
	for _, r := range d {
		if r.end <= committed {
			continue
		}
		start := max(r.start, committed)
		if start < prev {
			start = prev // overlapping input: merge
		}
		if r.end <= start {
			continue
		}
		n := len(buf)
		buf = binary.AppendUvarint(buf, uint64(start-prev))
		buf = binary.AppendUvarint(buf, uint64(r.end-start))
		if base64.RawURLEncoding.EncodedLen(len(buf))+len(doneMetadataPrefix)+20 > maxDoneMetadata {
			buf, fit = buf[:n], false
			break
		}
		prev = r.end
	}
	if len(buf) == 0 {
		return "", fit
	}
	return doneMetadataPrefix + strconv.FormatInt(committed, 10) + ":" + base64.RawURLEncoding.EncodeToString(buf), fit
}

// decodeDoneRanges reads the ranges back from the metadata committed with
// offset committed. Metadata keel did not write, or written with another
// offset, gives none.
func decodeDoneRanges(md string, committed int64) doneRanges {
	rest, ok := strings.CutPrefix(md, doneMetadataPrefix)
	if !ok {
		return nil
	}
	at, enc, ok := strings.Cut(rest, ":")
	if !ok || at != strconv.FormatInt(committed, 10) {
		return nil
	}
	buf, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil
	}
	var out doneRanges
	prev := committed
	for len(buf) > 0 {
		gap, n := binary.Uvarint(buf)
		if n <= 0 {
			return nil
		}
		buf = buf[n:]
		length, n := binary.Uvarint(buf)
		if n <= 0 || length == 0 || gap > 1<<62 || length > 1<<62 {
			return nil
		}
		buf = buf[n:]
		start := prev + int64(gap)
		end := start + int64(length)
		if end < start {
			return nil
		}
		out = append(out, offsetRange{start: start, end: end})
		prev = end
	}
	return out
}

// contains reports whether offset is in one of the ranges; it moves *at
// along for offsets asked in increasing order (a lane's records), so a
// lane's whole pass over them is linear.
func (d doneRanges) contains(offset int64, at *int) bool {
	for *at < len(d) && d[*at].end <= offset {
		*at++
	}
	return *at < len(d) && d[*at].start <= offset
}

// after returns the part of d at or after offset.
func (d doneRanges) after(offset int64) doneRanges {
	var out doneRanges
	for _, r := range d {
		if r.end <= offset {
			continue
		}
		out = append(out, offsetRange{start: max(r.start, offset), end: r.end})
	}
	return out
}
