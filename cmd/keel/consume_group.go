// keel consume -G: reading as a member of a consumer group, committing
// what was printed, and knowing when -e is done.

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// groupState follows, for -G -e, which partitions the group gave this
// member and how far each got. The group's callbacks and the polling loop
// both touch it.
type groupState struct {
	mu        sync.Mutex
	track     *endTracker
	assigned  map[keel.TopicPartition]bool
	everGiven bool
	next      map[keel.TopicPartition]int64 // where a newly given partition starts
	// -e: settle looks where the group stands with a direct consumer
	// and the group's committed offsets.
	probe    *keel.Consumer
	adm      *admin.Admin
	group    string
	consumer bool // the group runs the consumer protocol (KIP-848)
}

func (s *groupState) onAssigned(tps []keel.TopicPartition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.everGiven = true
	for _, tp := range tps {
		s.assigned[tp] = true
		if n, ok := s.next[tp]; ok {
			s.track.at(tp, n)
		}
	}
}

func (s *groupState) onGone(tps []keel.TopicPartition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tp := range tps {
		delete(s.assigned, tp)
	}
}

func (s *groupState) printed(m *keel.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}
	s.next[tp] = m.Offset + 1
	s.track.at(tp, m.Offset+1)
}

func (s *groupState) past(m *keel.Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.track.past(m)
}

// holdsNothing says the group gave this member no partition, or took
// back all it gave.
func (s *groupState) holdsNothing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.assigned) == 0
}

// gaveNothing asks the coordinator whether the group is stable with this
// member (found by its client id) holding no partition: a group with
// more members than partitions leaves some idle, and no callback says so
// (an empty assignment calls none). With -e such a member is done: it
// holds nothing that has not reached its end.
func (s *groupState) gaveNothing(ctx context.Context, clientID string) bool {
	if s.consumer {
		return s.gaveNothingConsumer(ctx, clientID)
	}
	ds, err := s.adm.DescribeGroups(ctx, s.group)
	if err != nil || len(ds) != 1 || ds[0].State != "Stable" {
		return false
	}
	for _, m := range ds[0].Members {
		if m.ClientID == clientID {
			return len(m.Assigned) == 0 && s.holdsNothing()
		}
	}
	return false // not joined yet
}

// allDone: the group gave this member partitions and all it holds now
// reached their ends.
func (s *groupState) allDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.everGiven || len(s.assigned) == 0 {
		return false
	}
	for tp := range s.assigned {
		if !s.track.done[tp] {
			return false
		}
	}
	return true
}

// settle runs when the group brought nothing for a poll: it finds the
// partitions this member holds that are at their end although no printed
// record got there. Two ways that happens: another member read the
// partition to its end and committed that before handing it over (this
// member's view of the commits dates from its start); or the end lies
// past the last record because the group never returns control records,
// and a transactional producer ends every transaction with one (the
// commit marker). A direct consumer from where the partition stands
// tells: a record before the end means the group has more to bring; a
// position at the end means nothing but control records was left.
func (s *groupState) settle(ctx context.Context) {
	s.mu.Lock()
	stuck := make(map[keel.TopicPartition]int64)
	for tp := range s.assigned {
		if n, ok := s.next[tp]; ok && !s.track.done[tp] {
			stuck[tp] = n
		}
	}
	s.mu.Unlock()
	if len(stuck) == 0 {
		return
	}
	if committed, err := s.adm.GroupOffsets(ctx, s.group); err == nil {
		for tp, n := range stuck {
			if c, ok := committed[tp]; ok && c > n {
				stuck[tp] = c // the group starts a partition given to it there
			}
		}
	}
	tps := make([]keel.TopicPartition, 0, len(stuck))
	for tp, n := range stuck {
		s.probe.Assign(tp, keel.AtOffset(n))
		tps = append(tps, tp)
	}
	defer s.probe.Unassign(tps...)
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for len(stuck) > 0 && pctx.Err() == nil {
		msgs, _ := poll(pctx, true, s.probe.Poll)
		for _, m := range msgs {
			tp := keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}
			if m.Offset < s.track.ends[tp] {
				delete(stuck, tp)
			}
		}
		for tp := range stuck {
			if pos, ok := s.probe.Position(tp); ok && pos >= s.track.ends[tp] {
				s.mu.Lock()
				s.track.at(tp, pos)
				s.mu.Unlock()
				delete(stuck, tp)
			}
		}
	}
}

