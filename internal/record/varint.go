package record

// Kafka's record format (KIP-98) stores every length, delta and count inside
// a record as a zigzag-encoded base-128 varint: zigzag maps small negative
// numbers (-1 marks null) to small unsigned ones, so they stay one byte long.
// "Varint" is the 32-bit form (at most 5 bytes), "varlong" the 64-bit one
// (at most 10 bytes), matching the names in Kafka's ByteUtils.

// AppendVarint appends the zigzag varint encoding of v to dst.
func AppendVarint(dst []byte, v int32) []byte {
	u := uint32(v<<1) ^ uint32(v>>31)
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

// AppendVarlong appends the zigzag varlong encoding of v to dst.
func AppendVarlong(dst []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

// VarintLen returns how many bytes AppendVarint uses for v.
func VarintLen(v int32) int {
	u := uint32(v<<1) ^ uint32(v>>31)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// VarlongLen returns how many bytes AppendVarlong uses for v.
func VarlongLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// ReadVarint decodes a zigzag varint from the start of b. It returns the
// value and the number of bytes read; n is 0 when b is truncated or the
// encoding does not fit in 32 bits (more than 5 bytes, or high bits set in
// the fifth), which a correct encoder never produces.
func ReadVarint(b []byte) (v int32, n int) {
	// One-byte fast path: nearly every length and delta in a batch is < 64.
	if len(b) > 0 && b[0] < 0x80 {
		u := uint32(b[0])
		return int32(u>>1) ^ -int32(u&1), 1
	}
	var u uint32
	for i := 0; i < len(b) && i < 5; i++ {
		c := b[i]
		if i == 4 && c > 0x0f {
			return 0, 0
		}
		u |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return int32(u>>1) ^ -int32(u&1), i + 1
		}
	}
	return 0, 0
}

// ReadVarlong decodes a zigzag varlong from the start of b. It returns the
// value and the number of bytes read; n is 0 when b is truncated or the
// encoding does not fit in 64 bits.
func ReadVarlong(b []byte) (v int64, n int) {
	if len(b) > 0 && b[0] < 0x80 {
		u := uint64(b[0])
		return int64(u>>1) ^ -int64(u&1), 1
	}
	var u uint64
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		if i == 9 && c > 0x01 {
			return 0, 0
		}
		u |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1), i + 1
		}
	}
	return 0, 0
}
