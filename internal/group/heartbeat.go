package group

import (
	"context"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/wait"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// heartbeatLoop keeps the member alive while it is in a generation, on its
// own goroutine so that long callbacks and slow processing never starve it.
func (m *Member) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		gen, id, stable := m.generation, m.memberID, m.stable
		m.mu.Unlock()
		if gen < 0 || id == "" || !stable {
			continue
		}
		code, err := m.heartbeat(ctx, gen, id)
		if err != nil {
			continue // the next tick tries again; the session timeout is the bound
		}
		switch code {
		case errs.CodeNone:
		case errs.CodeRebalanceInProgress: // others are joining
			m.RequestRejoin()
		case errs.CodeIllegalGeneration, errs.CodeUnknownMemberId, errs.CodeFencedInstanceId:
			select {
			case m.lost <- lostSignal{gen, m.groupErr("Heartbeat", code, "")}:
			default:
			}
		case errs.CodeCoordinatorNotAvailable, errs.CodeNotCoordinator, errs.CodeCoordinatorLoadInProgress:
			m.groupErr("Heartbeat", code, "") // forgets the coordinator
		}
	}
}

func (m *Member) heartbeat(ctx context.Context, gen int32, id string) (int16, error) {
	c, _, err := m.coordinator(ctx)
	if err != nil {
		return 0, err
	}
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group = m.cfg.Group
	req.Generation = gen
	req.MemberID = id
	if m.cfg.InstanceID != "" {
		req.InstanceID = &m.cfg.InstanceID
	}
	resp, err := c.Request(ctx, req)
	if err != nil {
		return 0, err
	}
	return resp.(*kmsg.HeartbeatResponse).ErrorCode, nil
}

// Leave tells the coordinator this member is leaving, so the group
// rebalances at once instead of after the session timeout. Static members
// do not leave (as in the Java client): a restart within the session
// timeout then keeps their partitions without a rebalance.
func (m *Member) Leave(ctx context.Context) error {
	m.mu.Lock()
	id := m.memberID
	m.stable = false
	m.generation = -1
	m.changedLocked()
	m.mu.Unlock()
	if id == "" || m.cfg.InstanceID != "" {
		return nil
	}
	// Retried under ctx while the coordinator moves or loads (groupErr
	// forgets a coordinator that says it is not one): a member whose
	// coordinator moved just before Close would otherwise not leave, and
	// the group would wait out its session timeout.
	return wait.Retry(ctx, m.cfg.Backoff, 0, func(int) (bool, error) {
		err := m.leaveOnce(ctx, id)
		return err == nil || !errs.IsRetriable(err), err
	})
}

func (m *Member) leaveOnce(ctx context.Context, id string) error {
	c, addr, err := m.coordinator(ctx)
	if err != nil {
		return err
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = m.cfg.Group
	req.MemberID = id
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID = id
	lm.Reason = kmsg.StringPtr("the consumer is closing")
	req.Members = append(req.Members, lm)
	resp, err := c.Request(ctx, req)
	if err != nil {
		return err
	}
	r := resp.(*kmsg.LeaveGroupResponse)
	if r.ErrorCode != errs.CodeNone {
		return m.groupErr("LeaveGroup", r.ErrorCode, addr)
	}
	m.mu.Lock()
	m.memberID = ""
	m.mu.Unlock()
	return nil
}
