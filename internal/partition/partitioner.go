package partition

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/keel-go/keel/internal/errs"
)

// Unassigned is the partition number that means "none chosen". A record
// whose explicit partition is Unassigned is left to the partitioner, and
// Manual (or any partitioner declining to choose) returns it.
const Unassigned int32 = -1

// Partitioner chooses the partition of each record a producer sends.
//
// Implementations must be safe for concurrent use: a producer calls them from
// every goroutine that produces.
//
// The producer drives a Partitioner as the Java producer does since KIP-480,
// so that sticky partitioners can move on exactly when a batch fills:
//
//  1. p := Partition(...) for the record (through [Pick], which also applies
//     an explicit partition set on the record and validates the result).
//  2. If the record fits in the batch currently open for p, append it there.
//  3. Otherwise a new batch would have to be created for p. Before creating
//     it, call OnNewBatch(topic, p), then call Partition again for the same
//     record and append it to whatever partition that returns, creating a
//     batch there if needed. Do not call OnNewBatch again for this record.
//
// Step 3 is what lets a sticky partitioner send the record that would have
// opened a new batch on the old partition to a fresh partition instead.
// Records with an explicit partition skip all three steps.
type Partitioner interface {
	// Partition returns the partition in [0, numPartitions) for a record,
	// or Unassigned to decline.
	//
	// hasKey is false for a record without a key (Java's null key); an
	// empty key with hasKey true is a real key and must be hashed, which is
	// why presence is passed separately rather than inferred from key ==
	// nil. numPartitions is the topic's total partition count (> 0).
	// available lists, without duplicates, the partitions that currently have
	// a reachable leader; it may be empty when none is known to. Partition
	// must not retain or modify key or available.
	Partition(topic string, key []byte, hasKey bool, numPartitions int32, available []int32) int32

	// OnNewBatch tells the partitioner that the producer is about to create
	// a new batch on partition prev of topic for a record Partition sent
	// there, and will call Partition again for that record (step 3 above).
	OnNewBatch(topic string, prev int32)
}

// Client-side errors from Pick.
var (
	// ErrNoPartition: the record carried no explicit partition and the
	// partitioner declined to choose one (Manual always declines).
	ErrNoPartition = errs.NewSentinel("keel: record has no partition and the partitioner chose none", false)
	// ErrPartitionOutOfRange: a partition outside [0, numPartitions) was
	// requested or returned, or the topic has no known partitions.
	ErrPartitionOutOfRange = errs.NewSentinel("keel: partition out of range for the topic", false)
)

// Pick returns the partition of one record: explicit when the caller set it
// (anything but Unassigned), otherwise what p chooses. This is the single
// place the producer should ask for a partition, so that explicit partitions
// behave the same under every partitioner, as Java's ProducerRecord.partition
// overrides any configured partitioner.
//
// The error, an *errs.Error wrapping ErrPartitionOutOfRange or
// ErrNoPartition, is retriable only when refreshing metadata can fix it: an
// explicit partition at or beyond numPartitions (the topic may have grown
// and this client not seen it yet; Java likewise waits for metadata up to
// max.block.ms), or a topic whose partition count is not known yet. Pick
// does not allocate unless it fails.
func Pick(p Partitioner, topic string, explicit int32, key []byte, hasKey bool, numPartitions int32, available []int32) (int32, error) {
	if numPartitions <= 0 {
		return Unassigned, &errs.Error{
			Retriable: true,
			Detail:    fmt.Sprintf("topic %q has no known partitions", topic),
			Err:       ErrPartitionOutOfRange,
		}
	}
	if explicit != Unassigned {
		if explicit >= 0 && explicit < numPartitions {
			return explicit, nil
		}
		return Unassigned, &errs.Error{
			Retriable: explicit >= 0,
			Detail:    fmt.Sprintf("record for topic %q asks for partition %d; the topic has %d", topic, explicit, numPartitions),
			Err:       ErrPartitionOutOfRange,
		}
	}
	var got int32
	if f, ok := p.(Func); ok {
		var err error
		if got, err = f.call(topic, key, hasKey, numPartitions, available); err != nil {
			return Unassigned, err
		}
	} else {
		got = p.Partition(topic, key, hasKey, numPartitions, available)
	}
	if got >= 0 && got < numPartitions {
		return got, nil
	}
	if got == Unassigned {
		return Unassigned, &errs.Error{
			Detail: fmt.Sprintf("record for topic %q has no partition and the partitioner chose none", topic),
			Err:    ErrNoPartition,
		}
	}
	// A custom partitioner bug: retrying the same call will not fix it.
	return Unassigned, &errs.Error{
		Detail: fmt.Sprintf("partitioner chose partition %d for topic %q, which has %d", got, topic, numPartitions),
		Err:    ErrPartitionOutOfRange,
	}
}

