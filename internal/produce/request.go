package produce

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
)

// produceRequest is a produce request that the connection writes with its
// record batches left in their own buffers (conn.Segmented), and that
// tells the connection whether Kafka answers it (conn.Answered).
type produceRequest struct{ *kmsg.ProduceRequest }

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
		s.Buf = r.AppendTo(s.Buf)
		return
	}
	flex := v >= 9
	b := appendNullableString(s.Buf, r.TransactionID, flex)
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
			b = appendBytesLen(b, p.Records, flex)
			s.Buf = b
			s.Ref(p.Records)
			b = s.Buf
			b = appendTags(b, flex, p.UnknownTags)
		}
		b = appendTags(b, flex, t.UnknownTags)
	}
	s.Buf = appendTags(b, flex, r.UnknownTags)
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
