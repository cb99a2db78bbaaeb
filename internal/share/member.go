package share

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/internal/wait"
)

// newMemberID returns a random id in the form Kafka's own clients use
// (a version 4 UUID, base64url without padding: 22 characters). KIP-932
// has the client generate it and keep it for the member's lifetime.
func newMemberID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// membership joins the group and heartbeats until the member closes,
// applying each assignment the coordinator sends.
func (c *Consumer) membership() {
	defer c.wg.Done()
	defer close(c.hbDone)
	ctx := c.hbCtx
	c.lookUpTopics(ctx)
	interval := c.cfg.HeartbeatInterval
	full := true // send the subscription (and rack): on join, and after a lost answer
	failures := 0
	var unresolved *kmsg.ShareGroupHeartbeatResponseAssignment
	for ctx.Err() == nil {
		c.mu.Lock()
		epoch := c.epoch
		c.mu.Unlock()
		resp, addr, err := c.heartbeat(ctx, epoch, full || epoch == 0)
		delay := interval
		if err == nil {
			err = c.heartbeatCode(epoch, resp, addr)
		}
		switch {
		case err == nil:
			failures, full = 0, false
			if resp.HeartbeatIntervalMillis > 0 {
				interval = max(time.Duration(resp.HeartbeatIntervalMillis)*time.Millisecond, 10*time.Millisecond)
				delay = interval
			}
			c.mu.Lock()
			c.epoch = resp.MemberEpoch
			c.mu.Unlock()
			if resp.Assignment != nil {
				unresolved = resp.Assignment
			}
			if unresolved != nil && c.applyAssignment(ctx, unresolved) {
				unresolved = nil
			}
		case errors.Is(err, errRejoin):
			// Fenced or forgotten: everything held is gone; join again
			// at once with the same member id (as KIP-848 members do).
			c.fenced(err)
			unresolved, full, delay = nil, true, 0
		case errors.Is(err, errFatal):
			c.setFatal(err)
			return
		default:
			if ctx.Err() != nil {
				return
			}
			failures++
			full = true
			delay = c.cfg.Backoff.Delay(failures)
			c.log.Info("keel: share group heartbeat failed; retrying", "err", err, "attempt", failures)
		}
		if delay > 0 && !wait.Until(ctx, c.hbNow, delay) && ctx.Err() != nil {
			return
		}
	}
}

// Markers for heartbeatCode's classification (wrapped with the real error).
var (
	errRejoin = errors.New("rejoin")
	errFatal  = errors.New("fatal")
)

// classified wraps err so that errors.Is finds both err and kind.
type classified struct {
	kind error
	err  error
}

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.err, e.kind} }

// heartbeatCode turns the answer's error code into nil, a rejoin, a
// fatal error, or a retriable one.
func (c *Consumer) heartbeatCode(epoch int32, resp *kmsg.ShareGroupHeartbeatResponse, addr string) error {
	code := resp.ErrorCode
	if code == errs.CodeNone {
		return nil
	}
	e := errs.FromCode(code, addr, deref(resp.ErrorMessage)).(*errs.Error)
	e.Detail = fmt.Sprintf("share group %q heartbeat (member %s, epoch %d)", c.cfg.Group, c.memberID, epoch)
	switch code {
	case errs.CodeUnknownMemberId, errs.CodeFencedMemberEpoch:
		return &classified{errRejoin, e}
	case errs.CodeGroupIdNotFound:
		if epoch != 0 {
			// The group vanished under a live member (coordinator state
			// lost): only a join at epoch 0 creates it again.
			return &classified{errRejoin, e}
		}
		e.Detail = fmt.Sprintf("joining share group %q: the group id belongs to a group of another kind (a consumer group?); pick another name for the share group", c.cfg.Group)
		return &classified{errFatal, e}
	case errs.CodeNotCoordinator, errs.CodeCoordinatorNotAvailable:
		c.meta.InvalidateCoordinator(meta.GroupCoordinator, c.cfg.Group)
		return e
	case errs.CodeCoordinatorLoadInProgress:
		return e
	case errs.CodeGroupAuthorizationFailed, errs.CodeTopicAuthorizationFailed,
		errs.CodeInvalidRequest, errs.CodeGroupMaxSizeReached, errs.CodeUnsupportedVersion:
		return &classified{errFatal, e}
	}
	if e.Retriable {
		return e
	}
	return &classified{errFatal, e}
}

// heartbeat sends one ShareGroupHeartbeat to the group's coordinator.
func (c *Consumer) heartbeat(ctx context.Context, epoch int32, full bool) (*kmsg.ShareGroupHeartbeatResponse, string, error) {
	cn, addr, err := c.coordinator(ctx)
	if err != nil {
		return nil, addr, err
	}
	req := kmsg.NewPtrShareGroupHeartbeatRequest()
	req.GroupID = c.cfg.Group
	req.MemberID = c.memberID
	req.MemberEpoch = epoch
	if full {
		req.SubscribedTopicNames = c.cfg.Topics
		if c.cfg.Rack != "" {
			req.RackID = &c.cfg.Rack
		}
	}
	resp, err := cn.Request(ctx, req)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			c.meta.InvalidateCoordinator(meta.GroupCoordinator, c.cfg.Group)
		}
		return nil, addr, err
	}
	return resp.(*kmsg.ShareGroupHeartbeatResponse), addr, nil
}

