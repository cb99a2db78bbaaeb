package group

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/group/assign"
)

// joinAndSync runs one rebalance: JoinGroup (again at once if the broker
// requires a member id), SyncGroup with the leader's plan, then the
// callbacks for what changed.
func (m *Member) joinAndSync(ctx context.Context) error {
	m.mu.Lock()
	eager := m.protocol != "" && !m.isCooperative(m.protocol)
	owned := clonePartitions(m.owned)
	m.mu.Unlock()

	// Eager assignors hand out every partition afresh: give them all up
	// before joining. Heartbeats go on meanwhile (the member is still in
	// its generation), so a slow handler does not get it expired.
	if eager && !isEmpty(owned) {
		m.revoke(ctx, owned)
		m.mu.Lock()
		m.owned = Partitions{}
		m.mu.Unlock()
		owned = Partitions{}
	}
	m.mu.Lock()
	m.stable = false
	m.changedLocked()
	m.mu.Unlock()

	topics := m.subscription()
	if len(topics) == 0 {
		// librdkafka leaders drop members without topics; wait for
		// the regex to match something.
		return fmt.Errorf("group %q: no topic matches the subscription yet", m.cfg.Group)
	}
	join, addr, err := m.join(ctx, topics, owned)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.memberID = join.MemberID
	m.generation = join.Generation
	m.changedLocked()
	if join.Protocol != nil {
		m.protocol = *join.Protocol
	}
	protocol := m.protocol
	leader := join.LeaderID == join.MemberID
	m.subscribed = strings.Join(topics, ",")
	m.planned = nil
	m.mu.Unlock()

	var plan []kmsg.SyncGroupRequestGroupAssignment
	if leader {
		var counts map[string]int32
		if plan, counts, err = m.leaderPlan(ctx, protocol, join.Members); err != nil {
			return err
		}
		// The counts the plan assigned are the ones a later change is
		// measured against (not the metadata of a moment later).
		m.mu.Lock()
		m.planned = counts
		m.mu.Unlock()
	}
	assigned, err := m.sync(ctx, join, protocol, plan, addr)
	if err != nil {
		return err
	}
	return m.apply(ctx, owned, assigned, protocol)
}

func (m *Member) isCooperative(protocol string) bool {
	for _, a := range m.cfg.Assignors {
		if a.Name() == protocol {
			return a.Protocol() == assign.Cooperative
		}
	}
	return false
}

func (m *Member) join(ctx context.Context, topics []string, owned Partitions) (*kmsg.JoinGroupResponse, string, error) {
	for range 3 { // MEMBER_ID_REQUIRED asks for exactly one more try
		c, addr, err := m.joinCoordinator(ctx)
		if err != nil {
			return nil, "", err
		}
		m.mu.Lock()
		memberID, generation := m.memberID, m.generation
		m.mu.Unlock()

		req := kmsg.NewPtrJoinGroupRequest()
		req.Group = m.cfg.Group
		req.SessionTimeoutMillis = int32(m.cfg.SessionTimeout / time.Millisecond)
		req.RebalanceTimeoutMillis = int32(m.cfg.RebalanceTimeout / time.Millisecond)
		req.MemberID = memberID
		if m.cfg.InstanceID != "" {
			req.InstanceID = &m.cfg.InstanceID
		}
		req.ProtocolType = assign.ProtocolType
		for _, a := range m.cfg.Assignors {
			sub := assign.Subscription{
				Version:    assign.SubscriptionVersion,
				Topics:     topics,
				UserData:   a.UserData(owned, generation),
				Owned:      owned,
				Generation: generation,
				Rack:       m.cfg.Rack,
			}
			p := kmsg.NewJoinGroupRequestProtocol()
			p.Name = a.Name()
			p.Metadata = sub.AppendTo(nil)
			req.Protocols = append(req.Protocols, p)
		}
		resp, err := c.Request(ctx, req)
		if err != nil {
			return nil, "", err
		}
		r := resp.(*kmsg.JoinGroupResponse)
		switch r.ErrorCode {
		case errs.CodeNone:
			return r, addr, nil
		case errs.CodeMemberIdRequired: // KIP-394: rejoin at once with it
			m.mu.Lock()
			m.memberID = r.MemberID
			m.mu.Unlock()
			continue
		case errs.CodeUnknownMemberId, errs.CodeIllegalGeneration: // what we own may be others' now
			err := m.groupErr("JoinGroup", r.ErrorCode, addr)
			m.loseAll(err)
			return nil, "", err
		}
		return nil, "", m.groupErr("JoinGroup", r.ErrorCode, addr)
	}
	return nil, "", fmt.Errorf("group %q: the broker kept asking for a member id", m.cfg.Group)
}

