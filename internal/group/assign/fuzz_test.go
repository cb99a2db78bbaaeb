package assign

import (
	"bytes"
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The fuzz targets of this file decode what other group members (any
// client, any version, or a hostile one) put in JoinGroup and SyncGroup.
// Garbage must give an error (or, for sticky user_data, "not ok"), never a
// panic or a loop; what decodes must encode and decode back to the same
// thing, so that a leader never hands out something it misread.
// docs/RELIABILITY.md ("Fuzzing") has the long runs.

func FuzzDecodeSubscription(f *testing.F) {
	for _, s := range subscriptionSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSubscription(b)
		if err != nil {
			return
		}
		again, err := DecodeSubscription(s.AppendTo(nil))
		if err != nil {
			t.Fatalf("re-decoding our encoding of %+v: %v", s, err)
		}
		want := s
		want.Version = clampVersion(s.Version, SubscriptionVersion)
		want.Topics = sortedUnique(s.Topics)
		again.Topics = sortedUnique(again.Topics)
		if want.Version < 1 {
			want.Owned = nil // v0 has no owned partitions
		}
		if want.Version < 2 {
			want.Generation = again.Generation // not on the wire before v2
		}
		if want.Version < 3 {
			want.Rack = ""
		}
		if !sameSubscription(want, again) {
			t.Fatalf("round trip changed the subscription:\nfirst  %+v\nsecond %+v", want, again)
		}
	})
}

func sameSubscription(a, b Subscription) bool {
	return a.Version == b.Version && slices.Equal(a.Topics, b.Topics) && bytes.Equal(a.UserData, b.UserData) &&
		(a.UserData == nil) == (b.UserData == nil) && maps.EqualFunc(a.Owned, b.Owned, slices.Equal) &&
		a.Generation == b.Generation && a.Rack == b.Rack
}

func FuzzDecodeAssignment(f *testing.F) {
	for _, s := range assignmentSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAssignment(b)
		if err != nil {
			return
		}
		for topic, ps := range a.Partitions {
			if len(ps) == 0 || !slices.IsSorted(ps) || len(slices.Compact(slices.Clone(ps))) != len(ps) {
				t.Fatalf("topic %q: partitions %v not sorted, unique and non-empty", topic, ps)
			}
		}
		again, err := DecodeAssignment(a.AppendTo(nil))
		if err != nil {
			t.Fatalf("re-decoding our encoding of %+v: %v", a, err)
		}
		want := a
		want.Version = clampVersion(a.Version, AssignmentVersion)
		if want.Version != again.Version || !maps.EqualFunc(want.Partitions, again.Partitions, slices.Equal) ||
			!bytes.Equal(want.UserData, again.UserData) {
			t.Fatalf("round trip changed the assignment:\nfirst  %+v\nsecond %+v", want, again)
		}
	})
}

// FuzzStickyUserData covers the eager sticky assignor's user_data (Java
// StickyAssignor V0/V1, librdkafka) and the cooperative generation, both of
// which a leader reads from every member.
func FuzzStickyUserData(f *testing.F) {
	for _, s := range stickySeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = generationFromUserData(b)
		owned, gen, ok := decodeStickyUserData(b)
		if !ok {
			if owned != nil || gen != -1 {
				t.Fatalf("not ok but owned %v, generation %d", owned, gen)
			}
			return
		}
		owned2, gen2, ok2 := decodeStickyUserData(encodeStickyUserData(owned, gen))
		if !ok2 || gen2 != gen || !reflect.DeepEqual(owned, owned2) {
			t.Fatalf("round trip: (%v, %d) became (%v, %d, ok %v)", owned, gen, owned2, gen2, ok2)
		}
	})
}

// subscriptionSeeds are subscriptions of every version encoded by us and
// by franz-go's kmsg, including an old Sarama-style v1 without owned
// partitions.
func subscriptionSeeds() [][]byte {
	owned := map[string][]int32{"orders": {0, 3}, "payments": {7}}
	var seeds [][]byte
	for v := int16(0); v <= SubscriptionVersion+1; v++ {
		s := Subscription{Version: v, Topics: []string{"payments", "orders"}, UserData: encodeStickyUserData(owned, 4),
			Owned: owned, Generation: 4, Rack: "rack-a"}
		seeds = append(seeds, s.AppendTo(nil))
		m := kmsg.NewConsumerMemberMetadata()
		m.Version = v
		m.Topics = []string{"a", "b", "a"}
		m.OwnedPartitions = []kmsg.ConsumerMemberMetadataOwnedPartition{{Topic: "a", Partitions: []int32{2, 1, 2}}}
		m.Generation = 9
		seeds = append(seeds, m.AppendTo(nil))
	}
	sarama := new(wire).i16(1).i32(1).str("orders").nullBytes()
	return append(seeds, sarama.b, []byte{0}, nil)
}

func assignmentSeeds() [][]byte {
	var seeds [][]byte
	for v := int16(0); v <= AssignmentVersion+1; v++ {
		a := Assignment{Version: v, Partitions: map[string][]int32{"orders": {2, 0}, "payments": {1}}, UserData: []byte("ud")}
		seeds = append(seeds, a.AppendTo(nil))
		m := kmsg.NewConsumerMemberAssignment()
		m.Version = v
		m.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "t", Partitions: []int32{5, 5, 1}}, {Topic: "t", Partitions: []int32{0}}}
		seeds = append(seeds, m.AppendTo(nil))
	}
	return append(seeds, []byte{0, 0}, nil)
}

func stickySeeds() [][]byte {
	v1 := encodeStickyUserData(map[string][]int32{"orders": {0, 1, 2}, "payments": {4}}, 12)
	v0 := v1[:len(v1)-4]
	return [][]byte{v1, v0, encodeGenerationUserData(3), {}, v1[:9]}
}
