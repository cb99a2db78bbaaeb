package assign

import (
	"encoding/binary"
	"errors"
)

// The eager "sticky" assignor's user_data (Java StickyAssignor
// STICKY_ASSIGNOR_USER_DATA_V1, also what librdkafka sends for both sticky
// assignors):
//
//	previous_assignment: [topic: string, partitions: [int32]]
//	generation:          int32 (absent in V0)
//
// It has no version field: readers try V1 and fall back to V0.

// encodeStickyUserData encodes owned (topics and partitions sorted) and the
// generation it was assigned in.
func encodeStickyUserData(owned map[string][]int32, generation int32) []byte {
	topics := sortedTopics(owned)
	b := binary.BigEndian.AppendUint32(nil, uint32(len(topics)))
	for _, t := range topics {
		b = binary.BigEndian.AppendUint16(b, uint16(len(t)))
		b = append(b, t...)
		ps := sortedPartitions(owned[t])
		b = binary.BigEndian.AppendUint32(b, uint32(len(ps)))
		for _, p := range ps {
			b = binary.BigEndian.AppendUint32(b, uint32(p))
		}
	}
	return binary.BigEndian.AppendUint32(b, uint32(generation))
}

// decodeStickyUserData parses sticky user_data as V1, then V0 (generation
// -1). ok is false when it is empty or neither version parses; Java then
// treats the member as owning nothing, and so do we.
func decodeStickyUserData(b []byte) (owned map[string][]int32, generation int32, ok bool) {
	if len(b) == 0 {
		return nil, -1, false
	}
	r := reader{b: b}
	n := r.arrayLen()
	var all gathered
	for range n {
		topic := r.str()
		np := r.arrayLen()
		ps := make([]int32, 0, np)
		for range np {
			ps = append(ps, r.i32())
		}
		if r.err == nil {
			all = all.add(topic, ps)
		}
	}
	if r.err != nil {
		return nil, -1, false
	}
	owned = all.done()
	generation = -1
	if len(r.b) >= 4 { // V1; trailing bytes beyond it are ignored, as in Java
		generation = r.i32()
	}
	return owned, generation, true
}

// generationFromUserData recovers the generation from a cooperative-sticky
// member's user_data, for subscriptions older than v2 that do not carry it.
// Java sends exactly an int32; librdkafka and franz-go send the sticky V1
// layout, whose generation is at the end (Java misreads that as the array
// length; we do not). Anything else is -1.
func generationFromUserData(b []byte) int32 {
	if len(b) == 4 {
		return int32(binary.BigEndian.Uint32(b))
	}
	if _, gen, ok := decodeStickyUserData(b); ok {
		return gen
	}
	return -1
}

// encodeGenerationUserData is Java's cooperative-sticky user_data: the
// generation alone, so a pre-v2 leader can still rank conflicting claims.
func encodeGenerationUserData(generation int32) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(generation))
}

var errShort = errors.New("sticky user data truncated")

// reader decodes big-endian Kafka primitives, latching the first error so
// callers check once at the end.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		r.err = errShort
		r.b = nil
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) i32() int32 {
	if b := r.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

// arrayLen reads an array length, rejecting negative (null) lengths and
// lengths that cannot fit in what is left, so garbage cannot make us
// allocate gigabytes.
func (r *reader) arrayLen() int {
	n := int(r.i32())
	if r.err == nil && (n < 0 || n > len(r.b)) {
		r.err = errShort
		r.b = nil
	}
	if r.err != nil {
		return 0
	}
	return n
}

func (r *reader) str() string {
	b := r.take(2)
	if b == nil {
		return ""
	}
	return string(r.take(int(int16(binary.BigEndian.Uint16(b)))))
}
