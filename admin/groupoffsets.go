package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/errs"
)

// OffsetTarget says where ResetOffsetsPlan moves a group's partitions,
// like the --to-* and --shift-by options of kafka-consumer-groups.sh.
type OffsetTarget struct {
	kind  targetKind
	n     int64
	at    time.Time
	label string
}

type targetKind int8

const (
	targetEarliest targetKind = iota
	targetLatest
	targetOffset
	targetTime
	targetShift
)

// ToEarliest moves each partition to its log start offset.
func ToEarliest() OffsetTarget { return OffsetTarget{kind: targetEarliest, label: "earliest"} }

// ToLatest moves each partition to its end: the group skips everything
// not yet read.
func ToLatest() OffsetTarget { return OffsetTarget{kind: targetLatest, label: "latest"} }

// ToOffset moves each partition to offset n, clamped to the log (Kafka's
// tool does the same): below the log start it is the log start, past the
// end the end.
func ToOffset(n int64) OffsetTarget {
	return OffsetTarget{kind: targetOffset, n: n, label: fmt.Sprintf("offset %d", n)}
}

// ToTime moves each partition to its first record at or after t (the end
// when there is none).
func ToTime(t time.Time) OffsetTarget {
	return OffsetTarget{kind: targetTime, at: t, label: t.UTC().Format(time.RFC3339Nano)}
}

// ShiftBy moves each partition n offsets from its committed offset
// (negative: back), clamped to the log. A partition without a committed
// offset cannot be shifted: the plan fails naming it.
func ShiftBy(n int64) OffsetTarget {
	return OffsetTarget{kind: targetShift, n: n, label: fmt.Sprintf("shift by %+d", n)}
}

func (t OffsetTarget) String() string { return t.label }

// ResetScope is which partitions of a group a reset covers.
type ResetScope struct {
	// Topics maps a topic to its partitions; an empty list means every
	// partition of the topic.
	Topics map[string][]int32
	// AllTopics covers every topic the group has committed offsets on.
	AllTopics bool
}

// OffsetChange is one partition of a reset plan.
type OffsetChange struct {
	Topic     string
	Partition int32
	Current   int64 // the committed offset; -1 when there is none
	New       int64 // where the reset puts it
	// Start and End are the partition's log start and end offsets when
	// the plan was made.
	Start, End int64
}

// ResetOffsetsPlan works out, without changing anything, where a reset
// of group's offsets to target would put each partition of scope: the
// current committed offset and the new one, clamped to the log. Apply it
// with AlterGroupOffsets. Rows are sorted by topic and partition.
func (a *Admin) ResetOffsetsPlan(ctx context.Context, group string, scope ResetScope, target OffsetTarget) ([]OffsetChange, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.ResetOffsetsPlan")
	}
	if group == "" {
		return nil, errors.New("admin: ResetOffsetsPlan needs a group name")
	}
	if scope.AllTopics == (len(scope.Topics) > 0) {
		return nil, errors.New("admin: ResetOffsetsPlan needs either topics or AllTopics, not both or neither")
	}
	committed, err := a.GroupOffsets(ctx, group)
	if err != nil && !errors.Is(err, ErrGroupNotFound) {
		return nil, err
	}
	tps, err := a.scopePartitions(ctx, group, scope, committed)
	if err != nil {
		return nil, err
	}
	if len(tps) == 0 {
		return nil, nil
	}
	topics := make([]string, 0, len(tps))
	for _, tp := range tps {
		topics = append(topics, tp.Topic)
	}
	topics = dedupe(topics)
	starts, err := a.StartOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	ends, err := a.EndOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	var atTime map[keel.TopicPartition]ListedOffset
	if target.kind == targetTime {
		if atTime, err = a.ListOffsets(ctx, AtTime(target.at), topics...); err != nil {
			return nil, err
		}
	}
	out := make([]OffsetChange, 0, len(tps))
	var noCommit []string
	for _, tp := range tps {
		c := OffsetChange{Topic: tp.Topic, Partition: tp.Partition, Current: -1, Start: starts[tp], End: ends[tp]}
		if off, ok := committed[tp]; ok {
			c.Current = off
		}
		switch target.kind {
		case targetEarliest:
			c.New = c.Start
		case targetLatest:
			c.New = c.End
		case targetOffset:
			c.New = target.n
		case targetTime:
			c.New = atTime[tp].Offset
			if c.New < 0 {
				c.New = c.End // no record at or after the time
			}
		case targetShift:
			if c.Current < 0 {
				noCommit = append(noCommit, fmt.Sprintf("%s[%d]", tp.Topic, tp.Partition))
				continue
			}
			c.New = c.Current + target.n
		}
		c.New = min(max(c.New, c.Start), c.End)
		out = append(out, c)
	}
	if len(noCommit) > 0 {
		return nil, fmt.Errorf("admin: cannot shift the offsets of group %q on %v: it has no committed offset there to shift from; reset those with another target", group, noCommit)
	}
	return out, nil
}