// coordinator returns the member's private connection to the group's
// coordinator (private so that no other member's requests queue with
// its heartbeats).
func (c *Consumer) coordinator(ctx context.Context) (*conn.Conn, string, error) {
	b, err := c.meta.Coordinator(ctx, meta.GroupCoordinator, c.cfg.Group)
	if err != nil {
		return nil, "", err
	}
	addr := b.Addr()
	cn, err := c.pool.GetOwned(ctx, addr, conn.Group, c.owner)
	if err != nil {
		return nil, addr, err
	}
	if cn.Versions().Version(int16(kmsg.ShareGroupHeartbeat)) < 0 {
		return nil, addr, &classified{errFatal, unsupportedBroker(addr)}
	}
	return cn, addr, nil
}

// lookUpTopics makes the cluster view follow the subscribed topics, so
// that assignments (topic ids) can be named and routed to leaders. A
// topic that does not exist yet is only worth a warning: the group
// assigns it once it is created.
func (c *Consumer) lookUpTopics(ctx context.Context) {
	for _, t := range c.cfg.Topics {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.meta.Topic(lctx, t)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Warn("keel: share group topic not available yet", "topic", t, "err", err)
		}
	}
}

// applyAssignment makes a the member's assignment, naming its topic ids
// from the cluster view. It reports false while some id is unknown (a
// topic just created): the resolved part applies now, and the caller
// tries again at the next heartbeat (the coordinator sends an assignment
// only when it changes).
func (c *Consumer) applyAssignment(ctx context.Context, a *kmsg.ShareGroupHeartbeatResponseAssignment) bool {
	resolve := func() (map[TP][16]byte, map[string][16]byte, bool) {
		snap := c.meta.Current()
		byID := make(map[[16]byte]string)
		if snap != nil {
			for _, t := range c.cfg.Topics {
				if tm := snap.Topics[t]; tm != nil {
					byID[tm.ID] = t
				}
			}
		}
		parts := make(map[TP][16]byte)
		names := make(map[string][16]byte)
		complete := true
		for _, t := range a.TopicPartitions {
			name, ok := byID[t.TopicID]
			if !ok {
				complete = false
				continue
			}
			names[name] = t.TopicID
			for _, p := range t.Partitions {
				parts[TP{name, p}] = t.TopicID
			}
		}
		return parts, names, complete
	}
	parts, names, complete := resolve()
	if !complete {
		c.lookUpTopics(ctx)
		parts, names, complete = resolve()
	}
	c.mu.Lock()
	if !sameParts(c.assigned, parts) {
		c.log.Info("keel: share group assignment", "partitions", len(parts), "epoch", c.epoch)
	}
	c.assigned = parts
	for n, id := range names {
		c.topicIDs[n] = id
	}
	c.mu.Unlock()
	c.reroute()
	return complete
}

// fenced drops the member's assignment and everything it holds: the
// coordinator no longer knows this member, so the brokers released its
// records and dropped its share sessions.
func (c *Consumer) fenced(why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log.Warn("keel: share group member fenced; rejoining", "err", why)
	c.epoch = 0
	c.assigned = make(map[TP][16]byte)
	c.dropAllHeldLocked(nil, "the member was fenced")
	for _, s := range c.sources {
		s.resetWanted = true
		s.want = nil
		s.wakeLocked()
	}
}

// stopHeartbeat ends the membership goroutine and waits for it.
func (c *Consumer) stopHeartbeat() {
	c.hbCancel()
	<-c.hbDone
}

// leave tells the coordinator the member leaves (epoch -1), so that the
// group reassigns at once; the coordinator also releases what the member
// still held. A member that is not in the group has nothing to leave.
func (c *Consumer) leave(ctx context.Context) error {
	c.mu.Lock()
	epoch := c.epoch
	c.epoch = -1
	c.mu.Unlock()
	if epoch <= 0 {
		return nil
	}
	return wait.Retry(ctx, c.cfg.Backoff, 5, func(int) (bool, error) {
		cn, addr, err := c.coordinator(ctx)
		if err != nil {
			return errors.Is(err, errFatal), err
		}
		req := kmsg.NewPtrShareGroupHeartbeatRequest()
		req.GroupID = c.cfg.Group
		req.MemberID = c.memberID
		req.MemberEpoch = -1
		resp, err := cn.Request(ctx, req)
		if err != nil {
			c.meta.InvalidateCoordinator(meta.GroupCoordinator, c.cfg.Group)
			return ctx.Err() != nil, err
		}
		r := resp.(*kmsg.ShareGroupHeartbeatResponse)
		switch r.ErrorCode {
		case errs.CodeNone, errs.CodeUnknownMemberId, errs.CodeGroupIdNotFound:
			return true, nil // out of the group: what leaving wants
		case errs.CodeNotCoordinator, errs.CodeCoordinatorNotAvailable:
			c.meta.InvalidateCoordinator(meta.GroupCoordinator, c.cfg.Group)
			fallthrough
		case errs.CodeCoordinatorLoadInProgress:
			return false, errs.FromCode(r.ErrorCode, addr, deref(r.ErrorMessage))
		}
		return true, errs.FromCode(r.ErrorCode, addr, deref(r.ErrorMessage))
	})
}
