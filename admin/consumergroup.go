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

// ConsumerGroupDescription describes a group on the consumer protocol
// (KIP-848), from ConsumerGroupDescribe.
type ConsumerGroupDescription struct {
	Group string
	State string // Empty, Assigning, Reconciling, Stable, Dead
	// GroupEpoch moves on with every membership or subscription change;
	// AssignmentEpoch is the epoch the target assignment was computed
	// for. A group is settled when every member's epoch equals both.
	GroupEpoch      int32
	AssignmentEpoch int32
	Assignor        string // the coordinator's assignor, e.g. "uniform"
	Coordinator     int32  // broker id
	Members         []ConsumerMemberDescription
}

// ConsumerMemberDescription is one member of a consumer-protocol group.
type ConsumerMemberDescription struct {
	MemberID    string
	InstanceID  string // static membership id, or ""
	MemberEpoch int32
	ClientID    string
	Host        string
	Rack        string
	Subscribed  []string // topic names subscribed to, sorted
	Regex       string   // the subscribed regex, or ""
	// Assigned is what the member owns now; Target what the coordinator
	// wants it to own. They differ while the member reconciles.
	Assigned []keel.TopicPartition
	Target   []keel.TopicPartition
}

// DescribeConsumerGroups describes groups on the consumer protocol
// (KIP-848) through their coordinators: member epochs, assignments and
// target assignments. A group that does not exist, or is a classic or
// share group, gives an error matching ErrGroupNotFound (DescribeGroups
// describes classic groups); the descriptions found are returned with it,
// in the order asked.
func (a *Admin) DescribeConsumerGroups(ctx context.Context, groups ...string) ([]ConsumerGroupDescription, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.DescribeConsumerGroups")
	}
	groups = dedupe(groups)
	if len(groups) == 0 {
		return nil, errors.New("admin: DescribeConsumerGroups needs at least one group name")
	}
	var mu sync.Mutex
	found := make(map[string]kmsg.ConsumerGroupDescribeResponseGroup)
	coords := make(map[string]int32)
	results := a.perCoordinator(ctx, groups, func(ctx context.Context, addr string, gs []string) (map[string]error, error) {
		req := kmsg.NewPtrConsumerGroupDescribeRequest()
		req.Groups = gs
		kresp, err := a.send(ctx, addr, req)
		if err != nil {
			if errors.Is(err, errs.ErrUnsupportedBroker) {
				return nil, &errs.Error{Broker: addr, Detail: "the broker does not offer ConsumerGroupDescribe (KIP-848 consumer groups need Kafka 4.0 or later)", Err: err}
			}
			return nil, err
		}
		out := make(map[string]error, len(gs))
		for _, g := range kresp.(*kmsg.ConsumerGroupDescribeResponse).Groups {
			switch {
			case g.ErrorCode == errs.CodeGroupIdNotFound || (g.ErrorCode == errs.CodeNone && g.State == "Dead"):
				out[g.Group] = codeErr(errs.CodeGroupIdNotFound, addr, g.ErrorMessage, fmt.Sprintf("group %q does not exist on the consumer protocol (a classic group? DescribeGroups describes those)", g.Group))
			case g.ErrorCode != errs.CodeNone:
				out[g.Group] = codeErr(g.ErrorCode, addr, g.ErrorMessage, fmt.Sprintf("describing consumer group %q", g.Group))
			default:
				out[g.Group] = nil
				mu.Lock()
				found[g.Group], coords[g.Group] = g, a.brokerID(addr)
				mu.Unlock()
			}
		}
		return out, nil
	})
	names := a.topicNamer(ctx, found)
	var out []ConsumerGroupDescription
	var failures []error
	for _, g := range groups {
		if err := results[g]; err != nil {
			failures = append(failures, err)
		} else if d, ok := found[g]; ok {
			out = append(out, consumerDescriptionFrom(d, coords[g], names))
		}
	}
	return out, errors.Join(failures...)
}

// topicNamer returns the names of the topic ids in the assignments that
// came without names (brokers may send ids only), from the cluster view.
func (a *Admin) topicNamer(ctx context.Context, gs map[string]kmsg.ConsumerGroupDescribeResponseGroup) map[[16]byte]string {
	needed := false
	for _, g := range gs {
		for _, m := range g.Members {
			for _, tp := range append(slices.Clone(m.Assignment.TopicPartitions), m.TargetAssignment.TopicPartitions...) {
				needed = needed || tp.Topic == ""
			}
		}
	}
	names := map[[16]byte]string{}
	if !needed {
		return names
	}
	release := a.meta.WantAllTopics()
	defer release()
	s, err := a.meta.Refresh(ctx)
	if err != nil {
		a.logger.Warn("keel admin: cannot name the topics of consumer group assignments", "err", err)
		return names
	}
	for name, t := range s.Topics {
		names[t.ID] = name
	}
	return names
}

func consumerDescriptionFrom(g kmsg.ConsumerGroupDescribeResponseGroup, coord int32, names map[[16]byte]string) ConsumerGroupDescription {
	d := ConsumerGroupDescription{
		Group: g.Group, State: g.State, GroupEpoch: g.Epoch, AssignmentEpoch: g.AssignmentEpoch,
		Assignor: g.AssignorName, Coordinator: coord,
	}
	partitions := func(a kmsg.Assignment) []keel.TopicPartition {
		out := []keel.TopicPartition{}
		for _, tp := range a.TopicPartitions {
			name := tp.Topic
			if name == "" {
				name = names[tp.TopicID]
			}
			if name == "" {
				name = fmt.Sprintf("topic-id:%x", tp.TopicID)
			}
			for _, p := range tp.Partitions {
				out = append(out, keel.TopicPartition{Topic: name, Partition: p})
			}
		}
		slices.SortFunc(out, compareTP)
		return out
	}
	for _, m := range g.Members {
		md := ConsumerMemberDescription{
			MemberID: m.MemberID, MemberEpoch: m.MemberEpoch, ClientID: m.ClientID, Host: m.ClientHost,
			Subscribed: slices.Sorted(slices.Values(m.SubscribedTopics)),
			Assigned:   partitions(m.Assignment), Target: partitions(m.TargetAssignment),
		}
		if m.InstanceID != nil {
			md.InstanceID = *m.InstanceID
		}
		if m.RackID != nil {
			md.Rack = *m.RackID
		}
		if m.SubscribedTopicRegex != nil {
			md.Regex = *m.SubscribedTopicRegex
		}
		d.Members = append(d.Members, md)
	}
	slices.SortFunc(d.Members, func(a, b ConsumerMemberDescription) int { return strings.Compare(a.MemberID, b.MemberID) })
	return d
}
