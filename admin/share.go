package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/errs"
)

// Share groups (KIP-932): describing them, their start offsets and lag,
// and moving or deleting their start offsets. A share group's "offset" of
// a partition is its start offset (SPSO): every record before it is
// done (accepted, rejected or archived); records from it on are waiting,
// being delivered, or done out of order.

// ShareGroupDescription is what a share group's coordinator says of it.
type ShareGroupDescription struct {
	Group string
	// State is "Empty" (no members), "Stable", "Dead" or another state
	// the broker names.
	State           string
	GroupEpoch      int32
	AssignmentEpoch int32
	Assignor        string // the server-side assignor ("simple")
	Coordinator     int32  // node id
	Members         []ShareMemberDescription
}

// ShareMemberDescription is one member of a share group.
type ShareMemberDescription struct {
	MemberID    string
	MemberEpoch int32
	ClientID    string
	Host        string
	Rack        string
	Subscribed  []string
	// Assigned are the partitions the member reads; in a share group
	// several members may read the same partition.
	Assigned []keel.TopicPartition
}

// DescribeShareGroups describes share groups through their coordinators.
// A group that does not exist (or is not a share group) gives an error
// matching ErrGroupNotFound; the descriptions found are returned with
// it, in the order asked.
func (a *Admin) DescribeShareGroups(ctx context.Context, groups ...string) ([]ShareGroupDescription, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.DescribeShareGroups")
	}
	groups = dedupe(groups)
	if len(groups) == 0 {
		return nil, errors.New("admin: DescribeShareGroups needs at least one group name")
	}
	var mu sync.Mutex
	found := make(map[string]ShareGroupDescription)
	results := a.perCoordinator(ctx, groups, func(ctx context.Context, addr string, gs []string) (map[string]error, error) {
		req := kmsg.NewPtrShareGroupDescribeRequest()
		req.GroupIDs = gs
		kresp, err := a.send(ctx, addr, req)
		if err != nil {
			return nil, shareAPIErr(err, addr)
		}
		coord := a.brokerID(addr)
		out := make(map[string]error, len(gs))
		for _, g := range kresp.(*kmsg.ShareGroupDescribeResponse).Groups {
			switch {
			case g.ErrorCode == errs.CodeGroupIdNotFound || (g.ErrorCode == errs.CodeNone && g.GroupState == "Dead"):
				out[g.GroupID] = codeErr(errs.CodeGroupIdNotFound, addr, g.ErrorMessage, fmt.Sprintf("share group %q does not exist (or is a group of another kind)", g.GroupID))
			case g.ErrorCode != errs.CodeNone:
				out[g.GroupID] = codeErr(g.ErrorCode, addr, g.ErrorMessage, fmt.Sprintf("describing share group %q", g.GroupID))
			default:
				out[g.GroupID] = nil
				mu.Lock()
				found[g.GroupID] = shareDescriptionFrom(g, coord)
				mu.Unlock()
			}
		}
		return out, nil
	})
	var out []ShareGroupDescription
	var failures []error
	for _, g := range groups {
		if err := results[g]; err != nil {
			failures = append(failures, err)
		} else if d, ok := found[g]; ok {
			out = append(out, d)
		}
	}
	return out, errors.Join(failures...)
}

func shareDescriptionFrom(g kmsg.ShareGroupDescribeResponseGroup, coord int32) ShareGroupDescription {
	d := ShareGroupDescription{
		Group: g.GroupID, State: g.GroupState, GroupEpoch: g.GroupEpoch,
		AssignmentEpoch: g.AssignmentEpoch, Assignor: g.Assignor, Coordinator: coord,
	}
	for _, m := range g.Members {
		md := ShareMemberDescription{
			MemberID: m.MemberID, MemberEpoch: m.MemberEpoch, ClientID: m.ClientID,
			Host: m.ClientHost, Subscribed: slices.Clone(m.SubscribedTopicNames),
		}
		if m.RackID != nil {
			md.Rack = *m.RackID
		}
		for _, tp := range m.Assignment.TopicPartitions {
			for _, p := range tp.Partitions {
				md.Assigned = append(md.Assigned, keel.TopicPartition{Topic: tp.Topic, Partition: p})
			}
		}
		slices.SortFunc(md.Assigned, compareTP)
		slices.Sort(md.Subscribed)
		d.Members = append(d.Members, md)
	}
	slices.SortFunc(d.Members, func(a, b ShareMemberDescription) int { return strings.Compare(a.MemberID, b.MemberID) })
	return d
}

