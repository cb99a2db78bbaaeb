package assign

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	owned := map[string][]int32{"a": {0, 1, 2}, "b": {0}, "gone": {3}}
	assigned := map[string][]int32{"a": {2, 1, 5}, "c": {0}}
	revoked, added := Diff(owned, assigned)
	if want := map[string][]int32{"a": {0}, "b": {0}, "gone": {3}}; !reflect.DeepEqual(revoked, want) {
		t.Errorf("revoked %v, want %v", revoked, want)
	}
	if want := map[string][]int32{"a": {5}, "c": {0}}; !reflect.DeepEqual(added, want) {
		t.Errorf("added %v, want %v", added, want)
	}
	if r, a := Diff(owned, owned); r != nil || a != nil {
		t.Errorf("Diff of equal sets = %v, %v; want nothing", r, a)
	}
}

// The KIP-429 two-step move on the smallest example: a owns all four
// partitions and b joins. Round 1 revokes two from a without giving them
// to b; round 2, with a no longer claiming them, gives them to b.
func TestCooperativeHandOverExample(t *testing.T) {
	ppt := map[string]int32{"t": 4}
	round1 := CooperativeSticky().Assign([]Member{
		{ID: "a", Topics: []string{"t"}, Owned: map[string][]int32{"t": {0, 1, 2, 3}}, Generation: 3},
		{ID: "b", Topics: []string{"t"}, Generation: -1},
	}, ppt)
	if want := (plan{"a": {"t": {0, 1}}, "b": {}}); !reflect.DeepEqual(round1, want) {
		t.Fatalf("round 1: got %v, want %v", round1, want)
	}
	revoked, added := Diff(map[string][]int32{"t": {0, 1, 2, 3}}, round1["a"])
	if !reflect.DeepEqual(revoked, map[string][]int32{"t": {2, 3}}) || added != nil {
		t.Fatalf("a: revoked %v, added %v", revoked, added)
	}
	round2 := CooperativeSticky().Assign([]Member{
		{ID: "a", Topics: []string{"t"}, Owned: round1["a"], Generation: 4},
		{ID: "b", Topics: []string{"t"}, Owned: round1["b"], Generation: 4},
	}, ppt)
	if want := (plan{"a": {"t": {0, 1}}, "b": {"t": {2, 3}}}); !reflect.DeepEqual(round2, want) {
		t.Fatalf("round 2: got %v, want %v", round2, want)
	}
}

// A partition two members claim in the same generation may stay with one
// of them (both were consuming it already), but is not handed to a third
// member while either may still consume it.
func TestCooperativeConflictNotHandedOver(t *testing.T) {
	ppt := map[string]int32{"t": 3}
	got := CooperativeSticky().Assign([]Member{
		{ID: "a", Topics: []string{"t"}, Owned: map[string][]int32{"t": {0}}, Generation: 5},
		{ID: "b", Topics: []string{"t"}, Owned: map[string][]int32{"t": {0, 1}}, Generation: 5},
		{ID: "c", Topics: []string{"t"}, Generation: -1},
	}, ppt)
	if slices.Contains(got["c"]["t"], 0) {
		t.Fatalf("t p0 claimed by a and b was given to c: %v", got)
	}
}

// A member x that dropped topic b still claims b's partitions, so they are
// withheld from y until x has revoked them. Balance then also moves a1 from
// y to x (2-2 beats 1-3), which likewise takes two rounds.
func TestCooperativeUnsubscribedTopic(t *testing.T) {
	ppt := map[string]int32{"a": 2, "b": 2}
	round1 := CooperativeSticky().Assign([]Member{
		{ID: "x", Topics: []string{"a"}, Owned: map[string][]int32{"a": {0}, "b": {0, 1}}, Generation: 2},
		{ID: "y", Topics: []string{"a", "b"}, Owned: map[string][]int32{"a": {1}}, Generation: 2},
	}, ppt)
	if want := (plan{"x": {"a": {0}}, "y": {}}); !reflect.DeepEqual(round1, want) {
		t.Fatalf("round 1: got %v, want %v", round1, want)
	}
	round2 := CooperativeSticky().Assign([]Member{
		{ID: "x", Topics: []string{"a"}, Owned: round1["x"], Generation: 3},
		{ID: "y", Topics: []string{"a", "b"}, Owned: round1["y"], Generation: 3},
	}, ppt)
	if want := (plan{"x": {"a": {0, 1}}, "y": {"b": {0, 1}}}); !reflect.DeepEqual(round2, want) {
		t.Fatalf("round 2: got %v, want %v", round2, want)
	}
}

