package record

// Record is one Kafka record. The producer fills Key, Value, Headers and
// Timestamp for BatchBuilder.Append; decoding (RecordIter, AppendRecords)
// fills every field.
//
// A nil Key, Value or Header.Value is written as Kafka's null (length -1);
// a non-nil empty slice is a zero-length value. Decoding preserves the
// distinction.
type Record struct {
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp int64 // milliseconds since the Unix epoch
	// Offset is the record's absolute offset in its partition. Decoding sets
	// it; the builder ignores it (offsets are the broker's to assign).
	Offset int64
}

// Header is a record header. Kafka header keys are non-null strings; values
// may be null (nil).
type Header struct {
	Key   string
	Value []byte
}

// nullableLen is the encoded size of a varint-length-prefixed byte field
// where nil is written as length -1 (a single byte).
func nullableLen(b []byte) int {
	if b == nil {
		return 1
	}
	return VarintLen(int32(len(b))) + len(b)
}

func appendNullable(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 1) // zigzag(-1)
	}
	dst = AppendVarint(dst, int32(len(b)))
	return append(dst, b...)
}

// recordBodyLen is the size of a record after its leading length varint.
func recordBodyLen(r *Record, tsDelta int64, offsetDelta int32) int {
	n := 1 + // attributes, always 0: no record-level attribute is defined
		VarlongLen(tsDelta) +
		VarintLen(offsetDelta) +
		nullableLen(r.Key) +
		nullableLen(r.Value) +
		VarintLen(int32(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		n += VarintLen(int32(len(h.Key))) + len(h.Key) + nullableLen(h.Value)
	}
	return n
}

// EncodedRecordLen returns the bytes r takes inside a batch, length prefix
// included, when written with the given timestamp and offset deltas.
func EncodedRecordLen(r *Record, tsDelta int64, offsetDelta int32) int {
	body := recordBodyLen(r, tsDelta, offsetDelta)
	return VarintLen(int32(body)) + body
}

// appendRecord writes one record; body must be recordBodyLen's result for
// the same arguments (computed once by the caller, which also needs it).
func appendRecord(dst []byte, r *Record, tsDelta int64, offsetDelta int32, body int) []byte {
	dst = AppendVarint(dst, int32(body))
	dst = append(dst, 0)
	dst = AppendVarlong(dst, tsDelta)
	dst = AppendVarint(dst, offsetDelta)
	dst = appendNullable(dst, r.Key)
	dst = appendNullable(dst, r.Value)
	dst = AppendVarint(dst, int32(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		dst = AppendVarint(dst, int32(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendNullable(dst, h.Value)
	}
	return dst
}