// consumeGroup reads as a member of o.group, marking each record after it
// was written to stdout and committing on the way out.
func consumeGroup(ctx context.Context, client *keel.Client, adm *admin.Admin, md *keel.Metadata, o consumeOpts, pr *printer) error {
	reset, _ := o.offset.reset() // checked with the flags
	state := &groupState{
		track:    newEndTracker(nil),
		assigned: make(map[keel.TopicPartition]bool),
		next:     make(map[keel.TopicPartition]int64),
	}
	if o.exitAtEnd {
		// Where each partition will start: its committed offset, else
		// the reset policy's end of the log. With the end offsets this
		// tells a partition with nothing left from one still to read.
		starts, err := adm.StartOffsets(ctx, o.topics...)
		if err != nil {
			return fmt.Errorf("reading the topics' start offsets: %w", err)
		}
		ends, err := adm.EndOffsets(ctx, o.topics...)
		if err != nil {
			return fmt.Errorf("reading the topics' end offsets: %w", err)
		}
		committed, err := adm.GroupOffsets(ctx, o.group)
		if err != nil && !errors.Is(err, admin.ErrGroupNotFound) {
			return fmt.Errorf("reading group %q's committed offsets: %w", o.group, err)
		}
		state.track = newEndTracker(ends)
		for tp, end := range ends {
			switch c, ok := committed[tp]; {
			case ok && c >= starts[tp] && c <= end:
				state.next[tp] = c
			// A commit outside the log (retention deleted what the
			// group had not read, or the topic was re-created) is out
			// of range: the consumer starts at the reset point.
			case reset == keel.ResetEarliest:
				state.next[tp] = starts[tp]
			default:
				state.next[tp] = end
			}
		}
	}
	if o.exitAtEnd {
		// With the group's reset policy, so that it starts where the
		// group would.
		probe, err := keel.NewConsumer(client, keel.ResetOffset(reset), o.isolation)
		if err != nil {
			return err
		}
		defer probe.Close(context.Background())
		state.probe, state.adm, state.group, state.consumer = probe, adm, o.group, o.consumer
	}
	g, err := keel.NewGroupPoller(client, o.group, o.topics,
		o.protocol,
		keel.ResetOffset(reset),
		o.isolation,
		keel.OnAssigned(state.onAssigned),
		keel.OnRevoked(state.onGone),
		keel.OnLost(state.onGone))
	if err != nil {
		return err
	}
	runErr := consumeGroupLoop(ctx, g, o, pr, state)
	// Commit what was printed, then leave the group (Close commits too;
	// committing first reports a failure here, where it can be acted on).
	cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var problems []error
	if runErr != nil {
		problems = append(problems, runErr)
	}
	if err := g.Commit(cctx); err != nil {
		problems = append(problems, fmt.Errorf("committing the offsets of what was printed: %w", err))
	}
	if err := g.Close(cctx); err != nil {
		problems = append(problems, fmt.Errorf("leaving group %q: %w", o.group, err))
	}
	return errors.Join(problems...)
}

func consumeGroupLoop(ctx context.Context, g *keel.GroupPoller, o consumeOpts, pr *printer, state *groupState) error {
	var done []*keel.Message
	var ends []int64 // where each record of done ends in the output
	// markWritten marks the records that reached stdout whole: all of
	// them after a good flush; after a failed write (the reader closed
	// the pipe) those before the point the output got to, so what the
	// reader got is committed and the rest is read again next time.
	markWritten := func() {
		n := 0
		for n < len(done) && ends[n] <= pr.out.n {
			n++
		}
		g.MarkProcessed(done[:n]...)
	}
	for !pr.full() && !(o.exitAtEnd && state.allDone()) {
		msgs, err := poll(ctx, o.exitAtEnd, g.Poll)
		done, ends = done[:0], ends[:0]
		for _, m := range msgs {
			if o.exitAtEnd && state.past(m) {
				continue // later than the end at start: left for the next run
			}
			if perr := pr.print(m); perr != nil {
				markWritten()
				return perr
			}
			done, ends = append(done, m), append(ends, pr.end())
			state.printed(m)
			if pr.full() {
				break
			}
		}
		if ferr := pr.flush(); ferr != nil {
			markWritten()
			return ferr
		}
		g.MarkProcessed(done...)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if o.exitAtEnd && len(msgs) == 0 {
			if state.holdsNothing() && state.gaveNothing(ctx, o.clientID) {
				return nil
			}
			state.settle(ctx)
		}
	}
	return nil
}