// ShareOffset is a share group's position in one partition.
type ShareOffset struct {
	// StartOffset is the share-partition start offset: every record
	// before it is done. -1 when the group never read the partition.
	StartOffset int64
	// Lag is how many records from StartOffset to the end are not done
	// yet (Kafka 4.2+, DescribeShareGroupOffsets v1); -1 when unknown.
	Lag         int64
	LeaderEpoch int32
}

// ShareGroupOffsets returns the start offsets (and lag) of share group
// group in the partitions of topics, or, with no topics, in every
// partition the group has state for. A partition whose answer carried an
// error is left out and its error joined into the returned one.
func (a *Admin) ShareGroupOffsets(ctx context.Context, group string, topics ...string) (map[keel.TopicPartition]ShareOffset, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.ShareGroupOffsets")
	}
	if err := checkShareGroup(group); err != nil {
		return nil, err
	}
	rg := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
	rg.GroupID = group
	for _, t := range dedupe(topics) {
		tm, err := a.refreshedTopic(ctx, t)
		if err != nil {
			return nil, err
		}
		rt := kmsg.NewDescribeShareGroupOffsetsRequestGroupTopic()
		rt.Topic = t
		for _, p := range tm.Partitions {
			rt.Partitions = append(rt.Partitions, p.ID)
		}
		rg.Topics = append(rg.Topics, rt)
	}
	out := make(map[keel.TopicPartition]ShareOffset)
	var partErrs []error
	results := a.perCoordinator(ctx, []string{group}, func(ctx context.Context, addr string, _ []string) (map[string]error, error) {
		req := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
		req.Groups = []kmsg.DescribeShareGroupOffsetsRequestGroup{rg}
		kresp, err := a.send(ctx, addr, req)
		if err != nil {
			return nil, shareAPIErr(err, addr)
		}
		resp := kresp.(*kmsg.DescribeShareGroupOffsetsResponse)
		clear(out)
		partErrs = nil
		for _, g := range resp.Groups {
			if g.GroupID != group {
				continue
			}
			if g.ErrorCode != errs.CodeNone {
				return map[string]error{group: codeErr(g.ErrorCode, addr, g.ErrorMessage, fmt.Sprintf("reading the start offsets of share group %q", group))}, nil
			}
			for _, t := range g.Topics {
				for _, p := range t.Partitions {
					tp := keel.TopicPartition{Topic: t.Topic, Partition: p.Partition}
					if p.ErrorCode != errs.CodeNone {
						partErrs = append(partErrs, codeErr(p.ErrorCode, addr, p.ErrorMessage, fmt.Sprintf("start offset of share group %q in %s/%d", group, tp.Topic, tp.Partition)))
						continue
					}
					lag := p.Lag
					if resp.Version < 1 {
						lag = -1
					}
					out[tp] = ShareOffset{StartOffset: p.StartOffset, Lag: lag, LeaderEpoch: p.LeaderEpoch}
				}
			}
			return map[string]error{group: nil}, nil
		}
		return nil, &errs.Error{Broker: addr, Retriable: true, Detail: fmt.Sprintf("the coordinator left share group %q out of its answer", group), Err: errs.ErrProtocol}
	})
	if err := results[group]; err != nil {
		return nil, err
	}
	return out, errors.Join(partErrs...)
}

