package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/group/assign"
	"github.com/keel-go/keel/internal/meta"
)

// GroupListing is one group of ListGroups.
type GroupListing struct {
	Group        string
	ProtocolType string // "consumer" for consumer groups; "" for groups that only commit offsets
	State        string // Stable, Empty, PreparingRebalance, CompletingRebalance, Dead ("" from brokers before Kafka 2.6)
}

// GroupDescription is a group as its coordinator describes it.
type GroupDescription struct {
	Group        string
	State        string
	ProtocolType string
	Protocol     string // the assignor in use, e.g. "cooperative-sticky"; empty while rebalancing
	Coordinator  int32  // broker id
	Members      []MemberDescription
}

// MemberDescription is one member of a group.
type MemberDescription struct {
	MemberID   string
	InstanceID string // static membership id, or ""
	ClientID   string
	Host       string
	// Assigned is the member's partitions, sorted, decoded with the
	// consumer protocol; empty while the group rebalances or for groups
	// that are not consumer groups.
	Assigned []keel.TopicPartition
}

// ListGroups lists the groups of every broker (each broker knows only the
// groups it coordinates), sorted by name. A broker that cannot be asked
// makes the call fail with an error naming it, rather than return a list
// silently missing its groups.
func (a *Admin) ListGroups(ctx context.Context) ([]GroupListing, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.ListGroups")
	}
	s, err := a.meta.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		all      = make(map[string]GroupListing)
		failures []error
	)
	for _, b := range s.Brokers {
		wg.Go(func() {
			got, err := a.listGroupsOf(ctx, b)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err)
				return
			}
			for _, g := range got {
				all[g.Group] = g
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		slices.SortFunc(failures, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return nil, errors.Join(failures...)
	}
	out := make([]GroupListing, 0, len(all))
	for _, g := range all {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b GroupListing) int { return strings.Compare(a.Group, b.Group) })
	return out, nil
}

func (a *Admin) listGroupsOf(ctx context.Context, b meta.Broker) ([]GroupListing, error) {
	r := a.newRetry()
	for {
		var last error
		kresp, err := a.send(ctx, b.Addr(), kmsg.NewPtrListGroupsRequest())
		switch {
		case err != nil && !retriable(ctx, err):
			return nil, fmt.Errorf("listing the groups of broker %d (%s): %w", b.ID, b.Addr(), err)
		case err != nil:
			last = err
		default:
			resp := kresp.(*kmsg.ListGroupsResponse)
			if resp.ErrorCode == errs.CodeNone {
				out := make([]GroupListing, 0, len(resp.Groups))
				for _, g := range resp.Groups {
					out = append(out, GroupListing{Group: g.Group, ProtocolType: g.ProtocolType, State: g.GroupState})
				}
				return out, nil
			}
			e := codeErr(resp.ErrorCode, b.Addr(), nil, fmt.Sprintf("listing the groups of broker %d", b.ID))
			if !e.Retriable {
				return nil, e
			}
			last = e // e.g. COORDINATOR_LOAD_IN_PROGRESS after a restart
		}
		if err := r.wait(ctx, last); err != nil {
			return nil, fmt.Errorf("listing the groups of broker %d (%s): %w", b.ID, b.Addr(), err)
		}
	}
}

// DescribeGroups describes groups, asking each group's coordinator. A
// group that does not exist gives an error matching ErrGroupNotFound; the
// descriptions of the groups that were found are returned with it, in the
// order asked.
func (a *Admin) DescribeGroups(ctx context.Context, groups ...string) ([]GroupDescription, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.DescribeGroups")
	}
	groups = dedupe(groups)
	if len(groups) == 0 {
		return nil, errors.New("admin: DescribeGroups needs at least one group name")
	}
	var mu sync.Mutex
	found := make(map[string]GroupDescription)
	results := a.perCoordinator(ctx, groups, func(ctx context.Context, addr string, gs []string) (map[string]error, error) {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = gs
		kresp, err := a.send(ctx, addr, req)
		if err != nil {
			return nil, err
		}
		resp := kresp.(*kmsg.DescribeGroupsResponse)
		coord := a.brokerID(addr)
		out := make(map[string]error, len(gs))
		for _, g := range resp.Groups {
			switch {
			case g.ErrorCode == errs.CodeGroupIdNotFound || (g.ErrorCode == errs.CodeNone && g.State == "Dead"):
				out[g.Group] = groupNotFound(g.Group, addr)
			case g.ErrorCode != errs.CodeNone:
				out[g.Group] = codeErr(g.ErrorCode, addr, nil, fmt.Sprintf("describing group %q", g.Group))
			default:
				out[g.Group] = nil
				d := a.describeFrom(g, coord)
				mu.Lock()
				found[g.Group] = d
				mu.Unlock()
			}
		}
		return out, nil
	})
	var out []GroupDescription
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

