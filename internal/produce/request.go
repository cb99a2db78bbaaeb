package produce

import (
	"encoding/binary"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/record"
)

// produceRequest is a produce request that the connection writes with its
// record batches left in their own buffers or encoded in place
// (conn.Segmented), and that tells the connection whether Kafka answers it
// (conn.Answered).
//
// An uncompressed batch has no buffer of its own (since issue 11): it is
// encoded from its records straight into the connection's write buffer,
// here, each time it is sent (again on a retry: encoding is deterministic,
// so a resend carries the same bytes). Only compressed batches are encoded
// beforehand, since their length must be known to write the request.
type produceRequest struct {
	*kmsg.ProduceRequest
	// batches[i][j] is the batch of Topics[i].Partitions[j] when it is
	// to be encoded here (its Records are nil), else nil.
	batches [][]*batch
	bb      *record.BatchBuilder // the sink's, for encoding in place
}

// inPlace returns the batch of Topics[i].Partitions[j] if it is encoded
// here.
func (r produceRequest) inPlace(i, j int) *batch {
	if i < len(r.batches) && j < len(r.batches[i]) {
		return r.batches[i][j]
	}
	return nil
}

var (
	_ conn.Segmented = produceRequest{}
	_ conn.Answered  = produceRequest{}
)

// ExpectsResponse is false for acks=0: Kafka sends no answer then.
func (r produceRequest) ExpectsResponse() bool { return r.Acks != 0 }

// AppendSegments encodes the request as kmsg's AppendTo does, field for
// field, but hands each partition's record batch to s.Ref instead of
// copying it. Versions outside 3..12 (keel negotiates within them; 13
// addresses topics by id) are encoded by kmsg in one piece.
func (r produceRequest) AppendSegments(s *conn.Segments) {
	v := r.Version
	if v < 3 || v > 12 {
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				if b := r.inPlace(i, j); b != nil {
					r.Topics[i].Partitions[j].Records = r.encodeAlone(b)
				}
			}
		}
		s.Buf = r.AppendTo(s.Buf)
		return
	}
	flex := v >= 9
	// Room for every batch encoded in place, at once: growing the buffer
	// batch by batch copied the request so far each time.
	inPlace := 0
	for _, bs := range r.batches {
		for _, bt := range bs {
			if bt != nil {
				inPlace += bt.size + binary.MaxVarintLen32 + 8
			}
		}
	}
	b := slices.Grow(s.Buf, inPlace+256)
	b = appendNullableString(b, r.TransactionID, flex)
	b = binary.BigEndian.AppendUint16(b, uint16(r.Acks))
	b = binary.BigEndian.AppendUint32(b, uint32(r.TimeoutMillis))
	b = appendArrayLen(b, len(r.Topics), flex)
	for i := range r.Topics {
		t := &r.Topics[i]
		b = appendString(b, t.Topic, flex)
		b = appendArrayLen(b, len(t.Partitions), flex)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			b = binary.BigEndian.AppendUint32(b, uint32(p.Partition))
			if bt := r.inPlace(i, j); bt != nil {
				b = r.appendInPlace(b, bt, flex)
			} else {
				b = appendBytesLen(b, p.Records, flex)
				s.Buf = b
				s.Ref(p.Records)
				b = s.Buf
			}
			b = appendTags(b, flex, p.UnknownTags)
		}
		b = appendTags(b, flex, t.UnknownTags)
	}
	s.Buf = appendTags(b, flex, r.UnknownTags)
}

// appendInPlace appends batch bt, encoded from its records, with its
// length prefix. Its size is known in advance (bt.size: the records'
// encoded sizes were summed as they were added), so the prefix is written
// first and the records straight after it.
func (r produceRequest) appendInPlace(b []byte, bt *batch, flex bool) []byte {
	n := bt.size
	start := len(b)
	b = appendLen(b, n, flex)
	b = slices.Grow(b, n+binary.MaxVarintLen32)
	at := len(b)
	r.bb.BeginIn(b)
	bt.appendTo(r.bb)
	enc, err := r.bb.FinishIn(bt.producerState())
	if err == nil && len(enc) == n && cap(enc) > 0 && &enc[:1][0] == &b[:at+1][at] {
		return b[:at+n] // encoded in place, as sized
	}
	// Not in place or not of the size announced: cannot happen while the
	// sizes are summed right, but never send a wrong length.
	b = b[:start]
	if err != nil {
		return appendBytesLen(b, nil, flex)
	}
	b = appendLen(b, len(enc), flex)
	return append(b, enc...)
}

// encodeAlone encodes bt into a buffer of its own (the versions kmsg
// encodes in one piece).
func (r produceRequest) encodeAlone(bt *batch) []byte {
	r.bb.BeginIn(make([]byte, 0, bt.size+binary.MaxVarintLen32))
	bt.appendTo(r.bb)
	enc, _ := r.bb.FinishIn(bt.producerState())
	return enc
}

// appendLen writes the length of a byte array of n bytes (its bytes
// follow).
func appendLen(b []byte, n int, flex bool) []byte {
	if flex {
		return binary.AppendUvarint(b, uint64(n)+1)
	}
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// The encodings of Kafka's protocol primitives that a produce request
// uses; flex selects the compact forms of flexible versions.

func appendString(b []byte, str string, flex bool) []byte {
	if flex {
		b = binary.AppendUvarint(b, uint64(len(str))+1)
	} else {
		b = binary.BigEndian.AppendUint16(b, uint16(len(str)))
	}
	return append(b, str...)
}

func appendNullableString(b []byte, str *string, flex bool) []byte {
	if str != nil {
		return appendString(b, *str, flex)
	}
	if flex {
		return append(b, 0)
	}
	return binary.BigEndian.AppendUint16(b, 0xffff) // -1
}

func appendArrayLen(b []byte, n int, flex bool) []byte {
	if flex {
		return binary.AppendUvarint(b, uint64(n)+1)
	}
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// appendBytesLen writes the length of a nullable byte array (its bytes
// follow).
func appendBytesLen(b []byte, p []byte, flex bool) []byte {
	switch {
	case p == nil && flex:
		return append(b, 0)
	case p == nil:
		return binary.BigEndian.AppendUint32(b, 0xffffffff) // -1
	case flex:
		return binary.AppendUvarint(b, uint64(len(p))+1)
	}
	return binary.BigEndian.AppendUint32(b, uint32(len(p)))
}

// appendTags writes a flexible version's tagged fields: the ones kmsg
// kept as unknown (keel sets none).
func appendTags(b []byte, flex bool, tags kmsg.Tags) []byte {
	if !flex {
		return b
	}
	b = binary.AppendUvarint(b, uint64(tags.Len()))
	return tags.AppendEach(b)
}
