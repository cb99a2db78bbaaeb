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