// scopePartitions lists the partitions a reset covers, sorted.
func (a *Admin) scopePartitions(ctx context.Context, group string, scope ResetScope, committed map[keel.TopicPartition]int64) ([]keel.TopicPartition, error) {
	var tps []keel.TopicPartition
	if scope.AllTopics {
		tps = slices.Collect(maps.Keys(committed))
		// A topic deleted since the group committed on it has no
		// offsets to reset to.
		existing, err := a.ListTopics(ctx)
		if err != nil {
			return nil, err
		}
		live := make(map[string]bool, len(existing))
		for _, t := range existing {
			live[t.Name] = true
		}
		tps = slices.DeleteFunc(tps, func(tp keel.TopicPartition) bool { return !live[tp.Topic] })
	} else {
		names := slices.Sorted(maps.Keys(scope.Topics))
		for _, n := range names {
			if err := keel.ValidateTopicName(n); err != nil {
				return nil, fmt.Errorf("admin: %w", err)
			}
		}
		if err := a.requireTopics(ctx, names); err != nil {
			return nil, err
		}
		for _, n := range names {
			t, err := a.refreshedTopic(ctx, n)
			if err != nil {
				return nil, err
			}
			ps := scope.Topics[n]
			if len(ps) == 0 {
				for _, p := range t.Partitions {
					ps = append(ps, p.ID)
				}
			}
			for _, p := range dedupeInt32(ps) {
				if p < 0 || int(p) >= len(t.Partitions) {
					e := codeErr(errs.CodeUnknownTopicOrPartition, "", nil, fmt.Sprintf("topic %q has %d partitions (0 to %d): partition %d does not exist", n, len(t.Partitions), len(t.Partitions)-1, p))
					e.Err = errs.ErrUnknownTopic
					return nil, e
				}
				tps = append(tps, keel.TopicPartition{Topic: n, Partition: p})
			}
		}
	}
	slices.SortFunc(tps, compareTP)
	return tps, nil
}

func dedupeInt32(ps []int32) []int32 {
	out := slices.Clone(ps)
	slices.Sort(out)
	return slices.Compact(out)
}

// AlterGroupOffsets commits offsets for group as an admin (a commit
// outside any generation, as kafka-consumer-groups.sh --reset-offsets
// --execute does). Kafka accepts that only while the group has no active
// members: a group with members gives an error matching ErrGroupNotEmpty
// that names its state and members, before anything is sent, and so does
// one that gained a member between that check and the commit. A group that
// does not exist yet is created with these offsets.
func (a *Admin) AlterGroupOffsets(ctx context.Context, group string, offsets map[keel.TopicPartition]int64) error {
	if ctx == nil {
		return errs.NilContext("admin.Admin.AlterGroupOffsets")
	}
	if group == "" {
		return errors.New("admin: AlterGroupOffsets needs a group name")
	}
	if len(offsets) == 0 {
		return errors.New("admin: AlterGroupOffsets needs at least one partition")
	}
	for tp, off := range offsets {
		if err := keel.ValidateTopicName(tp.Topic); err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		if off < 0 {
			return fmt.Errorf("admin: AlterGroupOffsets %s[%d] to %d: offsets are 0 or more", tp.Topic, tp.Partition, off)
		}
	}
	if err := a.requireInactive(ctx, group, "its offsets can be changed"); err != nil {
		return err
	}
	results := a.perCoordinator(ctx, []string{group}, func(ctx context.Context, addr string, _ []string) (map[string]error, error) {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group = group
		req.Generation = -1 // an admin commit: no generation, no member
		byTopic := make(map[string]int)
		for _, tp := range slices.SortedFunc(maps.Keys(offsets), compareTP) {
			i, ok := byTopic[tp.Topic]
			if !ok {
				i = len(req.Topics)
				byTopic[tp.Topic] = i
				rt := kmsg.NewOffsetCommitRequestTopic()
				rt.Topic = tp.Topic
				req.Topics = append(req.Topics, rt)
			}
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = tp.Partition, offsets[tp], -1
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		}
		kresp, err := a.send(ctx, addr, req)
		if err != nil {
			return nil, err
		}
		var failures []error
		for _, t := range kresp.(*kmsg.OffsetCommitResponse).Topics {
			for _, p := range t.Partitions {
				switch p.ErrorCode {
				case errs.CodeNone:
				case errs.CodeUnknownMemberId, errs.CodeIllegalGeneration, errs.CodeRebalanceInProgress:
					// A member joined after the check above.
					return map[string]error{group: codeErr(errs.CodeNonEmptyGroup, addr, nil, fmt.Sprintf("group %q became active while its offsets were being changed; stop its consumers and try again", group))}, nil
				case errs.CodeCoordinatorLoadInProgress, errs.CodeCoordinatorNotAvailable, errs.CodeNotCoordinator:
					return map[string]error{group: codeErr(p.ErrorCode, addr, nil, fmt.Sprintf("committing offsets for group %q", group))}, nil
				default:
					failures = append(failures, codeErr(p.ErrorCode, addr, nil, fmt.Sprintf("committing offset %d of %s[%d] for group %q", offsets[keel.TopicPartition{Topic: t.Topic, Partition: p.Partition}], t.Topic, p.Partition, group)))
				}
			}
		}
		return map[string]error{group: errors.Join(failures...)}, nil
	})
	return results[group]
}

