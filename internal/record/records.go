package record

import (
	"errors"
	"fmt"
	"io"
)

// Decompress returns the batch's plain records section. For an uncompressed
// batch that is b.Records itself (aliasing the fetch buffer) and dst is
// untouched; otherwise the records are decompressed with d, appended to dst,
// and the appended part is returned. Records decoded from the result alias
// it, so pass a fresh or no-longer-referenced dst.
func (b *Batch) Decompress(d *Decompressor, dst []byte) ([]byte, error) {
	codec := b.Attributes.Codec()
	if codec == CodecNone {
		return b.Records, nil
	}
	if d == nil {
		return nil, fmt.Errorf("record: batch at offset %d is %v-compressed and no Decompressor was given", b.BaseOffset, codec)
	}
	start := len(dst)
	out, err := d.AppendDecompressed(dst, b.Records, codec)
	if err != nil {
		return nil, fmt.Errorf("decompressing %v batch at offset %d: %w", codec, b.BaseOffset, err)
	}
	return out[start:], nil
}

// Iter returns an iterator over the records in data, which must be this
// batch's plain records section (from Decompress).
func (b *Batch) Iter(data []byte) RecordIter {
	return RecordIter{
		data:       data,
		n:          b.NumRecords,
		baseOffset: b.BaseOffset,
		baseTS:     b.BaseTimestamp,
		maxTS:      b.MaxTimestamp,
		appendTime: b.Attributes.LogAppendTime(),
	}
}