// Default is the Java producer's default partitioning (KIP-480 flavour):
// a record with a key goes to KeyPartition(key, numPartitions), over all of
// the topic's partitions whether or not their leaders are reachable; a record
// without a key sticks to one partition chosen among the available ones
// until a new batch is needed there (see Sticky).
//
// Hashing over all partitions is deliberate and matches Java: a key must map
// to the same partition on every producer and across leader outages, so the
// record waits for its partition's leader rather than moving.
//
// Like Java, OnNewBatch also moves the sticky partition when a keyed record
// opens a new batch on the partition unkeyed records are sticking to: that
// batch is being closed anyway.
//
// The zero value is ready to use. A Default must not be copied after first
// use.
type Default struct {
	sticky Sticky
}

// Partition implements Partitioner.
func (d *Default) Partition(topic string, key []byte, hasKey bool, numPartitions int32, available []int32) int32 {
	if hasKey {
		return KeyPartition(key, numPartitions)
	}
	return d.sticky.Partition(topic, nil, false, numPartitions, available)
}

// OnNewBatch implements Partitioner.
func (d *Default) OnNewBatch(topic string, prev int32) { d.sticky.OnNewBatch(topic, prev) }

// Sticky sends every record, keyed or not, to one partition per topic until
// a new batch is needed on it, then moves to a different partition picked
// uniformly at random among the available ones (KIP-480). It is Java's
// default behaviour for unkeyed records and what partitioner.ignore.keys=true
// does for all records: larger batches and fewer requests, at the cost of
// key locality.
//
// When no partition is available the pick is among all partitions; when
// only one is, that one is kept even if it is the partition being left.
//
// The zero value is ready to use. A Sticky must not be copied after first
// use.
type Sticky struct {
	// Per topic, one atomic word so that the common case (keep sticking) is
	// a single load. Encoding: 0 = no partition chosen yet; v > 0 = sticking
	// to partition v-1; v < 0 = OnNewBatch retired partition -v-1, choose
	// another. The zero value therefore means "unset", which a plain
	// partition number could not express.
	topics topicTable[atomic.Int32]
}

// Partition implements Partitioner; the key is ignored.
func (s *Sticky) Partition(topic string, _ []byte, _ bool, numPartitions int32, available []int32) int32 {
	if numPartitions <= 0 {
		return Unassigned
	}
	st := s.topics.get(topic)
	for {
		v := st.Load()
		avoid := Unassigned
		if v > 0 && v-1 < numPartitions {
			return v - 1
		}
		if v < 0 {
			avoid = -v - 1
		}
		// Unset, retired, or beyond a partition count that went down in
		// metadata (a stale broker answered): choose. The CAS makes racing
		// goroutines agree on one choice instead of each sticking to its own.
		p := pick(numPartitions, available, avoid)
		if st.CompareAndSwap(v, p+1) {
			return p
		}
	}
}

// OnNewBatch implements Partitioner: if topic is still sticking to prev, the
// next Partition call chooses another partition. If it has already moved
// on (another goroutine's batch triggered the move first), nothing changes,
// so concurrent batch rollovers move the topic once, not once each.
func (s *Sticky) OnNewBatch(topic string, prev int32) {
	if prev < 0 {
		return
	}
	s.topics.get(topic).CompareAndSwap(prev+1, -(prev + 1))
}

// pick chooses uniformly among available (or all numPartitions if none is
// available), avoiding avoid when there is any other choice.
func pick(numPartitions int32, available []int32, avoid int32) int32 {
	switch n := len(available); n {
	case 0:
		if numPartitions == 1 {
			return 0
		}
		p := rand.Int32N(numPartitions)
		if p == avoid {
			// Uniform over the other numPartitions-1 partitions.
			p = (p + 1 + rand.Int32N(numPartitions-1)) % numPartitions
		}
		return p
	case 1:
		return available[0]
	default:
		i := rand.IntN(n)
		if available[i] == avoid {
			i = (i + 1 + rand.IntN(n-1)) % n
		}
		return available[i]
	}
}