// AlterShareGroupOffsets sets share group group's start offsets: each
// partition's records before its offset count as done, and the group's
// in-flight state of the partition (delivery counts, acquisitions) is
// dropped. The group must have no members (ErrGroupNotEmpty otherwise:
// close its consumers first); a group that does not exist yet is created,
// which is how to make a new share group start at the beginning or any
// other offset. Errors of single partitions are joined.
func (a *Admin) AlterShareGroupOffsets(ctx context.Context, group string, offsets map[keel.TopicPartition]int64) error {
	if ctx == nil {
		return errs.NilContext("admin.Admin.AlterShareGroupOffsets")
	}
	if err := checkShareGroup(group); err != nil {
		return err
	}
	if len(offsets) == 0 {
		return errors.New("admin: AlterShareGroupOffsets needs at least one partition")
	}
	req := kmsg.NewPtrAlterShareGroupOffsetsRequest()
	req.GroupID = group
	byTopic := make(map[string]int)
	for _, tp := range sortedTPs(offsets) {
		o := offsets[tp]
		if o < 0 {
			return &keel.ConfigError{Option: "AlterShareGroupOffsets", Problem: fmt.Sprintf("offset %d for %s/%d", o, tp.Topic, tp.Partition), Fix: "start offsets are 0 or more (ListOffsets gives a partition's earliest and latest)"}
		}
		i, ok := byTopic[tp.Topic]
		if !ok {
			i = len(req.Topics)
			byTopic[tp.Topic] = i
			rt := kmsg.NewAlterShareGroupOffsetsRequestTopic()
			rt.Topic = tp.Topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewAlterShareGroupOffsetsRequestTopicPartition()
		rp.Partition, rp.StartOffset = tp.Partition, o
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	var partErrs []error
	results := a.perCoordinator(ctx, []string{group}, func(ctx context.Context, addr string, _ []string) (map[string]error, error) {
		kresp, err := a.send(ctx, addr, req)
		if err != nil {
			return nil, shareAPIErr(err, addr)
		}
		resp := kresp.(*kmsg.AlterShareGroupOffsetsResponse)
		if err := shareGroupCodeErr(resp.ErrorCode, resp.ErrorMessage, addr, group, "setting the start offsets of"); err != nil {
			return map[string]error{group: err}, nil
		}
		partErrs = nil
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != errs.CodeNone {
					partErrs = append(partErrs, codeErr(p.ErrorCode, addr, p.ErrorMessage, fmt.Sprintf("setting the start offset of share group %q in %s/%d", group, t.Topic, p.Partition)))
				}
			}
		}
		return map[string]error{group: nil}, nil
	})
	if err := results[group]; err != nil {
		return err
	}
	return errors.Join(partErrs...)
}

// DeleteShareGroupOffsets drops share group group's state of topics (its
// start offsets and in-flight state): the group reads them again as if
// new, from where share.auto.offset.reset says. The group must have no
// members (ErrGroupNotEmpty otherwise). Errors of single topics are
// joined.
func (a *Admin) DeleteShareGroupOffsets(ctx context.Context, group string, topics ...string) error {
	if ctx == nil {
		return errs.NilContext("admin.Admin.DeleteShareGroupOffsets")
	}
	if err := checkShareGroup(group); err != nil {
		return err
	}
	topics = dedupe(topics)
	if len(topics) == 0 {
		return errors.New("admin: DeleteShareGroupOffsets needs at least one topic")
	}
	req := kmsg.NewPtrDeleteShareGroupOffsetsRequest()
	req.GroupID = group
	for _, t := range topics {
		rt := kmsg.NewDeleteShareGroupOffsetsRequestTopic()
		rt.Topic = t
		req.Topics = append(req.Topics, rt)
	}
	var topicErrs []error
	results := a.perCoordinator(ctx, []string{group}, func(ctx context.Context, addr string, _ []string) (map[string]error, error) {
		kresp, err := a.send(ctx, addr, req)
		if err != nil {
			return nil, shareAPIErr(err, addr)
		}
		resp := kresp.(*kmsg.DeleteShareGroupOffsetsResponse)
		if err := shareGroupCodeErr(resp.ErrorCode, resp.ErrorMessage, addr, group, "deleting the start offsets of"); err != nil {
			return map[string]error{group: err}, nil
		}
		topicErrs = nil
		for _, t := range resp.Topics {
			if t.ErrorCode != errs.CodeNone {
				topicErrs = append(topicErrs, codeErr(t.ErrorCode, addr, t.ErrorMessage, fmt.Sprintf("deleting the start offsets of share group %q in topic %q", group, t.Topic)))
			}
		}
		return map[string]error{group: nil}, nil
	})
	if err := results[group]; err != nil {
		return err
	}
	return errors.Join(topicErrs...)
}

