package assign

import (
	"maps"
	"slices"
	"unicode/utf8"
)

// javaCompare orders strings as Java's String.compareTo does: by UTF-16
// code units. Go compares UTF-8 bytes, which disagrees for characters above
// U+FFFF against U+E000..U+FFFF; range and roundrobin promise Java's exact
// output, so they sort with this.
func javaCompare(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			if ra >= 0x10000 && rb >= 0x10000 {
				return int(ra - rb) // surrogate pairs keep code point order
			}
			return utf16Unit(ra) - utf16Unit(rb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b) // only the sign matters: the shorter prefix sorts first
}

// utf16Unit is the first UTF-16 code unit of r: the high surrogate for
// runes outside the BMP, which is what decides Java's comparison.
func utf16Unit(r rune) int {
	if r < 0x10000 {
		return int(r)
	}
	return 0xD800 + int((r-0x10000)>>10)
}

// javaMemberCompare is Java's AbstractPartitionAssignor.MemberInfo order,
// used by range and roundrobin: static members (with a group.instance.id)
// first, by instance id, so a restarted static member whose member id
// changed keeps its place; then dynamic members by member id.
func javaMemberCompare(a, b *Member) int {
	switch {
	case a.InstanceID != "" && b.InstanceID != "":
		if c := javaCompare(a.InstanceID, b.InstanceID); c != 0 {
			return c
		}
		// The broker never lets two members share an instance id;
		// should it happen, member id keeps the order deterministic.
		return javaCompare(a.ID, b.ID)
	case a.InstanceID != "":
		return -1
	case b.InstanceID != "":
		return 1
	}
	return javaCompare(a.ID, b.ID)
}

// sortedUnique returns a sorted copy of ss without duplicates.
func sortedUnique(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// sortedTopics returns the keys of m in sorted order.
func sortedTopics[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// sortedPartitions returns a sorted copy of ps without duplicates, or nil.
func sortedPartitions(ps []int32) []int32 {
	if len(ps) == 0 {
		return nil
	}
	out := slices.Clone(ps)
	slices.Sort(out)
	return slices.Compact(out)
}