// RoundRobin ignores keys and gives each record of a topic the next
// partition in turn, cycling through the available partitions (all
// partitions when none is available), like Java's RoundRobinPartitioner.
//
// Java's RoundRobinPartitioner skips a partition every time a batch rolls
// over, because the producer asks it twice for the same record
// (KAFKA-9965), which can send every record to half the partitions. Here
// OnNewBatch gives the record's turn back, so each record consumes exactly
// one turn and the spread stays even.
//
// The zero value is ready to use. A RoundRobin must not be copied after
// first use.
type RoundRobin struct {
	topics topicTable[atomic.Uint32]
}

// Partition implements Partitioner; the key is ignored.
func (r *RoundRobin) Partition(topic string, _ []byte, _ bool, numPartitions int32, available []int32) int32 {
	if numPartitions <= 0 {
		return Unassigned
	}
	// Unsigned, so wrapping after 2^32 records never yields a negative index.
	turn := r.topics.get(topic).Add(1) - 1
	if len(available) > 0 {
		return available[turn%uint32(len(available))]
	}
	return int32(turn % uint32(numPartitions))
}

// OnNewBatch implements Partitioner: it returns the turn the record took,
// since the producer is about to ask again for the same record.
func (r *RoundRobin) OnNewBatch(topic string, _ int32) {
	r.topics.get(topic).Add(^uint32(0)) // -1
}

// Manual never chooses a partition: every record must carry an explicit
// partition, which Pick applies before consulting the partitioner. A record
// without one fails with ErrNoPartition instead of going somewhere the
// caller did not ask for. Use it when the application owns placement.
type Manual struct{}

// Partition implements Partitioner by declining: it returns Unassigned.
func (Manual) Partition(string, []byte, bool, int32, []int32) int32 { return Unassigned }

// OnNewBatch implements Partitioner; Manual keeps no state.
func (Manual) OnNewBatch(string, int32) {}

// Func adapts a user function to Partitioner. The function gets the
// Partition arguments and must follow the same rules: be safe for
// concurrent use, return a partition in [0, numPartitions) or Unassigned,
// and not keep key or available. OnNewBatch is a no-op, so the function is
// simply called a second time for a record that opens a new batch; a
// function that keeps per-call state (a counter, say) should implement
// Partitioner itself instead.
type Func func(topic string, key []byte, hasKey bool, numPartitions int32, available []int32) int32

// Partition implements Partitioner by calling f.
func (f Func) Partition(topic string, key []byte, hasKey bool, numPartitions int32, available []int32) int32 {
	return f(topic, key, hasKey, numPartitions, available)
}

// OnNewBatch implements Partitioner; it does nothing.
func (Func) OnNewBatch(string, int32) {}

// call runs the user's function, turning a panic into an error for this
// record alone: left alone it would end the process from a producer
// goroutine. Only Func pays for the deferred recover; keel's own
// partitioners do not panic.
func (f Func) call(topic string, key []byte, hasKey bool, n int32, available []int32) (got int32, err error) {
	defer func() {
		if r := recover(); r != nil {
			pe := errs.Recovered("partitioner", r)
			err = &errs.Error{Detail: fmt.Sprintf("the partitioner panicked choosing a partition for topic %q: %v; the record was not sent", topic, r), Err: pe}
		}
	}()
	return f(topic, key, hasKey, n, available), nil
}

// topicTable maps topic names to per-topic state that lives as long as the
// table. Lookups, on every record, are a lock-free load of an immutable map
// and allocate nothing; adding a topic, rare, copies the map under a mutex.
// A sync.Map would do, but boxing the string key into an interface on each
// lookup can allocate.
type topicTable[T any] struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[string]*T]
}

func (t *topicTable[T]) get(topic string) *T {
	if m := t.m.Load(); m != nil {
		if s, ok := (*m)[topic]; ok {
			return s
		}
	}
	return t.add(topic)
}

func (t *topicTable[T]) add(topic string) *T {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	if old != nil {
		if s, ok := (*old)[topic]; ok { // another goroutine added it first
			return s
		}
	}
	var next map[string]*T
	if old != nil {
		next = maps.Clone(*old)
	}
	if next == nil {
		next = make(map[string]*T, 1)
	}
	s := new(T)
	next[topic] = s
	t.m.Store(&next)
	return s
}

// Interface checks.
var (
	_ Partitioner = (*Default)(nil)
	_ Partitioner = (*Sticky)(nil)
	_ Partitioner = (*RoundRobin)(nil)
	_ Partitioner = Manual{}
	_ Partitioner = Func(nil)
)
