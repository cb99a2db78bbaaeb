package assign

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// tp is a topic partition, for tests that reason about single partitions.
type tp struct {
	topic string
	part  int32
}

func (t tp) String() string { return fmt.Sprintf("%sp%d", t.topic, t.part) }

// owners flattens a plan into partition -> member ids holding it (a slice,
// so double assignment is visible).
func owners(plan map[string]map[string][]int32) map[tp][]string {
	out := map[tp][]string{}
	for id, topics := range plan {
		for t, ps := range topics {
			for _, p := range ps {
				out[tp{t, p}] = append(out[tp{t, p}], id)
			}
		}
	}
	return out
}

// count is the number of partitions a member holds in a plan.
func count(plan map[string]map[string][]int32, id string) int {
	n := 0
	for _, ps := range plan[id] {
		n += len(ps)
	}
	return n
}

// checkValid asserts what every assignor output must satisfy: an entry for
// every member, sorted duplicate-free partition lists, every assigned
// partition exists and goes to exactly one member subscribed to its topic.
// With complete set, it also asserts that every partition of every
// subscribed topic is assigned (eager assignors leave nothing out).
func checkValid(t *testing.T, members []Member, ppt map[string]int32, plan map[string]map[string][]int32, complete bool) {
	t.Helper()
	byID := map[string]*Member{}
	for i := range members {
		if byID[members[i].ID] == nil {
			byID[members[i].ID] = &members[i]
		}
	}
	if len(plan) != len(byID) {
		t.Fatalf("plan has %d members, want %d", len(plan), len(byID))
	}
	for id, topics := range plan {
		m := byID[id]
		if m == nil {
			t.Fatalf("plan has unknown member %q", id)
		}
		for topic, ps := range topics {
			if len(ps) == 0 {
				t.Errorf("member %s has an empty list for %s", id, topic)
			}
			if !slices.IsSorted(ps) || len(slices.Compact(slices.Clone(ps))) != len(ps) {
				t.Errorf("member %s partitions of %s not sorted/unique: %v", id, topic, ps)
			}
			if !subscribes(m, topic) {
				t.Errorf("member %s got %s it does not subscribe to", id, topic)
			}
			for _, p := range ps {
				if p < 0 || p >= ppt[topic] {
					t.Errorf("member %s got nonexistent %s", id, tp{topic, p})
				}
			}
		}
	}
	own := owners(plan)
	for part, ids := range own {
		if len(ids) > 1 {
			t.Errorf("%s assigned to %v", part, ids)
		}
	}
	if !complete {
		return
	}
	for topic, n := range ppt {
		subscribed := false
		for _, m := range byID {
			subscribed = subscribed || subscribes(m, topic)
		}
		for p := range max(n, 0) {
			if subscribed && len(own[tp{topic, p}]) != 1 {
				t.Errorf("%s not assigned", tp{topic, p})
			}
			if !subscribed && len(own[tp{topic, p}]) != 0 {
				t.Errorf("%s of unsubscribed topic assigned", tp{topic, p})
			}
		}
	}
}

// checkStickyBalance asserts the sticky balance guarantee: there is no
// chain low <- m1 <- ... <- high, each member able to take a partition the
// next one holds, with high holding two or more partitions more than low.
// Such a chain could even out the load one step further, so its absence
// means the spread of loads is minimal (the semi-matching optimality
// condition), and in particular members with identical subscriptions are
// within one partition of each other.
func checkStickyBalance(t *testing.T, members []Member, plan map[string]map[string][]int32) {
	t.Helper()
	canTake := func(x, y *Member) bool { // x could take one of y's partitions
		for topic := range plan[y.ID] {
			if subscribes(x, topic) {
				return true
			}
		}
		return false
	}
	for i := range members {
		low := &members[i]
		seen := map[string]bool{low.ID: true}
		queue := []*Member{low}
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			for j := range members {
				y := &members[j]
				if seen[y.ID] || !canTake(x, y) {
					continue
				}
				if count(plan, y.ID) >= count(plan, low.ID)+2 {
					t.Errorf("unbalanced: %s has %d, %s has %d and a chain links them", y.ID, count(plan, y.ID), low.ID, count(plan, low.ID))
					return
				}
				seen[y.ID] = true
				queue = append(queue, y)
			}
		}
	}
}

// randomTable builds a random group: up to maxMembers members subscribing
// to random subsets of up to six topics, some with zero partitions and one
// missing from metadata entirely. With identical set, all members subscribe
// to the same topics.
func randomTable(r *rand.Rand, maxMembers int, identical bool) ([]Member, map[string]int32) {
	ppt := map[string]int32{}
	ntopics := 1 + r.IntN(6)
	var all []string
	for i := range ntopics {
		name := fmt.Sprintf("t%d", i)
		all = append(all, name)
		if r.IntN(8) > 0 { // some topics have no metadata
			ppt[name] = int32(r.IntN(25))
		}
	}
	nm := 1 + r.IntN(maxMembers)
	shared := randomSubset(r, all)
	members := make([]Member, nm)
	for i := range members {
		topics := shared
		if !identical {
			topics = randomSubset(r, all)
		}
		members[i] = Member{ID: fmt.Sprintf("m%02d", r.IntN(100)), Topics: topics, Generation: -1}
		if r.IntN(4) == 0 {
			members[i].InstanceID = fmt.Sprintf("i%d", r.IntN(100))
		}
	}
	return members, ppt
}

func randomSubset(r *rand.Rand, all []string) []string {
	var out []string
	for _, s := range all {
		if r.IntN(2) == 0 {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		out = append(out, all[r.IntN(len(all))])
	}
	return out
}

// withOwned returns members whose Owned and Generation describe plan, as
// members report after syncing it.
func withOwned(members []Member, plan map[string]map[string][]int32, generation int32) []Member {
	out := slices.Clone(members)
	for i := range out {
		out[i].Owned = plan[out[i].ID]
		out[i].Generation = generation
	}
	return out
}

// moved counts partitions owned in before whose owner changed in after.
func moved(before, after map[string]map[string][]int32) int {
	a := owners(after)
	n := 0
	for part, ids := range owners(before) {
		if len(a[part]) != 1 || a[part][0] != ids[0] {
			n++
		}
	}
	return n
}

// minMoves is the fewest partitions that must change owner when members
// with identical subscriptions, owning ownedCounts partitions of total n,
// are rebalanced: each member keeps at most its quota, and the n%m larger
// quotas are best given to the members owning the most.
func minMoves(ownedCounts []int, n int) int {
	m := len(ownedCounts)
	counts := slices.Clone(ownedCounts)
	slices.SortFunc(counts, func(a, b int) int { return b - a })
	kept, owned := 0, 0
	for i, c := range counts {
		quota := n / m
		if i < n%m {
			quota++
		}
		kept += min(c, quota)
		owned += c
	}
	return owned - kept
}
