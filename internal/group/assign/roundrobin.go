package assign

import "slices"

// RoundRobin returns the "roundrobin" assignor: every partition of every
// subscribed topic, sorted by topic then partition, is dealt to the members
// in Java's member order, skipping members not subscribed to that
// partition's topic. It is Java's RoundRobinAssignor.
func RoundRobin() Assignor { return roundRobinAssignor{} }

type roundRobinAssignor struct{}

func (roundRobinAssignor) Name() string                              { return RoundRobinName }
func (roundRobinAssignor) Protocol() Protocol                        { return Eager }
func (roundRobinAssignor) UserData(map[string][]int32, int32) []byte { return nil }

func (roundRobinAssignor) Assign(members []Member, partitionsPerTopic map[string]int32) map[string]map[string][]int32 {
	ms := uniqueMembers(members)
	plan := emptyPlan(ms)
	slices.SortFunc(ms, func(a, b Member) int { return javaMemberCompare(&a, &b) })

	var topics []string
	for i := range ms {
		topics = append(topics, ms[i].Topics...)
	}
	topics = sortedUnique(topics)
	slices.SortFunc(topics, javaCompare)

	// next is the dealer's position; it persists across topics, which is
	// what interleaves topics between members in Java's output.
	next := 0
	for _, topic := range topics {
		for p := range max(partitionsPerTopic[topic], 0) {
			// Every topic here has a subscriber, so this loop ends.
			for !subscribes(&ms[next], topic) {
				next = (next + 1) % len(ms)
			}
			id := ms[next].ID
			plan[id][topic] = append(plan[id][topic], p)
			next = (next + 1) % len(ms)
		}
	}
	return plan
}
