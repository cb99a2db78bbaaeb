package assign

import "slices"

// Range returns the "range" assignor: for each topic on its own, the
// partitions are cut into contiguous ranges, one per subscribed member in
// Java's member order, the first members getting one extra when the count
// does not divide evenly. It is Java's RangeAssignor without rack awareness.
func Range() Assignor { return rangeAssignor{} }

type rangeAssignor struct{}

func (rangeAssignor) Name() string                              { return RangeName }
func (rangeAssignor) Protocol() Protocol                        { return Eager }
func (rangeAssignor) UserData(map[string][]int32, int32) []byte { return nil }

func (rangeAssignor) Assign(members []Member, partitionsPerTopic map[string]int32) map[string]map[string][]int32 {
	ms := uniqueMembers(members)
	plan := emptyPlan(ms)

	subscribers := make(map[string][]*Member)
	for i := range ms {
		for _, t := range sortedUnique(ms[i].Topics) {
			subscribers[t] = append(subscribers[t], &ms[i])
		}
	}
	for topic, subs := range subscribers {
		n := partitionsPerTopic[topic]
		if n <= 0 {
			continue
		}
		slices.SortFunc(subs, javaMemberCompare)
		per, extra := n/int32(len(subs)), n%int32(len(subs))
		next := int32(0)
		for i, m := range subs {
			count := per
			if int32(i) < extra {
				count++
			}
			if count == 0 {
				continue
			}
			ps := make([]int32, 0, count)
			for p := next; p < next+count; p++ {
				ps = append(ps, p)
			}
			plan[m.ID][topic] = ps
			next += count
		}
	}
	return plan
}
