package assign

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// makeMembers builds n members m0..m{n-1} subscribing to topics.
func makeMembers(n int, topics ...string) []Member {
	out := make([]Member, n)
	for i := range out {
		out[i] = Member{ID: fmt.Sprintf("m%03d", i), Topics: topics, Generation: -1}
	}
	return out
}

func uniformTopics(ntopics int, parts int32) (map[string]int32, []string) {
	ppt := map[string]int32{}
	var names []string
	for i := range ntopics {
		name := fmt.Sprintf("t%d", i)
		ppt[name] = parts
		names = append(names, name)
	}
	return ppt, names
}

// Property: on random groups (different subscriptions, duplicate ids,
// missing topics, random and conflicting claims, bogus claims on partitions
// and topics that do not exist) the eager sticky assignor assigns every
// partition exactly once to a subscriber, is balanced, and is deterministic.
func TestStickyProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		members, ppt := randomTable(r, 12, i%3 == 0)
		for j := range members {
			members[j].Owned = randomClaims(r, ppt)
			members[j].Generation = int32(r.IntN(3)) - 1
		}
		got := Sticky().Assign(members, ppt)
		checkValid(t, members, ppt, got, true)
		checkStickyBalance(t, uniqueMembers(members), got)
		if !hasDuplicateIDs(members) {
			shuffled := slices.Clone(members)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if again := Sticky().Assign(shuffled, ppt); !reflect.DeepEqual(got, again) {
				t.Fatalf("not deterministic:\n%v\n%v", got, again)
			}
		}
		if t.Failed() {
			t.Fatalf("iteration %d: members %+v, partitions %v: %v", i, members, ppt, got)
		}
	}
}

// randomClaims invents an ownership claim, including partitions beyond the
// topic's count and a topic that does not exist.
func randomClaims(r *rand.Rand, ppt map[string]int32) map[string][]int32 {
	if r.IntN(3) == 0 {
		return nil
	}
	out := map[string][]int32{}
	for _, topic := range append(sortedTopics(ppt), "deleted") {
		for range r.IntN(4) {
			out[topic] = append(out[topic], int32(r.IntN(30)))
		}
	}
	return out
}

// Adding a member to a balanced group moves exactly as many partitions as
// balance requires, for groups of every shape; removing a member moves only
// the partitions it held. Ownership is reported the Java way (user_data)
// or the librdkafka way (owned partitions) in alternate iterations.
func TestStickyMinimalMovement(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 200 {
		ppt, topics := uniformTopics(1+r.IntN(4), int32(r.IntN(20)))
		ppt[topics[0]] = int32(1 + r.IntN(30)) // uneven topics
		n := 0
		for _, c := range ppt {
			n += int(c)
		}
		members := makeMembers(1+r.IntN(12), topics...)
		gen := int32(1)
		cur := Sticky().Assign(members, ppt)
		report := func(ms []Member, p plan) []Member {
			out := withOwned(ms, p, gen)
			if i%2 == 0 { // Java: eager members report ownership only in user_data
				for j := range out {
					out[j].UserData = Sticky().UserData(out[j].Owned, gen)
					out[j].Owned, out[j].Generation = nil, -1
				}
			}
			return out
		}

		// Join: a new member owning nothing.
		joined := append(report(members, cur), Member{ID: "new", Topics: topics, Generation: -1})
		next := Sticky().Assign(joined, ppt)
		checkValid(t, joined, ppt, next, true)
		checkStickyBalance(t, joined, next)
		var counts []int
		for _, m := range joined {
			counts = append(counts, count(cur, m.ID))
		}
		if got, want := moved(cur, next), minMoves(counts, n); got != want {
			t.Fatalf("join: moved %d partitions, minimum is %d\nbefore %v\nafter %v", got, want, cur, next)
		}

		// Leave: a random member goes; only its partitions may move.
		gen++
		if len(members) < 2 {
			continue
		}
		gone := r.IntN(len(joined))
		left := slices.Delete(report(joined, next), gone, gone+1)
		after := Sticky().Assign(left, ppt)
		checkValid(t, left, ppt, after, true)
		checkStickyBalance(t, left, after)
		stayed := owners(after)
		for part, ids := range owners(next) {
			if ids[0] != joined[gone].ID && stayed[part][0] != ids[0] {
				t.Fatalf("leave of %s moved %s from %s to %s", joined[gone].ID, part, ids[0], stayed[part][0])
			}
		}
	}
}

