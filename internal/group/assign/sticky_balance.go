package assign

import (
	"container/heap"
	"slices"
)

// balance computes the sticky target assignment into s.
func (s *stickyState) balance() {
	if len(s.members) == 0 || s.nparts == 0 {
		return
	}
	if s.identicalSubscriptions() {
		s.balanceIdentical()
		return
	}
	s.balanceGeneral()
}

func (s *stickyState) identicalSubscriptions() bool {
	for m := 1; m < len(s.subs); m++ {
		if !slices.Equal(s.subs[m], s.subs[0]) {
			return false
		}
	}
	return true
}

// balanceIdentical handles the common case where every member can take
// every partition, and is optimal there: with N partitions and M members
// each member ends with N/M or N/M+1 (exactly N%M of them with the extra
// one), and the number of previously owned partitions kept is the largest
// any such assignment can keep. A member keeps min(owned, quota); the N%M
// larger quotas go to members owning more than N/M, where they save a move.
// Unowned partitions then go one at a time to the least loaded member,
// which spreads each topic across members.
func (s *stickyState) balanceIdentical() {
	n, m := s.nparts, len(s.members)
	minQuota, extra := n/m, n%m

	keptBy := make([][]int, m)
	for p, o := range s.prevOwner {
		if o >= 0 {
			keptBy[o] = append(keptBy[o], p) // ascending: trimming keeps the lowest
		}
	}
	for mem, kept := range keptBy {
		quota := minQuota
		if len(kept) > minQuota && extra > 0 {
			quota++
			extra--
		}
		for _, p := range kept[:min(len(kept), quota)] {
			s.give(p, mem)
		}
	}

	// The remaining partitions exactly fill every member to minQuota and
	// the unused extra slots, so always feeding the least loaded member
	// never overshoots: members below minQuota come first by count.
	h := &loadHeap{s: s}
	for mem := range s.members {
		h.members = append(h.members, mem)
	}
	heap.Init(h)
	for p, o := range s.owner {
		if o >= 0 {
			continue
		}
		mem := h.members[0]
		s.give(p, mem)
		heap.Fix(h, 0)
	}
}

// loadHeap orders members by partition count, then member order.
type loadHeap struct {
	s       *stickyState
	members []int
}

func (h *loadHeap) Len() int { return len(h.members) }
func (h *loadHeap) Less(i, j int) bool {
	a, b := h.members[i], h.members[j]
	la, lb := len(h.s.assigned[a]), len(h.s.assigned[b])
	return la < lb || la == lb && a < b
}
func (h *loadHeap) Swap(i, j int) { h.members[i], h.members[j] = h.members[j], h.members[i] }
func (h *loadHeap) Push(x any)    { h.members = append(h.members, x.(int)) }
func (h *loadHeap) Pop() any {
	x := h.members[len(h.members)-1]
	h.members = h.members[:len(h.members)-1]
	return x
}

// balanceGeneral handles members with different subscriptions. Every valid
// previous claim is kept, unowned partitions go to the least loaded member
// that can take them (partitions with the fewest candidates first, so they
// are not crowded out), and then the load is evened out by moving single
// partitions along chains of members (see augment). It stops when no chain
// can even out any pair further, which in particular leaves members with
// identical subscriptions within one partition of each other.
func (s *stickyState) balanceGeneral() {
	for p, o := range s.prevOwner {
		if o >= 0 {
			s.give(p, o)
		}
	}

	var free []int
	for p, o := range s.owner {
		if o < 0 {
			free = append(free, p)
		}
	}
	slices.SortStableFunc(free, func(a, b int) int {
		return len(s.subscribers[s.ntopic[a]]) - len(s.subscribers[s.ntopic[b]])
	})
	for _, p := range free {
		best := -1
		for _, mem := range s.subscribers[s.ntopic[p]] {
			if best < 0 || len(s.assigned[mem]) < len(s.assigned[best]) {
				best = mem
			}
		}
		s.give(p, best)
	}

	held := make([][]int, len(s.members)) // member -> topic -> partitions held
	for mem := range s.members {
		held[mem] = make([]int, len(s.topics))
		for _, p := range s.assigned[mem] {
			held[mem][s.ntopic[p]]++
		}
	}
	b := balancer{s: s, held: held,
		via:       make([]int, len(s.members)),
		seen:      make([]int, len(s.members)),
		seenTopic: make([]int, len(s.topics)),
		from:      make([]int, len(s.topics)),
	}
	for {
		order := make([]int, len(s.members))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return len(s.assigned[a]) - len(s.assigned[b]) })
		progress := false
		for _, mem := range order {
			for b.augment(mem) {
				progress = true
			}
		}
		if !progress {
			return
		}
	}
}

// balancer finds and applies load-evening chains for balanceGeneral.
//
// The search runs over members and topics alternately: a member reaches
// the topics it subscribes to, a topic reaches the members holding one of
// its partitions. Visiting each topic once keeps a search linear in
// subscriptions, where member-to-member edges would be quadratic in the
// number of members per topic.
type balancer struct {
	s         *stickyState
	held      [][]int // member -> topic -> partitions held
	via       []int   // member -> topic through which the search reached it
	from      []int   // topic -> member through which the search reached it
	seen      []int   // per member: search epoch; avoids clearing between searches
	seenTopic []int   // per topic: search epoch
	epoch     int
	queue     []int
}

// augment looks, breadth first, for a chain low <- m1 <- ... <- mk where
// each member can take one partition from the next and mk holds at least
// two more partitions than low. Shifting one partition along it raises low
// by one, lowers mk by one and leaves the middle unchanged, so each step
// strictly reduces the spread (the sum of squared loads) and the loop
// terminates. Shortest chains move the fewest partitions.
func (b *balancer) augment(low int) bool {
	s := b.s
	b.epoch++
	b.seen[low] = b.epoch
	b.queue = append(b.queue[:0], low)
	target := len(s.assigned[low]) + 2
	for len(b.queue) > 0 {
		x := b.queue[0]
		b.queue = b.queue[1:]
		for _, t := range s.subs[x] {
			if b.seenTopic[t] == b.epoch {
				continue
			}
			b.seenTopic[t] = b.epoch
			b.from[t] = x
			for _, y := range s.subscribers[t] {
				if b.seen[y] == b.epoch || b.held[y][t] == 0 {
					continue
				}
				b.seen[y] = b.epoch
				b.via[y] = t
				if len(s.assigned[y]) >= target {
					b.shift(y, low)
					return true
				}
				b.queue = append(b.queue, y)
			}
		}
	}
	return false
}

// shift moves one partition along each link of the chain from src back to
// dst.
func (b *balancer) shift(src, dst int) {
	for cur := src; cur != dst; {
		t := b.via[cur]
		to := b.from[t]
		p := b.pick(cur, to, t)
		b.s.take(p)
		b.s.give(p, to)
		b.held[cur][t]--
		b.held[to][t]++
		cur = to
	}
}

// pick chooses which of from's partitions of topic t to hand to to,
// preferring, for stickiness, one to owned before, then one from did not
// own before (so nobody loses a partition it kept), then the lowest
// numbered.
func (b *balancer) pick(from, to, t int) int {
	s := b.s
	best, bestRank := -1, 3
	for _, p := range s.assigned[from] {
		if s.ntopic[p] != t {
			continue
		}
		rank := 2
		switch s.prevOwner[p] {
		case to:
			rank = 0
		case from:
		default:
			rank = 1
		}
		if rank < bestRank || rank == bestRank && p < best {
			best, bestRank = p, rank
		}
	}
	return best
}