// AlterShareGroupConfigs sets (or, with an empty value, removes) configs
// of one group, such as share.auto.offset.reset ("earliest" makes a new
// share group start at the beginning of partitions it never read),
// share.record.lock.duration.ms, share.isolation.level, or, on Kafka
// 4.3+, share.renew.acknowledge.enable (needed for lock renewals).
func (a *Admin) AlterShareGroupConfigs(ctx context.Context, group string, configs map[string]string) error {
	if ctx == nil {
		return errs.NilContext("admin.Admin.AlterShareGroupConfigs")
	}
	if err := checkShareGroup(group); err != nil {
		return err
	}
	if len(configs) == 0 {
		return errors.New("admin: AlterShareGroupConfigs needs at least one config")
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeGroupConfig
	rr.ResourceName = group
	names := make([]string, 0, len(configs))
	for k := range configs {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name = k
		if v := configs[k]; v == "" {
			c.Op = kmsg.IncrementalAlterConfigOpDelete
		} else {
			c.Op = kmsg.IncrementalAlterConfigOpSet
			c.Value = kmsg.StringPtr(v)
		}
		rr.Configs = append(rr.Configs, c)
	}
	req.Resources = append(req.Resources, rr)
	r := a.newRetry()
	for {
		kresp, addr, err := a.anyBroker(ctx, req)
		if err == nil {
			for _, res := range kresp.(*kmsg.IncrementalAlterConfigsResponse).Resources {
				if res.ErrorCode != errs.CodeNone {
					err = codeErr(res.ErrorCode, addr, res.ErrorMessage, fmt.Sprintf("setting configs %s of group %q", strings.Join(names, ", "), group))
				}
			}
			if err == nil || !errs.IsRetriable(err) {
				return err
			}
		} else if !retriable(ctx, err) {
			return err
		}
		if werr := r.wait(ctx, err); werr != nil {
			return werr
		}
	}
}

// checkShareGroup refuses an empty group id before anything is sent.
func checkShareGroup(group string) error {
	if strings.TrimSpace(group) == "" {
		return &keel.ConfigError{Option: "group", Problem: fmt.Sprintf("%q is no share group id", group), Fix: "pass the share group's name"}
	}
	return nil
}

// shareGroupCodeErr is the error of a share group request's top-level
// code, with the hints a person needs.
func shareGroupCodeErr(code int16, msg *string, addr, group, doing string) error {
	switch code {
	case errs.CodeNone:
		return nil
	case errs.CodeNonEmptyGroup:
		return codeErr(code, addr, msg, fmt.Sprintf("%s share group %q: the group has active members; close its consumers (or wait for their sessions to expire) and try again", doing, group))
	case errs.CodeGroupIdNotFound:
		return codeErr(code, addr, msg, fmt.Sprintf("%s share group %q: no such share group (or the id belongs to a group of another kind)", doing, group))
	}
	return codeErr(code, addr, msg, fmt.Sprintf("%s share group %q", doing, group))
}

// shareAPIErr explains a broker that does not speak the share group APIs.
func shareAPIErr(err error, addr string) error {
	if errors.Is(err, errs.ErrUnsupportedBroker) {
		return &errs.Error{Broker: addr, Detail: "the broker does not offer the share group APIs (KIP-932): they need Kafka 4.1 or later with share groups enabled", Err: err}
	}
	return err
}

func sortedTPs(m map[keel.TopicPartition]int64) []keel.TopicPartition {
	out := make([]keel.TopicPartition, 0, len(m))
	for tp := range m {
		out = append(out, tp)
	}
	slices.SortFunc(out, compareTP)
	return out
}