// requireInactive fails, with an error matching ErrGroupNotEmpty, when
// group has members; a group that does not exist passes.
func (a *Admin) requireInactive(ctx context.Context, group, what string) error {
	ds, err := a.DescribeGroups(ctx, group)
	if errors.Is(err, ErrGroupNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, d := range ds {
		if len(d.Members) > 0 || (d.State != "Empty" && d.State != "Dead" && d.State != "") {
			return &errs.Error{
				Code: errs.CodeNonEmptyGroup, Name: errs.Lookup(errs.CodeNonEmptyGroup).Name,
				Detail: fmt.Sprintf("group %q is %s with %d active member(s): it must be inactive before %s; stop its consumers (or wait for their sessions to expire) and try again", group, d.State, len(d.Members), what),
			}
		}
	}
	return nil
}

// DeleteGroupOffsets deletes group's committed offsets on partitions
// (Kafka's OffsetDelete, through the group's coordinator); an empty list
// of partitions means every partition of topic. The broker refuses, with
// an error matching ErrGroupSubscribed, while a member of the group is
// subscribed to the topic. A group that does not exist gives
// ErrGroupNotFound.
func (a *Admin) DeleteGroupOffsets(ctx context.Context, group, topic string, partitions ...int32) error {
	if ctx == nil {
		return errs.NilContext("admin.Admin.DeleteGroupOffsets")
	}
	if group == "" {
		return errors.New("admin: DeleteGroupOffsets needs a group name")
	}
	tps, err := a.scopePartitions(ctx, group, ResetScope{Topics: map[string][]int32{topic: partitions}}, nil)
	if err != nil {
		return err
	}
	results := a.perCoordinator(ctx, []string{group}, func(ctx context.Context, addr string, _ []string) (map[string]error, error) {
		req := kmsg.NewPtrOffsetDeleteRequest()
		req.Group = group
		rt := kmsg.NewOffsetDeleteRequestTopic()
		rt.Topic = topic
		for _, tp := range tps {
			rp := kmsg.NewOffsetDeleteRequestTopicPartition()
			rp.Partition = tp.Partition
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		kresp, err := a.send(ctx, addr, req)
		if err != nil {
			return nil, err
		}
		resp := kresp.(*kmsg.OffsetDeleteResponse)
		switch resp.ErrorCode {
		case errs.CodeNone:
		case errs.CodeGroupIdNotFound:
			return map[string]error{group: groupNotFound(group, addr)}, nil
		default:
			return map[string]error{group: codeErr(resp.ErrorCode, addr, nil, fmt.Sprintf("deleting the offsets of group %q on topic %q", group, topic))}, nil
		}
		var failures []error
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				switch p.ErrorCode {
				case errs.CodeNone:
				case errs.CodeGroupSubscribedToTopic:
					return map[string]error{group: codeErr(p.ErrorCode, addr, nil, fmt.Sprintf("cannot delete the offsets of group %q on topic %q: a member of the group is subscribed to it; stop its consumers first", group, topic))}, nil
				default:
					failures = append(failures, codeErr(p.ErrorCode, addr, nil, fmt.Sprintf("deleting the offset of group %q on %s[%d]", group, t.Topic, p.Partition)))
				}
			}
		}
		return map[string]error{group: errors.Join(failures...)}, nil
	})
	return results[group]
}
