package assign

import (
	"fmt"
	"testing"
)

// BenchmarkCooperativeSticky measures the leader's work for 100 members and
// 1000 partitions (10 topics x 100): a fresh group, a steady group where
// everyone rejoins owning its share, one member joining a steady group, and
// a group whose members subscribe to different topics (the general path).
func BenchmarkCooperativeSticky(b *testing.B) {
	ppt, topics := uniformTopics(10, 100)
	fresh := makeMembers(100, topics...)
	steady := withOwned(fresh, CooperativeSticky().Assign(fresh, ppt), 1)
	joining := append(steady[:99:99], Member{ID: "new", Topics: topics, Generation: -1})

	mixed := makeMembers(100)
	for i := range mixed {
		for t := range topics {
			if (i+t)%3 != 0 {
				mixed[i].Topics = append(mixed[i].Topics, topics[t])
			}
		}
	}
	mixedSteady := withOwned(mixed, CooperativeSticky().Assign(mixed, ppt), 1)
	mixedJoin := append(mixedSteady[:99:99], Member{ID: "new", Topics: topics[:5], Generation: -1})

	for _, bc := range []struct {
		name    string
		members []Member
	}{
		{"fresh", fresh}, {"steady", steady}, {"join", joining},
		{"mixed-fresh", mixed}, {"mixed-join", mixedJoin},
	} {
		b.Run(fmt.Sprintf("%s/100x1000", bc.name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				CooperativeSticky().Assign(bc.members, ppt)
			}
		})
	}
}

// BenchmarkDecodeAssignmentRepeatedTopic decodes a 660 KB assignment that
// names one topic 60000 times, one partition each: a hostile or buggy
// leader's payload. Merging per entry re-sorted the growing list every
// time (9 s per decode); gathering first and sorting once takes ~15 ms.
func BenchmarkDecodeAssignmentRepeatedTopic(b *testing.B) {
	w := new(wire).i16(0).i32(60000)
	for i := range 60000 {
		w.str("a").i32(1).i32(int32(i))
	}
	w.nullBytes()
	for b.Loop() {
		if _, err := DecodeAssignment(w.b); err != nil {
			b.Fatal(err)
		}
	}
}