// leaderPlan decodes every member's subscription and runs the chosen
// assignor over the partition counts of every subscribed topic.
func (m *Member) leaderPlan(ctx context.Context, protocol string, members []kmsg.JoinGroupResponseMember) ([]kmsg.SyncGroupRequestGroupAssignment, map[string]int32, error) {
	var assignor assign.Assignor
	for _, a := range m.cfg.Assignors {
		if a.Name() == protocol {
			assignor = a
		}
	}
	if assignor == nil {
		return nil, nil, fmt.Errorf("%w: group %q chose assignor %q, which this member does not offer", ErrFatal, m.cfg.Group, protocol)
	}
	var ms []assign.Member
	topics := map[string]bool{}
	for _, jm := range members {
		sub, err := assign.DecodeSubscription(jm.ProtocolMetadata)
		if err != nil {
			m.log.Warn("keel: cannot decode a member's subscription; it gets nothing", "member", jm.MemberID, "err", err)
			sub = assign.Subscription{Generation: -1}
		}
		inst := ""
		if jm.InstanceID != nil {
			inst = *jm.InstanceID
		}
		ms = append(ms, assign.MemberFromSubscription(jm.MemberID, inst, sub))
		for _, t := range sub.Topics {
			topics[t] = true
		}
	}
	counts := map[string]int32{}
	for t := range topics {
		mt, err := m.meta.Topic(ctx, t)
		if err != nil {
			if errs.Code(err) == errs.CodeUnknownTopicOrPartition {
				continue // a topic that does not exist gets no partitions
			}
			return nil, nil, err
		}
		counts[t] = int32(len(mt.Partitions))
	}
	plan := assignor.Assign(ms, counts)
	out := make([]kmsg.SyncGroupRequestGroupAssignment, 0, len(plan))
	ids := make([]string, 0, len(plan))
	for id := range plan {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		a := assign.Assignment{Version: assign.AssignmentVersion, Partitions: plan[id]}
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID = id
		ga.MemberAssignment = a.AppendTo(nil)
		out = append(out, ga)
	}
	return out, counts, nil
}

func (m *Member) sync(ctx context.Context, join *kmsg.JoinGroupResponse, protocol string, plan []kmsg.SyncGroupRequestGroupAssignment, addr string) (Partitions, error) {
	c, addr, err := m.joinCoordinator(ctx)
	if err != nil {
		return nil, err
	}
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group = m.cfg.Group
	req.Generation = join.Generation
	req.MemberID = join.MemberID
	if m.cfg.InstanceID != "" {
		req.InstanceID = &m.cfg.InstanceID
	}
	pt := assign.ProtocolType
	req.ProtocolType = &pt
	req.Protocol = &protocol
	req.GroupAssignment = plan
	resp, err := c.Request(ctx, req)
	if err != nil {
		return nil, err
	}
	r := resp.(*kmsg.SyncGroupResponse)
	if r.ErrorCode != errs.CodeNone {
		err := m.groupErr("SyncGroup", r.ErrorCode, addr)
		if r.ErrorCode == errs.CodeUnknownMemberId || r.ErrorCode == errs.CodeIllegalGeneration {
			m.loseAll(err)
		}
		return nil, err
	}
	if r.Protocol != nil && *r.Protocol != protocol {
		return nil, fmt.Errorf("group %q: SyncGroup answered for assignor %q, joined with %q", m.cfg.Group, *r.Protocol, protocol)
	}
	a, err := assign.DecodeAssignment(r.MemberAssignment)
	if err != nil {
		// An empty assignment: this member gets nothing this round.
		return Partitions{}, nil
	}
	return a.Partitions, nil
}

// apply runs the callbacks for the new assignment. Cooperative: revoke what
// left (then rejoin for the second round), assign what is new. Eager:
// everything was revoked before joining; assign it all.
func (m *Member) apply(ctx context.Context, owned, assigned Partitions, protocol string) error {
	defer m.checkMetadata() // a change that came during the rebalance
	m.mu.Lock()
	m.stable = true
	m.syncs++
	m.changedLocked()
	m.mu.Unlock()
	if !m.isCooperative(protocol) {
		m.mu.Lock()
		m.owned = clonePartitions(assigned)
		m.mu.Unlock()
		if !isEmpty(assigned) && m.cfg.Callbacks.Assign != nil {
			m.cfg.Callbacks.Assign(assigned)
		}
		return nil
	}
	revoked, added := assign.Diff(owned, assigned)
	if !isEmpty(revoked) {
		m.revoke(ctx, revoked)
	}
	m.mu.Lock()
	m.owned = clonePartitions(assigned)
	m.mu.Unlock()
	if !isEmpty(added) && m.cfg.Callbacks.Assign != nil {
		m.cfg.Callbacks.Assign(added)
	}
	if !isEmpty(revoked) {
		// KIP-429: the partitions we gave up go to their new owners in
		// a second round.
		m.RequestRejoin()
	}
	return nil
}

func (m *state) revoke(ctx context.Context, revoked Partitions) {
	if m.cfg.Callbacks.Revoke == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RebalanceTimeout)
	defer cancel()
	m.cfg.Callbacks.Revoke(rctx, revoked)
}
