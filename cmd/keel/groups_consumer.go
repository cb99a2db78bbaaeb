package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// describeConsumerGroup describes group if it runs the consumer protocol
// (KIP-848): member epochs, assignments and target assignments. handled
// is false for a classic group (or a broker without KIP-848), which the
// caller then describes with DescribeGroups.
func describeConsumerGroup(ctx context.Context, io stdio, a *admin.Admin, group string, asJSON bool) (handled bool, err error) {
	ds, err := a.DescribeConsumerGroups(ctx, group)
	if errors.Is(err, admin.ErrGroupNotFound) || errors.Is(err, keel.ErrUnsupportedBroker) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	if asJSON {
		return true, printJSON(io, consumerGroupsJSON(ds))
	}
	for _, d := range ds {
		printConsumerGroup(io, d)
	}
	return true, nil
}

func printConsumerGroup(io stdio, d admin.ConsumerGroupDescription) {
	out := io.out
	fmt.Fprintf(out, "Group:        %s\n", d.Group)
	fmt.Fprintf(out, "State:        %s\n", d.State)
	fmt.Fprintf(out, "Protocol:     consumer (KIP-848), assignor %s\n", orText(d.Assignor))
	fmt.Fprintf(out, "Epochs:       group %d, target assignment %d\n", d.GroupEpoch, d.AssignmentEpoch)
	fmt.Fprintf(out, "Coordinator:  broker %d\n", d.Coordinator)
	if len(d.Members) == 0 {
		fmt.Fprintln(out, "Members:      none")
		return
	}
	fmt.Fprintf(out, "Members:      %d\n\n", len(d.Members))
	t := newTextTable("MEMBER", "EPOCH", "CLIENT-ID", "HOST", "PARTITIONS", "TARGET")
	for _, m := range d.Members {
		id := m.MemberID
		if m.InstanceID != "" {
			id += " (" + m.InstanceID + ")"
		}
		target := "same"
		if formatAssigned(m.Target) != formatAssigned(m.Assigned) {
			target = formatAssigned(m.Target)
		}
		t.add(id, fmt.Sprint(m.MemberEpoch), orText(m.ClientID), orText(m.Host), formatAssigned(m.Assigned), target)
	}
	t.print(out)
}

type consumerMemberJSON struct {
	MemberID    string         `json:"member_id"`
	InstanceID  string         `json:"instance_id,omitempty"`
	MemberEpoch int32          `json:"member_epoch"`
	ClientID    string         `json:"client_id"`
	Host        string         `json:"host"`
	Rack        string         `json:"rack,omitempty"`
	Subscribed  []string       `json:"subscribed_topics"`
	Regex       string         `json:"subscribed_regex,omitempty"`
	Assigned    []partitionRef `json:"assigned"`
	Target      []partitionRef `json:"target_assignment"`
}

type consumerGroupJSON struct {
	Group           string               `json:"group"`
	State           string               `json:"state"`
	ProtocolType    string               `json:"protocol_type"` // "consumer", as DescribeGroups names it
	Protocol        string               `json:"protocol"`      // the group protocol: "consumer"
	Assignor        string               `json:"assignor"`
	GroupEpoch      int32                `json:"group_epoch"`
	AssignmentEpoch int32                `json:"assignment_epoch"`
	Coordinator     int32                `json:"coordinator"`
	Members         []consumerMemberJSON `json:"members"`
}

func refs(tps []keel.TopicPartition) []partitionRef {
	out := []partitionRef{}
	for _, tp := range tps {
		out = append(out, partitionRef{tp.Topic, tp.Partition})
	}
	return out
}

func consumerGroupsJSON(ds []admin.ConsumerGroupDescription) []consumerGroupJSON {
	out := []consumerGroupJSON{}
	for _, d := range ds {
		g := consumerGroupJSON{Group: d.Group, State: d.State, ProtocolType: "consumer", Protocol: keel.ConsumerProtocol,
			Assignor: d.Assignor, GroupEpoch: d.GroupEpoch, AssignmentEpoch: d.AssignmentEpoch, Coordinator: d.Coordinator,
			Members: []consumerMemberJSON{}}
		for _, m := range d.Members {
			g.Members = append(g.Members, consumerMemberJSON{
				MemberID: m.MemberID, InstanceID: m.InstanceID, MemberEpoch: m.MemberEpoch, ClientID: m.ClientID,
				Host: m.Host, Rack: m.Rack, Subscribed: append([]string{}, m.Subscribed...), Regex: m.Regex,
				Assigned: refs(m.Assigned), Target: refs(m.Target),
			})
		}
		out = append(out, g)
	}
	return out
}

// groupProtocolFlag checks consume's --group-protocol value.
func groupProtocolOption(name string) (keel.GroupOption, error) {
	switch strings.ToLower(name) {
	case "", keel.ClassicProtocol:
		return nil, nil
	case keel.ConsumerProtocol:
		return keel.GroupProtocol(keel.ConsumerProtocol), nil
	}
	return nil, fmt.Errorf("--group-protocol %q: use classic (the default) or consumer (KIP-848, Kafka 4.0+)", name)
}

// gaveNothingConsumer is gaveNothing for a consumer-protocol group: it
// is settled when it is Stable, and this member owns nothing and is
// meant to own nothing (its target assignment is empty too).
func (s *groupState) gaveNothingConsumer(ctx context.Context, clientID string) bool {
	ds, err := s.adm.DescribeConsumerGroups(ctx, s.group)
	if err != nil || len(ds) != 1 || ds[0].State != "Stable" {
		return false
	}
	for _, m := range ds[0].Members {
		if m.ClientID == clientID {
			return len(m.Assigned) == 0 && len(m.Target) == 0 && s.holdsNothing()
		}
	}
	return false // not joined yet
}
