// Package partition chooses the partition each produced record goes to.
//
// Keyed records are placed exactly as the Java producer places them
// (murmur2 of the key bytes, over all of the topic's partitions), so that
// keel and Java producers writing the same keys to the same topic agree on
// where each key lives. Records without a key follow KIP-480's sticky
// partitioning by default.
package partition

import "encoding/binary"

// Murmur2 is the 32-bit MurmurHash2 variant the Java client uses for record
// keys (org.apache.kafka.common.utils.Utils.murmur2), returned unsigned.
// Java's int result is the same 32 bits: int32(Murmur2(b)) equals it.
//
// Only this exact variant keeps keel key-compatible with Java: the seed,
// the little-endian reading of 4-byte blocks and the fall-through tail all
// change the result if altered.
func Murmur2(b []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	// Java mixes in the length as an int; uint32 keeps the same bits for any
	// slice shorter than 2 GiB, which a record key always is.
	h := uint32(seed) ^ uint32(len(b))
	for len(b) >= 4 {
		k := binary.LittleEndian.Uint32(b)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		b = b[4:]
	}
	// The 0-3 trailing bytes, highest first, each case falling into the next
	// as in the C original and Java's switch without breaks.
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// KeyPartition is the partition Java's producer picks for a record with this
// key on a topic with numPartitions partitions:
// (murmur2(key) & 0x7fffffff) % numPartitions.
//
// The sign bit is masked off (Java's Utils.toPositive), not negated as abs
// would: the two differ for every negative hash, so abs would send half of
// all keys to a different partition than Java. numPartitions must be the
// topic's total partition count, not the count of partitions currently
// reachable, or keys would move whenever a leader goes away.
//
// An empty key is a key and is hashed like any other; only a record with no
// key at all is partitioned without hashing. KeyPartition returns Unassigned
// if numPartitions <= 0 rather than dividing by zero.
func KeyPartition(key []byte, numPartitions int32) int32 {
	if numPartitions <= 0 {
		return Unassigned
	}
	return int32((Murmur2(key) & 0x7fffffff) % uint32(numPartitions))
}