// AppendRecords decompresses the batch (allocating a fresh buffer, so the
// records stay valid for as long as they are referenced) and appends all its
// records to dst. Key, Value and header values alias that buffer or, for an
// uncompressed batch, the fetch buffer the Reader was given. Headers of all
// records share one allocation per batch.
//
// Control batches are decoded like any other; callers filter them out.
func (b *Batch) AppendRecords(dst []Record, d *Decompressor) ([]Record, error) {
	data, err := b.Decompress(d, nil)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = grow(dst, b.MaxRecords(data))
	if err := b.EachRecord(data, func(r *Record) { dst = append(dst, *r) }); err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// MaxRecords bounds how many records data (this batch's plain records
// section) holds: the batch's count, unless data is too short for it (a
// record takes at least 7 bytes, which bounds a hostile count). It is for
// sizing a slice once before EachRecord.
func (b *Batch) MaxRecords(data []byte) int {
	return max(0, min(int(b.NumRecords), len(data)/minRecordLen))
}

// EachRecord decodes the records of data, this batch's plain records
// section (from Decompress), and calls fn with each in order. *r is reused
// for the next record, but its contents may be kept (copy *r): Key, Value
// and header values alias data, and headers are never reused (those of the
// whole batch share one allocation). On a decoding error it stops and
// returns it.
func (b *Batch) EachRecord(data []byte, fn func(r *Record)) error {
	it := b.Iter(data)
	var (
		arena   []Header // all headers of the batch, sub-sliced per record
		scratch []Header // decode target, reused for every record
		r       Record   // one variable for all: fn gets its address
	)
	for {
		r = Record{Headers: scratch}
		err := it.Next(&r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		scratch = r.Headers
		if len(r.Headers) == 0 {
			r.Headers = nil
		} else {
			// If append moves arena, earlier records keep the old array,
			// which still holds their headers: nothing is invalidated.
			at := len(arena)
			arena = append(arena, r.Headers...)
			// Cap the record's slice so a user's append cannot overwrite
			// the next record's headers.
			r.Headers = arena[at:len(arena):len(arena)]
		}
		fn(&r)
	}
}

// minRecordLen is the smallest encoded record: length, attributes, deltas,
// key, value and header count, one byte each.
const minRecordLen = 7

// grow makes room for n more elements.
func grow(dst []Record, n int) []Record {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	out := make([]Record, len(dst), len(dst)+n)
	copy(out, dst)
	return out
}

// RecordIter decodes a batch's records one at a time into a caller-owned
// Record, so iterating allocates nothing beyond growth of r.Headers.
type RecordIter struct {
	data       []byte
	pos        int
	i, n       int32
	baseOffset int64
	baseTS     int64
	maxTS      int64
	appendTime bool
}

// Next decodes the next record into r, setting its absolute Offset and
// Timestamp (the batch's MaxTimestamp when it uses LogAppendTime). r.Headers
// is truncated and appended to, so reusing one Record reuses its header
// slice. Key, Value and header values alias the iterator's data.
//
// Next returns io.EOF after the batch's NumRecords records, and ErrCorrupt
// if a record is malformed or the records do not exactly fill the data.
func (it *RecordIter) Next(r *Record) error {
	if it.i >= it.n {
		if it.pos != len(it.data) {
			return corruptf("batch at offset %d: %d bytes left after its %d records", it.baseOffset, len(it.data)-it.pos, it.n)
		}
		return io.EOF
	}
	if err := it.decode(r, it.data[it.pos:]); err != nil {
		idx := it.i
		it.i, it.pos = it.n, len(it.data) // stop: the position is unreliable now
		return fmt.Errorf("batch at offset %d, record %d: %w", it.baseOffset, idx, err)
	}
	it.i++
	return nil
}

// Remaining returns how many records Next has yet to return.
func (it *RecordIter) Remaining() int { return int(it.n - it.i) }

var errShort = errors.New("truncated")

func (it *RecordIter) decode(r *Record, p []byte) error {
	length, n := ReadVarint(p)
	if n == 0 {
		return corruptf("record length: invalid varint")
	}
	if length < 0 || int(length) > len(p)-n {
		return corruptf("record length %d overruns the %d bytes left", length, len(p)-n)
	}
	body := p[n : n+int(length)]
	it.pos += n + int(length)

	// Decoding body with a cursor; every read checks bounds, and the body
	// must be consumed exactly.
	if len(body) < 1 {
		return corruptf("empty record")
	}
	c := cursor{b: body[1:]} // skip record attributes (unused, always 0)
	tsDelta := c.varlong()
	offDelta := c.varint()
	r.Key = c.nullable()
	r.Value = c.nullable()
	nh := c.varint()
	if nh < 0 || int(nh) > len(c.b) { // each header needs at least 2 bytes
		return corruptf("header count %d", nh)
	}
	r.Headers = r.Headers[:0]
	for range nh {
		kl := c.varint()
		k := c.bytes(kl)
		v := c.nullable()
		if c.err != nil {
			break
		}
		r.Headers = append(r.Headers, Header{Key: reuseKey(r.Headers, k), Value: v})
	}
	if c.err != nil {
		return corruptf("record fields: %v", c.err)
	}
	if len(c.b) != 0 {
		return corruptf("%d unread bytes at the end of a record", len(c.b))
	}
	r.Offset = it.baseOffset + int64(offDelta)
	if it.appendTime {
		r.Timestamp = it.maxTS
	} else {
		r.Timestamp = it.baseTS + tsDelta
	}
	return nil
}

// cursor reads record fields; the first failure sticks in err, so a run of
// reads can be checked once.
type cursor struct {
	b   []byte
	err error
}

func (c *cursor) varint() int32 {
	if c.err != nil {
		return 0
	}
	v, n := ReadVarint(c.b)
	if n == 0 {
		c.err = errShort
		return 0
	}
	c.b = c.b[n:]
	return v
}

func (c *cursor) varlong() int64 {
	if c.err != nil {
		return 0
	}
	v, n := ReadVarlong(c.b)
	if n == 0 {
		c.err = errShort
		return 0
	}
	c.b = c.b[n:]
	return v
}

// bytes takes n bytes; n must be >= 0.
func (c *cursor) bytes(n int32) []byte {
	if c.err != nil {
		return nil
	}
	if n < 0 || int(n) > len(c.b) {
		c.err = fmt.Errorf("field length %d with %d bytes left", n, len(c.b))
		return nil
	}
	// Cap the slice: appending to a returned key/value must not clobber the
	// bytes that follow it in the batch.
	v := c.b[:n:n]
	c.b = c.b[n:]
	return v
}

// nullable reads a varint length then that many bytes; -1 is null (nil).
func (c *cursor) nullable() []byte {
	n := c.varint()
	if c.err != nil || n == -1 {
		return nil
	}
	return c.bytes(n)
}

// reuseKey returns k as a string, reusing the key already stored in the
// next slot of hs's backing array when it is equal. A consumer that decodes
// into the same Record every time and whose records carry the same header
// names (the common case) then allocates nothing for header keys. The key
// is a real copy, never aliasing the batch, since strings must not change.
func reuseKey(hs []Header, k []byte) string {
	if i := len(hs); i < cap(hs) {
		if old := hs[:i+1][i].Key; old == string(k) {
			return old
		}
	}
	return string(k)
}
