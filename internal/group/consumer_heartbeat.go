package group

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/wait"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Classifications of a heartbeat's error (wrapped with the real error).
var (
	errRejoin = errors.New("rejoin with epoch 0")
	errFatal  = errors.New("fatal")
)

type classified struct {
	kind error
	err  error
}

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.err, e.kind} }

// heartbeatLoop joins the group (epoch 0) and heartbeats at the interval
// the coordinator asks for, applying each assignment it sends. It stops
// while a fenced member's partitions are being reported lost, then joins
// again.
func (m *ConsumerMember) heartbeatLoop(ctx context.Context) {
	full := true // subscription, assignor, rebalance timeout: on join and after a failure
	failures := 0
	interval := m.cfg.HeartbeatInterval
	for ctx.Err() == nil {
		m.mu.Lock()
		leaving, fenced := m.leaving, m.fenced != nil || m.fatal != nil
		epoch, owned := max(m.generation, 0), clonePartitions(m.owned)
		m.mu.Unlock()
		if leaving {
			return
		}
		if fenced { // Run's goroutine reports the loss, then wakes us
			select {
			case <-ctx.Done():
				return
			case <-m.beat:
			}
			continue
		}
		resp, addr, err := m.heartbeat(ctx, epoch, full || epoch == 0, owned)
		delay := interval
		if err == nil {
			err = m.heartbeatCode(epoch, resp, addr)
		}
		switch {
		case err == nil:
			failures, full = 0, false
			if resp.HeartbeatIntervalMillis > 0 {
				interval = max(time.Duration(resp.HeartbeatIntervalMillis)*time.Millisecond, 10*time.Millisecond)
				delay = interval
			}
			m.applyAnswer(epoch, resp)
		case errors.Is(err, errRejoin):
			m.mu.Lock()
			if m.leaving { // the answer to a heartbeat that crossed Leave's
				m.mu.Unlock()
				return
			}
			m.fenceLocked(err)
			m.mu.Unlock()
			signal(m.wake)
			full, delay = true, 0
		case errors.Is(err, errFatal):
			m.mu.Lock()
			m.fatal = err
			m.mu.Unlock()
			signal(m.wake)
			return
		default:
			if ctx.Err() != nil {
				return
			}
			failures++
			full = true
			delay = m.cfg.Backoff.Delay(failures)
			m.log.Info("keel: group heartbeat failed; retrying", "err", err, "attempt", failures)
		}
		if delay > 0 && !wait.Until(ctx, m.beat, delay) && ctx.Err() != nil {
			return
		}
	}
}

// applyAnswer takes the epoch and the assignment (when the coordinator
// sent one) of a successful heartbeat; Run's goroutine reconciles.
func (m *ConsumerMember) applyAnswer(sentEpoch int32, resp *kmsg.ConsumerGroupHeartbeatResponse) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leaving || m.fenced != nil {
		return // an answer from before Leave or the fence
	}
	if resp.MemberID != nil && *resp.MemberID != "" {
		m.memberID = *resp.MemberID // v0 brokers name members themselves
	}
	moved := resp.MemberEpoch != m.generation
	if moved {
		m.generation = resp.MemberEpoch
		m.changedLocked()
	}
	if resp.Assignment != nil {
		m.unresolved = resp.Assignment
	}
	if moved || resp.Assignment != nil {
		signal(m.wake)
	}
}

