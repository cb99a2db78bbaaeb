package assign

import (
	"slices"
)

// Protocol is the rebalance protocol an assignor needs (KIP-429).
type Protocol int8

const (
	// Eager members revoke every partition before rejoining, so the
	// assignor may move any partition freely.
	Eager Protocol = iota
	// Cooperative members keep consuming while rejoining; the assignor
	// must never hand a partition to a member while another still owns
	// it, so moves take two rebalances.
	Cooperative
)

// String returns "eager" or "cooperative".
func (p Protocol) String() string {
	if p == Cooperative {
		return "cooperative"
	}
	return "eager"
}

// Names of the built-in assignors, as they appear in JoinGroup protocols.
// They are the names Java and librdkafka use, which is what lets a group
// mix clients: the broker picks a name every member offers.
const (
	RangeName             = "range"
	RoundRobinName        = "roundrobin"
	StickyName            = "sticky"
	CooperativeStickyName = "cooperative-sticky"
)

// Member is one group member as the leader sees it: its JoinGroup identity
// plus its decoded Subscription.
type Member struct {
	ID         string             // member_id the broker gave it
	InstanceID string             // group.instance.id; "" for dynamic members
	Topics     []string           // subscribed topics
	Owned      map[string][]int32 // partitions it still owns (Subscription v1+)
	Generation int32              // generation of Owned (Subscription v2+); -1 when unknown
	Rack       string             // client.rack (Subscription v3+)
	UserData   []byte             // assignor-specific Subscription user_data
}

// MemberFromSubscription builds the Member the leader passes to Assign from
// a JoinGroup response member and its decoded metadata.
func MemberFromSubscription(id, instanceID string, s Subscription) Member {
	return Member{
		ID:         id,
		InstanceID: instanceID,
		Topics:     s.Topics,
		Owned:      s.Owned,
		Generation: s.Generation,
		Rack:       s.Rack,
		UserData:   s.UserData,
	}
}

// Assignor computes the group's assignment on the leader.
type Assignor interface {
	// Name is the protocol name offered in JoinGroup.
	Name() string
	// Protocol is the rebalance protocol the assignor is designed for.
	Protocol() Protocol
	// UserData is what a member using this assignor puts in its
	// Subscription's user_data, given the partitions it was last
	// assigned and the generation it was assigned in (-1 for none).
	// Sticky assignors carry ownership there for leaders that do not
	// read the owned-partitions field; others return nil.
	UserData(owned map[string][]int32, generation int32) []byte
	// Assign maps each member id to its partitions by topic. Every
	// member (duplicate ids count once, first wins) gets an entry, empty
	// when it gets nothing, because the leader's SyncGroup must carry an
	// assignment for every member. Partitions of topics missing from
	// partitionsPerTopic (no metadata yet) are not assigned. The result
	// depends only on the inputs, not on map iteration or input order
	// (except the first-wins rule for duplicate ids).
	Assign(members []Member, partitionsPerTopic map[string]int32) map[string]map[string][]int32
}

// ByName returns the built-in assignor called name.
func ByName(name string) (Assignor, bool) {
	switch name {
	case RangeName:
		return Range(), true
	case RoundRobinName:
		return RoundRobin(), true
	case StickyName:
		return Sticky(), true
	case CooperativeStickyName:
		return CooperativeSticky(), true
	}
	return nil, false
}

// uniqueMembers drops later members that repeat an id: a buggy or hostile
// broker can list a member twice, and keying a plan by id would otherwise
// merge or overwrite their shares, leaving partitions assigned to nobody.
func uniqueMembers(members []Member) []Member {
	seen := make(map[string]bool, len(members))
	out := make([]Member, 0, len(members))
	for _, m := range members {
		if !seen[m.ID] {
			seen[m.ID] = true
			out = append(out, m)
		}
	}
	return out
}

// emptyPlan has an empty entry for every member, so members that get
// nothing still receive an (empty) assignment.
func emptyPlan(members []Member) map[string]map[string][]int32 {
	plan := make(map[string]map[string][]int32, len(members))
	for _, m := range members {
		plan[m.ID] = map[string][]int32{}
	}
	return plan
}

// subscribes reports whether m subscribes to topic.
func subscribes(m *Member, topic string) bool {
	return slices.Contains(m.Topics, topic)
}