// Property, over random groups changing between rebalances (members join
// and leave, partitions are added): every cooperative round is safe (no
// partition given to a member while another member claims it), revokes
// only partitions that move in the sticky target (what stays is never
// revoked), and the group converges: with identical subscriptions the
// second round completes every move — all partitions assigned, nothing
// revoked, balanced — and with different subscriptions it settles within a
// few rounds.
func TestCooperativeRounds(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 200 {
		identical := i%2 == 0
		members, ppt := randomTable(r, 10, identical)
		members = uniqueMembers(members)
		gen := int32(1)
		cur := CooperativeSticky().Assign(members, ppt)
		checkValid(t, members, ppt, cur, true) // nothing owned: nothing withheld

		// Change the group: some leave, some join, a topic grows.
		var next []Member
		for _, m := range withOwned(members, cur, gen) {
			if r.IntN(4) > 0 {
				next = append(next, m)
			}
		}
		for j := range r.IntN(4) {
			topics := members[0].Topics
			if !identical {
				topics = randomSubset(r, append(sortedTopics(ppt), members[0].Topics...))
			}
			next = append(next, Member{ID: fmt.Sprintf("new%d", j), Topics: topics, Generation: -1})
		}
		if len(next) == 0 {
			continue
		}
		for _, topic := range sortedTopics(ppt) { // sorted: map order would vary the draws
			if r.IntN(3) == 0 {
				ppt[topic] += int32(r.IntN(5))
			}
		}

		rounds := 0
		for ; rounds < 6; rounds++ {
			got := CooperativeSticky().Assign(next, ppt)
			checkValid(t, next, ppt, got, false)
			checkCooperativeRound(t, next, ppt, got)
			done := true
			for j, m := range next {
				if revoked, _ := Diff(m.Owned, got[m.ID]); revoked != nil {
					done = false
				}
				next[j].Owned, next[j].Generation = got[m.ID], gen+1
			}
			gen++
			if done {
				checkValid(t, next, ppt, got, true)
				checkStickyBalance(t, next, got)
				break
			}
		}
		if identical && rounds > 1 {
			t.Errorf("identical subscriptions took %d rounds to settle, want at most 2", rounds+1)
		}
		if rounds == 6 {
			t.Errorf("did not settle in 6 rounds")
		}
		if t.Failed() {
			t.Fatalf("iteration %d: members %+v, partitions %v", i, next, ppt)
		}
	}
}

// checkCooperativeRound checks one cooperative plan against the members'
// claims and the eager sticky target computed from the same input.
func checkCooperativeRound(t *testing.T, members []Member, ppt map[string]int32, got plan) {
	t.Helper()
	claimants := map[tp][]string{}
	for _, m := range members {
		for topic, ps := range m.Owned {
			for _, p := range ps {
				claimants[tp{topic, p}] = append(claimants[tp{topic, p}], m.ID)
			}
		}
	}
	for part, ids := range owners(got) {
		for _, c := range claimants[part] {
			if c != ids[0] && !slices.Contains(claimants[part], ids[0]) {
				t.Errorf("%s given to %s while %s still claims it", part, ids[0], c)
			}
		}
	}
	target := Sticky().Assign(members, ppt)
	for _, m := range members {
		revoked, _ := Diff(m.Owned, got[m.ID])
		moving, _ := Diff(m.Owned, target[m.ID])
		if !reflect.DeepEqual(revoked, moving) {
			t.Errorf("%s revokes %v, but only %v move in the target", m.ID, revoked, moving)
		}
	}
}