func (a *Admin) describeFrom(g kmsg.DescribeGroupsResponseGroup, coord int32) GroupDescription {
	d := GroupDescription{Group: g.Group, State: g.State, ProtocolType: g.ProtocolType, Protocol: g.Protocol, Coordinator: coord}
	for _, m := range g.Members {
		md := MemberDescription{MemberID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
		if m.InstanceID != nil {
			md.InstanceID = *m.InstanceID
		}
		if g.ProtocolType == "consumer" && len(m.MemberAssignment) > 0 {
			as, err := assign.DecodeAssignment(m.MemberAssignment)
			if err != nil {
				a.logger.Warn("keel admin: cannot decode a member's assignment", "group", g.Group, "member", m.MemberID, "err", err)
			}
			for topic, ps := range as.Partitions {
				for _, p := range ps {
					md.Assigned = append(md.Assigned, keel.TopicPartition{Topic: topic, Partition: p})
				}
			}
			slices.SortFunc(md.Assigned, compareTP)
		}
		d.Members = append(d.Members, md)
	}
	slices.SortFunc(d.Members, func(a, b MemberDescription) int { return strings.Compare(a.MemberID, b.MemberID) })
	return d
}

// DeleteGroups deletes groups and their committed offsets, through each
// group's coordinator. A group with active members gives an error
// matching ErrGroupNotEmpty (stop its consumers first); one that does not
// exist, ErrGroupNotFound. The errors of several groups are joined.
func (a *Admin) DeleteGroups(ctx context.Context, groups ...string) error {
	if ctx == nil {
		return errs.NilContext("admin.Admin.DeleteGroups")
	}
	groups = dedupe(groups)
	if len(groups) == 0 {
		return errors.New("admin: DeleteGroups needs at least one group name")
	}
	results := a.perCoordinator(ctx, groups, func(ctx context.Context, addr string, gs []string) (map[string]error, error) {
		req := kmsg.NewPtrDeleteGroupsRequest()
		req.Groups = gs
		kresp, err := a.send(ctx, addr, req)
		if err != nil {
			return nil, err
		}
		out := make(map[string]error, len(gs))
		for _, g := range kresp.(*kmsg.DeleteGroupsResponse).Groups {
			switch g.ErrorCode {
			case errs.CodeNone:
				out[g.Group] = nil
			case errs.CodeNonEmptyGroup:
				out[g.Group] = codeErr(errs.CodeNonEmptyGroup, addr, nil, fmt.Sprintf("cannot delete group %q: it still has active members; stop its consumers (or wait for their sessions to expire) and try again", g.Group))
			case errs.CodeGroupIdNotFound:
				out[g.Group] = groupNotFound(g.Group, addr)
			default:
				out[g.Group] = codeErr(g.ErrorCode, addr, nil, fmt.Sprintf("deleting group %q", g.Group))
			}
		}
		return out, nil
	})
	var failures []error
	for _, g := range groups {
		if err := results[g]; err != nil {
			failures = append(failures, err)
		}
	}
	return errors.Join(failures...)
}

func groupNotFound(group, addr string) *errs.Error {
	return codeErr(errs.CodeGroupIdNotFound, addr, nil, fmt.Sprintf("group %q does not exist", group))
}

// brokerID maps an address back to its broker id, -1 if unknown.
func (a *Admin) brokerID(addr string) int32 {
	if s := a.meta.Current(); s != nil {
		for id, b := range s.Brokers {
			if b.Addr() == addr {
				return id
			}
		}
	}
	return -1
}

func compareTP(a, b keel.TopicPartition) int {
	return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}
