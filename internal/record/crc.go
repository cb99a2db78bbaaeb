package record

import "hash/crc32"

// castagnoli is built once: crc32.MakeTable for Castagnoli returns the
// hardware-accelerated (SSE4.2 / ARMv8 CRC) implementation when available.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C returns the CRC-32C (Castagnoli) checksum of b, the checksum record
// batch v2 stores (the legacy magic 0/1 formats used IEEE CRC-32 instead).
func CRC32C(b []byte) uint32 {
	return crc32.Checksum(b, castagnoli)
}

// crc32cCombine returns the CRC-32C of A followed by B from crcA, the
// CRC-32C of A, crcB, that of B, and lenB, B's length, without reading
// either: crcA times x^(8·lenB) modulo the polynomial, plus crcB (zlib's
// crc32_combine). It costs about a microsecond, whatever the lengths.
func crc32cCombine(crcA, crcB uint32, lenB int) uint32 {
	if lenB <= 0 {
		return crcA
	}
	return multModP(xPow2nModP(uint64(lenB), 3), crcA) ^ crcB
}

// castagnoliReversed is the CRC-32C polynomial in the reflected bit order
// hash/crc32 uses: bit 31 is x^0.
const castagnoliReversed = 0x82f63b78

// multModP returns a(x)·b(x) modulo the polynomial (reflected).
func multModP(a, b uint32) uint32 {
	m := uint32(1) << 31
	var p uint32
	for {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				return p
			}
		}
		m >>= 1
		if b&1 != 0 {
			b = b>>1 ^ castagnoliReversed
		} else {
			b >>= 1
		}
	}
}

// xPow2k holds x^(2^k) modulo the polynomial, k = 0..31.
var xPow2k = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = multModP(p, p)
	}
	return t
}()

// xPow2nModP returns x^(n·2^k) modulo the polynomial.
func xPow2nModP(n uint64, k uint) uint32 {
	p := uint32(1) << 31 // x^0
	for ; n != 0; n >>= 1 {
		if n&1 != 0 {
			p = multModP(xPow2k[k&31], p)
		}
		k++
	}
	return p
}
