package assign

import (
	"math"
	"slices"
	"strings"
)

// stickyState is the working state of the sticky assignors. Partitions are
// numbered densely, topic by topic in sorted topic order, so that a
// partition is an int and "sorted by number" means sorted by (topic,
// partition); members are numbered in member id order. Both keep the result
// independent of map iteration and input order.
type stickyState struct {
	members []Member // unique, sorted by ID

	topics []string // assignable topics: have partitions and a subscriber
	base   []int    // number of topic t's partition 0
	ntopic []int    // topic of each partition
	nparts int

	subs        [][]int // topics each member subscribes to, ascending
	subscribers [][]int // members subscribing to each topic, ascending

	// prevOwner is the member that keeps its claim on each partition
	// after conflicts are settled, or -1.
	prevOwner []int
	// claimedBy lists every member claiming each partition, valid or not
	// (a member may claim a topic it dropped); the cooperative
	// adjustment must not give a partition away while any of them may
	// still be consuming it.
	claimedBy [][]int

	owner    []int   // partition -> member, -1 while unassigned
	assigned [][]int // member -> partitions, unordered
	pos      []int   // index of each partition in assigned[owner]
}

// claimFunc extracts a member's previously owned partitions and their
// generation; the two sticky assignors read them from different places.
type claimFunc func(*Member) (map[string][]int32, int32)

func newStickyState(members []Member, partitionsPerTopic map[string]int32, claim claimFunc) *stickyState {
	s := &stickyState{members: uniqueMembers(members)}
	slices.SortFunc(s.members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })

	wanted := map[string]bool{}
	for i := range s.members {
		for _, t := range s.members[i].Topics {
			if partitionsPerTopic[t] > 0 {
				wanted[t] = true
			}
		}
	}
	s.topics = sortedTopics(wanted)
	topicIdx := make(map[string]int, len(s.topics))
	for t, name := range s.topics {
		topicIdx[name] = t
		s.base = append(s.base, s.nparts)
		s.nparts += int(partitionsPerTopic[name])
	}
	s.ntopic = make([]int, s.nparts)
	for t := range s.topics {
		for p := range int(partitionsPerTopic[s.topics[t]]) {
			s.ntopic[s.base[t]+p] = t
		}
	}

	s.subs = make([][]int, len(s.members))
	s.subscribers = make([][]int, len(s.topics))
	for m := range s.members {
		for _, name := range sortedUnique(s.members[m].Topics) {
			if t, ok := topicIdx[name]; ok {
				s.subs[m] = append(s.subs[m], t)
				s.subscribers[t] = append(s.subscribers[t], m)
			}
		}
	}

	s.owner = make([]int, s.nparts)
	s.pos = make([]int, s.nparts)
	s.prevOwner = make([]int, s.nparts)
	for p := range s.owner {
		s.owner[p], s.prevOwner[p] = -1, -1
	}
	s.assigned = make([][]int, len(s.members))
	s.settleClaims(claim, topicIdx, partitionsPerTopic)
	return s
}

// settleClaims records every member's claims and picks each partition's
// previous owner: the claimant with the highest generation, and nobody when
// several claim it in that same generation — one of them is a zombie and we
// cannot tell which, so neither is trusted (Java and librdkafka agree).
// Claims on partitions that no longer exist, or on topics the member no
// longer subscribes to, cannot be kept.
func (s *stickyState) settleClaims(claim claimFunc, topicIdx map[string]int, partitionsPerTopic map[string]int32) {
	const voided = -2
	bestGen := make([]int64, s.nparts)
	for p := range bestGen {
		bestGen[p] = math.MinInt64
	}
	s.claimedBy = make([][]int, s.nparts)
	for m := range s.members {
		owned, gen := claim(&s.members[m])
		for _, name := range sortedTopics(owned) {
			t, ok := topicIdx[name]
			if !ok {
				continue
			}
			canKeep := slices.Contains(s.subs[m], t)
			for _, p := range sortedPartitions(owned[name]) {
				if p < 0 || p >= partitionsPerTopic[name] {
					continue
				}
				gp := s.base[t] + int(p)
				s.claimedBy[gp] = append(s.claimedBy[gp], m)
				if !canKeep {
					continue
				}
				switch g := int64(gen); {
				case g > bestGen[gp]:
					bestGen[gp], s.prevOwner[gp] = g, m
				case g == bestGen[gp]:
					s.prevOwner[gp] = voided
				}
			}
		}
	}
	for p, o := range s.prevOwner {
		if o == voided {
			s.prevOwner[p] = -1
		}
	}
}

// give assigns unassigned partition p to member m.
func (s *stickyState) give(p, m int) {
	s.owner[p] = m
	s.pos[p] = len(s.assigned[m])
	s.assigned[m] = append(s.assigned[m], p)
}

// take unassigns p from its owner in O(1) by moving the owner's last
// partition into p's slot.
func (s *stickyState) take(p int) {
	m := s.owner[p]
	list := s.assigned[m]
	last := list[len(list)-1]
	list[s.pos[p]] = last
	s.pos[last] = s.pos[p]
	s.assigned[m] = list[:len(list)-1]
	s.owner[p] = -1
}

// plan renders the assignment as member id -> topic -> sorted partitions.
func (s *stickyState) plan() map[string]map[string][]int32 {
	plan := emptyPlan(s.members)
	for m, ps := range s.assigned {
		slices.Sort(ps) // pos is stale from here on; plan is the last step
		out := plan[s.members[m].ID]
		for _, p := range ps {
			t := s.ntopic[p]
			out[s.topics[t]] = append(out[s.topics[t]], int32(p-s.base[t]))
		}
	}
	return plan
}