// A fixed example: three members own a 2-2-2 split of six partitions and a
// fourth joins. A 2-2-1-1 split is balanced, so exactly one partition moves:
// the larger quotas go to the first members that can use them.
func TestStickyJoinExample(t *testing.T) {
	ppt := map[string]int32{"t": 6}
	members := []Member{
		{ID: "a", Topics: []string{"t"}, Owned: map[string][]int32{"t": {0, 1}}, Generation: 4},
		{ID: "b", Topics: []string{"t"}, Owned: map[string][]int32{"t": {2, 3}}, Generation: 4},
		{ID: "c", Topics: []string{"t"}, Owned: map[string][]int32{"t": {4, 5}}, Generation: 4},
		{ID: "d", Topics: []string{"t"}, Generation: -1},
	}
	got := Sticky().Assign(members, ppt)
	want := plan{
		"a": {"t": {0, 1}},
		"b": {"t": {2, 3}},
		"c": {"t": {4}},
		"d": {"t": {5}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// Conflicting claims: the highest generation keeps the partition; equal
// highest generations void it for everyone; claims on topics the member
// dropped, on deleted topics or on partitions that do not exist count as
// claims (for cooperative safety) but can never be kept.
func TestStickySettleClaims(t *testing.T) {
	type claim struct {
		owned map[string][]int32
		gen   int32
		topic []string
	}
	for _, tc := range []struct {
		name      string
		claims    []claim
		wantOwner int // previous owner of t p0, -1 for none
		wantBy    []int
	}{
		{"single", []claim{{map[string][]int32{"t": {0}}, 3, []string{"t"}}}, 0, []int{0}},
		{"higher generation wins", []claim{
			{map[string][]int32{"t": {0}}, 3, []string{"t"}},
			{map[string][]int32{"t": {0}}, 5, []string{"t"}},
		}, 1, []int{0, 1}},
		{"higher generation wins, listed first", []claim{
			{map[string][]int32{"t": {0}}, 5, []string{"t"}},
			{map[string][]int32{"t": {0}}, 3, []string{"t"}},
		}, 0, []int{0, 1}},
		{"same generation voids", []claim{
			{map[string][]int32{"t": {0}}, 5, []string{"t"}},
			{map[string][]int32{"t": {0}}, 5, []string{"t"}},
		}, -1, []int{0, 1}},
		{"void then higher generation", []claim{
			{map[string][]int32{"t": {0}}, 5, []string{"t"}},
			{map[string][]int32{"t": {0}}, 5, []string{"t"}},
			{map[string][]int32{"t": {0}}, 6, []string{"t"}},
		}, 2, []int{0, 1, 2}},
		{"higher generation then void at a lower one", []claim{
			{map[string][]int32{"t": {0}}, 6, []string{"t"}},
			{map[string][]int32{"t": {0}}, 5, []string{"t"}},
			{map[string][]int32{"t": {0}}, 5, []string{"t"}},
		}, 0, []int{0, 1, 2}},
		{"unsubscribed claimant cannot keep but still claims", []claim{
			{map[string][]int32{"t": {0}}, 9, []string{"u"}},
			{map[string][]int32{"t": {0}}, 1, []string{"t"}},
		}, 1, []int{0, 1}},
		{"bogus claims ignored", []claim{
			{map[string][]int32{"t": {-1, 7}, "deleted": {0}}, 9, []string{"t"}},
		}, -1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var members []Member
			for i, c := range tc.claims {
				members = append(members, Member{ID: fmt.Sprintf("m%d", i), Topics: c.topic, Owned: c.owned, Generation: c.gen})
			}
			s := newStickyState(members, map[string]int32{"t": 2, "u": 1}, coopClaim)
			p0 := s.base[slices.Index(s.topics, "t")]
			if s.prevOwner[p0] != tc.wantOwner {
				t.Errorf("previous owner %d, want %d", s.prevOwner[p0], tc.wantOwner)
			}
			if !slices.Equal(s.claimedBy[p0], tc.wantBy) {
				t.Errorf("claimed by %v, want %v", s.claimedBy[p0], tc.wantBy)
			}
		})
	}
}

// The eager sticky leader reads a Java member's ownership from user_data
// (Java sends no owned partitions for eager assignors) and a librdkafka
// member's from the owned field, and keeps both.
func TestStickyReadsJavaAndLibrdkafkaOwnership(t *testing.T) {
	ppt := map[string]int32{"t": 4}
	members := []Member{
		{ID: "java", Topics: []string{"t"}, Generation: -1,
			UserData: encodeStickyUserData(map[string][]int32{"t": {2, 3}}, 7)},
		{ID: "rdk", Topics: []string{"t"}, Generation: 7,
			Owned:    map[string][]int32{"t": {0, 1}},
			UserData: encodeStickyUserData(map[string][]int32{"t": {0, 1}}, 7)},
	}
	got := Sticky().Assign(members, ppt)
	want := plan{"java": {"t": {2, 3}}, "rdk": {"t": {0, 1}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// Members with different subscriptions where only a chain evens the load:
// x (only a) holds 1, y (a and b) 2, z (only b) 3. No single move helps
// (x cannot take b; y and z differ by one), but x taking a1 from y while
// y takes b0 from z gives 2-2-2.
func TestStickyChainRebalance(t *testing.T) {
	ppt := map[string]int32{"a": 3, "b": 3}
	members := []Member{
		{ID: "x", Topics: []string{"a"}, Generation: 1, Owned: map[string][]int32{"a": {0}}},
		{ID: "y", Topics: []string{"a", "b"}, Generation: 1, Owned: map[string][]int32{"a": {1, 2}}},
		{ID: "z", Topics: []string{"b"}, Generation: 1, Owned: map[string][]int32{"b": {0, 1, 2}}},
	}
	got := Sticky().Assign(members, ppt)
	want := plan{
		"x": {"a": {0, 1}},
		"y": {"a": {2}, "b": {0}},
		"z": {"b": {1, 2}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
