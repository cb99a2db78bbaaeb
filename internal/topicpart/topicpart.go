// Package topicpart holds keel's one name for a partition of a topic. The
// public keel.TopicPartition is an alias of TP, and the fetcher and the
// group member use it too, so a partition crosses the package boundaries
// without conversions.
package topicpart

import (
	"cmp"
	"slices"
	"strconv"
)

// TP names one partition of a topic.
type TP struct {
	Topic     string
	Partition int32
}

// String is "topic/partition", as logs and errors print it.
func (tp TP) String() string { return tp.Topic + "/" + strconv.Itoa(int(tp.Partition)) }

// Compare orders by topic, then partition.
func Compare(a, b TP) int {
	if c := cmp.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// Sort sorts tps by topic, then partition.
func Sort(tps []TP) { slices.SortFunc(tps, Compare) }

// Group lists tps by topic, the shape of Kafka requests (and of the group
// protocol's assignments).
func Group(tps []TP) map[string][]int32 {
	out := make(map[string][]int32)
	for _, tp := range tps {
		out[tp.Topic] = append(out[tp.Topic], tp.Partition)
	}
	return out
}

// Flatten lists the partitions of a by-topic map, sorted.
func Flatten(p map[string][]int32) []TP {
	var out []TP
	for t, ps := range p {
		for _, n := range ps {
			out = append(out, TP{t, n})
		}
	}
	Sort(out)
	return out
}