// heartbeat sends one ConsumerGroupHeartbeat. A full one carries the
// subscription and settings (a join must); every one lists the owned
// partitions, which is how revocations are acknowledged.
func (m *ConsumerMember) heartbeat(ctx context.Context, epoch int32, full bool, owned Partitions) (*kmsg.ConsumerGroupHeartbeatResponse, string, error) {
	c, addr, err := m.coordinator(ctx)
	if err != nil {
		if errors.Is(err, ErrFatal) {
			return nil, addr, &classified{errFatal, err}
		}
		return nil, addr, err
	}
	if c.Versions().Version(int16(kmsg.ConsumerGroupHeartbeat)) < 0 {
		return nil, addr, &classified{errFatal, &errs.Error{
			Broker: addr,
			Detail: fmt.Sprintf("group %q: the coordinator does not offer ConsumerGroupHeartbeat (KIP-848 needs Kafka 4.0 or later); use the classic group protocol with this cluster", m.cfg.Group),
			Err:    errs.ErrUnsupportedBroker,
		}}
	}
	m.mu.Lock()
	id := m.memberID
	m.mu.Unlock()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Group = m.cfg.Group
	req.MemberID = id
	req.MemberEpoch = epoch
	if m.cfg.InstanceID != "" {
		req.InstanceID = &m.cfg.InstanceID
	}
	req.RebalanceTimeoutMillis = -1
	if full {
		req.RebalanceTimeoutMillis = int32(m.cfg.RebalanceTimeout / time.Millisecond)
		if m.cfg.Rack != "" {
			req.RackID = &m.cfg.Rack
		}
		if m.cfg.Regex != nil {
			re := m.cfg.Regex.String()
			req.SubscribedTopicRegex = &re
		} else {
			req.SubscribedTopicNames = slices.Clone(m.cfg.Topics)
		}
		if m.cfg.ServerAssignor != "" {
			req.ServerAssignor = &m.cfg.ServerAssignor
		}
	}
	req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{} // a join must list none
	if epoch > 0 {
		req.Topics = m.ownedTopics(owned)
	}
	resp, err := c.Request(ctx, req)
	if err != nil {
		return nil, addr, err
	}
	return resp.(*kmsg.ConsumerGroupHeartbeatResponse), addr, nil
}

// ownedTopics lists owned by topic id, as the request wants them.
func (m *ConsumerMember) ownedTopics(owned Partitions) []kmsg.ConsumerGroupHeartbeatRequestTopic {
	out := []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	s := m.meta.Current()
	for name, ps := range owned {
		if len(ps) == 0 || s == nil || s.Topics[name] == nil {
			continue
		}
		t := kmsg.NewConsumerGroupHeartbeatRequestTopic()
		t.TopicID = s.Topics[name].ID
		t.Partitions = slices.Sorted(slices.Values(ps))
		out = append(out, t)
	}
	return out
}

// heartbeatCode turns an answer's error code into nil, a rejoin, a fatal
// error, or a retriable one.
func (m *ConsumerMember) heartbeatCode(epoch int32, resp *kmsg.ConsumerGroupHeartbeatResponse, addr string) error {
	code := resp.ErrorCode
	if code == errs.CodeNone {
		return nil
	}
	e := m.groupErr("ConsumerGroupHeartbeat", code, addr)
	var ke *errs.Error
	if errors.As(e, &ke) && resp.ErrorMessage != nil {
		ke.Detail += ": " + *resp.ErrorMessage
	}
	switch code {
	case errs.CodeFencedMemberEpoch, errs.CodeUnknownMemberId:
		return &classified{errRejoin, e}
	case errs.CodeGroupIdNotFound:
		if epoch != 0 {
			return &classified{errRejoin, e} // the coordinator forgot the group
		}
		return &classified{errFatal, fmt.Errorf("group %q has members on the classic protocol (or is a share group), and this broker does not migrate a classic group to the consumer protocol online: stop the classic members first (the group then converts when the first consumer-protocol member joins), use another group id, or keep GroupProtocol(classic): %w", m.cfg.Group, e)}
	case errs.CodeUnreleasedInstanceId:
		// The previous holder of the instance id (a crashed process)
		// is still in the group until its session times out.
		m.log.Warn("keel: static member id still held by a previous member; retrying until its session expires", "instance", m.cfg.InstanceID)
		return e
	case errs.CodeUnsupportedAssignor, errs.CodeInvalidRequest, errs.CodeGroupMaxSizeReached,
		errs.CodeUnsupportedVersion, errs.CodeInvalidRegularExpression, errs.CodeFencedInstanceId:
		return &classified{errFatal, e}
	}
	if errors.Is(e, ErrFatal) {
		return &classified{errFatal, e}
	}
	if isCoordinatorMove(code) || errs.IsRetriable(e) {
		return e
	}
	return &classified{errFatal, e}
}

func isCoordinatorMove(code int16) bool {
	switch code {
	case errs.CodeNotCoordinator, errs.CodeCoordinatorNotAvailable, errs.CodeCoordinatorLoadInProgress:
		return true
	}
	return false
}

// isGone: codes with which the coordinator says the member is not in the
// group (any more).
func isGone(code int16) bool {
	switch code {
	case errs.CodeUnknownMemberId, errs.CodeFencedMemberEpoch, errs.CodeGroupIdNotFound:
		return true
	}
	return false
}
