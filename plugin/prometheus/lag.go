package prometheus

import (
	"strconv"
	"sync"

	"github.com/keel-go/keel"
)

// lagState keeps each partition's lag so that, without PartitionLabels,
// a topic's gauge is the sum over its partitions, and so that lag is
// known from the fetch, handler and commit hooks alone (Run mode) before
// or without the library's sampled LagHook. Whichever reports last sets
// the value; both compute the same differences.
type lagState struct {
	mu  sync.Mutex
	hwm map[keel.TopicPartition]int64
	// per group: next offset to process and committed offset
	pos       map[string]map[keel.TopicPartition]int64
	committed map[string]map[keel.TopicPartition]int64
	// last published values, per group and partition
	lag, clag map[string]map[keel.TopicPartition]int64
}

func (s *lagState) init() {
	s.hwm = map[keel.TopicPartition]int64{}
	s.pos = map[string]map[keel.TopicPartition]int64{}
	s.committed = map[string]map[keel.TopicPartition]int64{}
	s.lag = map[string]map[keel.TopicPartition]int64{}
	s.clag = map[string]map[keel.TopicPartition]int64{}
}

func sub(m map[string]map[keel.TopicPartition]int64, g string) map[keel.TopicPartition]int64 {
	x := m[g]
	if x == nil {
		x = map[keel.TopicPartition]int64{}
		m[g] = x
	}
	return x
}

func diff(end, at int64) int64 {
	if end < 0 || at < 0 {
		return -1
	}
	return max(end-at, 0)
}

// publishLocked sets the gauges of group's partition tp (or its topic's
// sum) from the values in s; -1 (unknown) removes the partition.
func (m *Metrics) publishLocked(group string, tp keel.TopicPartition, lag, clag int64) {
	s := &m.lagState
	set := func(vals map[string]map[keel.TopicPartition]int64, g *gaugeSetter, v int64) {
		pv := sub(vals, group)
		if v < 0 {
			delete(pv, tp)
		} else {
			pv[tp] = v
		}
		if m.partitions {
			if v < 0 {
				g.delete(group, tp.Topic, strconv.Itoa(int(tp.Partition)))
				return
			}
			g.set(float64(v), group, tp.Topic, strconv.Itoa(int(tp.Partition)))
			return
		}
		var sum int64
		n := 0
		for p, x := range pv {
			if p.Topic == tp.Topic {
				sum += x
				n++
			}
		}
		if n == 0 {
			g.delete(group, tp.Topic)
			return
		}
		g.set(float64(sum), group, tp.Topic)
	}
	set(s.lag, &gaugeSetter{m.lag}, lag)
	set(s.clag, &gaugeSetter{m.committedLag}, clag)
}

// recomputeLocked derives group's lag on tp from the hooks' values.
func (m *Metrics) recomputeLocked(group string, tp keel.TopicPartition) {
	s := &m.lagState
	end, ok := s.hwm[tp]
	if !ok {
		return
	}
	lag, clag := int64(-1), int64(-1)
	if p, ok := s.pos[group][tp]; ok {
		lag = diff(end, p)
	}
	if c, ok := s.committed[group][tp]; ok {
		clag = diff(end, c)
	}
	if lag < 0 && clag < 0 {
		return
	}
	if lag < 0 {
		lag = s.lag[group][tp]
		if _, ok := s.lag[group][tp]; !ok {
			lag = -1
		}
	}
	if clag < 0 {
		clag = s.clag[group][tp]
		if _, ok := s.clag[group][tp]; !ok {
			clag = -1
		}
	}
	m.publishLocked(group, tp, lag, clag)
}

// forgetLocked drops a partition the group gave up.
func (m *Metrics) forgetLocked(group string, tp keel.TopicPartition) {
	s := &m.lagState
	delete(s.pos[group], tp)
	delete(s.committed[group], tp)
	m.publishLocked(group, tp, -1, -1)
}
