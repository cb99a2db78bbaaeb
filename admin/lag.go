package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/keel-go/keel/internal/errs"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
)

// PartitionLag is how far a group is behind on one partition.
type PartitionLag struct {
	Topic     string
	Partition int32
	Committed int64 // the group's committed offset; -1 when it has none
	Start     int64 // the log start offset; -1 when the topic no longer exists
	End       int64 // the high watermark; -1 when the topic no longer exists
	// Lag is End - Committed (never negative). Without a committed offset
	// (NoCommit) it is the whole backlog, End - Start: what the group
	// reads if it starts at the earliest offset. -1 when the end is
	// unknown.
	Lag int64
	// NoCommit: the group has committed no offset for the partition.
	NoCommit bool
	// The member consuming the partition now; empty when no member has it.
	MemberID, ClientID, Host string
}

// GroupOffsets returns the offsets group has committed, asking its
// coordinator. A group that does not exist gives an error matching
// ErrGroupNotFound.
func (a *Admin) GroupOffsets(ctx context.Context, group string) (map[keel.TopicPartition]int64, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.GroupOffsets")
	}
	if group == "" {
		return nil, errors.New("admin: GroupOffsets needs a group name")
	}
	var out map[keel.TopicPartition]int64
	results := a.perCoordinator(ctx, []string{group}, func(ctx context.Context, addr string, _ []string) (map[string]error, error) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = group
		req.Topics = nil // every topic (v2+)
		kresp, err := a.send(ctx, addr, req)
		if err != nil {
			return nil, err
		}
		resp := kresp.(*kmsg.OffsetFetchResponse)
		if resp.ErrorCode != errs.CodeNone {
			return map[string]error{group: a.offsetFetchErr(group, resp.ErrorCode, addr)}, nil
		}
		got := make(map[keel.TopicPartition]int64)
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != errs.CodeNone {
					return map[string]error{group: a.offsetFetchErr(group, p.ErrorCode, addr)}, nil
				}
				if p.Offset >= 0 {
					got[keel.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = p.Offset
				}
			}
		}
		out = got // one group, one successful answer: no other writer
		return map[string]error{group: nil}, nil
	})
	if err := results[group]; err != nil {
		return nil, err
	}
	if len(out) == 0 {
		// The broker answers an unknown group with no offsets rather
		// than an error; tell the two apart.
		if _, err := a.DescribeGroups(ctx, group); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (a *Admin) offsetFetchErr(group string, code int16, addr string) error {
	if code == errs.CodeGroupIdNotFound {
		return groupNotFound(group, addr)
	}
	return codeErr(code, addr, nil, fmt.Sprintf("fetching the committed offsets of group %q", group))
}

// Lag reports, for every partition of every topic group consumes (has
// members assigned to) or has committed offsets on, the committed offset,
// the high watermark, the difference, and the member consuming it now.
// Rows are sorted by topic and partition. A group that does not exist
// gives an error matching ErrGroupNotFound.
func (a *Admin) Lag(ctx context.Context, group string) ([]PartitionLag, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.Lag")
	}
	if group == "" {
		return nil, errors.New("admin: Lag needs a group name")
	}
	descs, err := a.DescribeGroups(ctx, group)
	if err != nil {
		return nil, err
	}
	committed, err := a.GroupOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	owner := make(map[keel.TopicPartition]MemberDescription)
	topicSet := make(map[string]bool)
	for _, d := range descs {
		for _, m := range d.Members {
			for _, tp := range m.Assigned {
				owner[tp] = m
				topicSet[tp.Topic] = true
			}
		}
	}
	for tp := range committed {
		topicSet[tp.Topic] = true
	}
	if len(topicSet) == 0 {
		return nil, nil
	}
	// Offsets may remain for a topic deleted since: list them with an
	// unknown end rather than fail the whole report.
	existing, err := a.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	var live []string
	for _, t := range existing {
		if topicSet[t.Name] {
			live = append(live, t.Name)
		}
	}
	ends := map[keel.TopicPartition]int64{}
	starts := map[keel.TopicPartition]int64{}
	if len(live) > 0 {
		if ends, err = a.EndOffsets(ctx, live...); err != nil {
			return nil, fmt.Errorf("looking up the end offsets for group %q: %w", group, err)
		}
		if starts, err = a.StartOffsets(ctx, live...); err != nil {
			return nil, fmt.Errorf("looking up the start offsets for group %q: %w", group, err)
		}
	}
	rows := make(map[keel.TopicPartition]*PartitionLag)
	row := func(tp keel.TopicPartition) *PartitionLag {
		if r, ok := rows[tp]; ok {
			return r
		}
		r := &PartitionLag{Topic: tp.Topic, Partition: tp.Partition, Committed: -1, Start: -1, End: -1, Lag: -1}
		if m, ok := owner[tp]; ok {
			r.MemberID, r.ClientID, r.Host = m.MemberID, m.ClientID, m.Host
		}
		rows[tp] = r
		return r
	}
	for tp, end := range ends {
		row(tp).End = end
	}
	for tp, start := range starts {
		if r, ok := rows[tp]; ok {
			r.Start = start
		}
	}
	for tp, off := range committed {
		row(tp).Committed = off
	}
	for tp := range owner {
		row(tp)
	}
	out := make([]PartitionLag, 0, len(rows))
	for _, r := range rows {
		r.NoCommit = r.Committed < 0
		switch {
		case r.End < 0:
		case r.Committed >= 0:
			r.Lag = max(r.End-r.Committed, 0)
		case r.Start >= 0:
			r.Lag = max(r.End-r.Start, 0)
		}
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b PartitionLag) int {
		return compareTP(keel.TopicPartition{Topic: a.Topic, Partition: a.Partition}, keel.TopicPartition{Topic: b.Topic, Partition: b.Partition})
	})
	return out, nil
}
