package group

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/group/assign"
	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/internal/wait"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The group protocols a member can speak (Java's group.protocol).
const (
	ProtocolClassic  = "classic"
	ProtocolConsumer = "consumer"
)

// ConsumerMember is one member of a consumer group on the KIP-848
// protocol: the coordinator computes the assignment (its "target") and
// sends each member, in ConsumerGroupHeartbeat answers, the partitions it
// may own now. The member reconciles: it revokes what is no longer
// there (handlers stopped, offsets committed, through Callbacks.Revoke),
// then assigns what is new (Callbacks.Assign, which reads the committed
// offsets before anything is fetched), and acknowledges by listing what
// it owns in its next heartbeat. A partition leaves a member before it
// is given to another, so it never has two owners.
//
// Two goroutines: heartbeats go on while callbacks run (a 45 s handler
// must not get the member expired), and every callback runs on Run's
// goroutine, one at a time, as on the classic path.
type ConsumerMember struct {
	state

	target     Partitions                                     // what the coordinator assigned, by name
	unresolved *kmsg.ConsumerGroupHeartbeatResponseAssignment // an assignment with topic ids not named yet
	fenced     error                                          // the member must rejoin; Run reports its partitions lost first
	fatal      error                                          // the member cannot continue
	leaving    bool                                           // Leave was called: no more heartbeats
	stableAt   int32                                          // the epoch last counted in syncs

	wake chan struct{} // Run's goroutine has something to reconcile
	beat chan struct{} // heartbeat now (an acknowledgement, a rejoin, Leave)
}

// NewMember returns the member for cfg.Protocol.
func NewMember(cfg Config, pool *conn.Pool, m *meta.Meta) interface {
	Run(context.Context) error
	Leave(context.Context) error
} {
	if cfg.Protocol == ProtocolConsumer {
		return NewConsumer(cfg, pool, m)
	}
	return New(cfg, pool, m)
}

// NewConsumer returns a KIP-848 member; Run drives it.
func NewConsumer(cfg Config, pool *conn.Pool, m *meta.Meta) *ConsumerMember {
	cm := &ConsumerMember{
		state:    newState(cfg, pool, m),
		target:   Partitions{},
		stableAt: -1,
		wake:     make(chan struct{}, 1),
		beat:     make(chan struct{}, 1),
	}
	// KIP-1082: the client names itself, once, for its whole life; a
	// fenced member rejoins under the same id.
	cm.memberID = newMemberID()
	return cm
}

// newMemberID returns a random version 4 UUID, base64url without padding,
// as Kafka's own clients form member ids.
func newMemberID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run joins the group and reconciles assignments until ctx ends; it
// returns ctx's error, or an error wrapping ErrFatal. Call Leave before
// ctx ends to leave the group.
func (m *ConsumerMember) Run(ctx context.Context) error {
	hbCtx, stopHB := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.heartbeatLoop(hbCtx)
	}()
	// Assignments name topics by id: the cluster view must know the
	// subscribed topics (all of them for a regex) to name them.
	var release func()
	if m.cfg.Regex != nil {
		release = m.meta.WantAllTopics()
	}
	cancel := m.meta.Subscribe(func(*meta.Snapshot) {
		m.mu.Lock()
		pending := m.unresolved != nil
		m.mu.Unlock()
		if pending {
			signal(m.wake)
		}
	})
	defer func() {
		cancel()
		if release != nil {
			release()
		}
		stopHB()
		wg.Wait()
		m.pool.CloseOwner(m.owner)
	}()
	m.lookUpTopics(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.wake:
		}
		if err := m.reconcile(ctx); err != nil {
			return err
		}
	}
}

// lookUpTopics makes the cluster view follow the subscribed topics. A
// topic that does not exist yet is assigned once it is created.
func (m *ConsumerMember) lookUpTopics(ctx context.Context) {
	for _, t := range m.cfg.Topics {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := m.meta.Topic(lctx, t)
		cancel()
		if err != nil && ctx.Err() == nil {
			m.log.Info("keel: subscribed topic not available yet", "topic", t, "err", err)
		}
	}
}

// reconcile brings what the member owns to the coordinator's assignment:
// revoke first, then assign, then acknowledge in a heartbeat at once.
func (m *ConsumerMember) reconcile(ctx context.Context) error {
	m.mu.Lock()
	if m.fatal != nil || m.fenced != nil {
		cause, fatal := m.fenced, m.fatal != nil
		if fatal {
			cause = m.fatal
		}
		owned := m.owned
		m.owned, m.target, m.unresolved = Partitions{}, Partitions{}, nil
		m.stable, m.stableAt = false, -1
		m.changedLocked()
		m.mu.Unlock()
		m.log.Warn("keel: group membership lost; partitions may now belong to others", "err", cause)
		if !isEmpty(owned) && m.cfg.Callbacks.Lost != nil {
			m.cfg.Callbacks.Lost(owned)
		}
		if fatal {
			return fmt.Errorf("%w: %w", ErrFatal, cause)
		}
		m.mu.Lock()
		m.fenced = nil // the heartbeats rejoin now, with epoch 0
		m.mu.Unlock()
		signal(m.beat)
		return nil
	}
	if m.unresolved != nil && m.resolveLocked() {
		m.unresolved = nil
	} else if m.unresolved != nil {
		m.meta.RefreshSoon()
	}
	revoked, added := assign.Diff(m.owned, m.target)
	if !isEmpty(revoked) || !isEmpty(added) {
		m.stable = false
		m.changedLocked()
	}
	m.mu.Unlock()
	if !isEmpty(revoked) || !isEmpty(added) {
		defer m.observeReconciliation()()
	}

	if !isEmpty(revoked) {
		m.revoke(ctx, revoked)
		m.mu.Lock()
		m.owned = minus(m.owned, revoked)
		m.mu.Unlock()
		signal(m.beat) // acknowledge: the coordinator may now give them to others
	}
	if !isEmpty(added) {
		m.mu.Lock()
		gone := m.fenced != nil || m.leaving
		m.mu.Unlock()
		if gone {
			signal(m.wake)
			return nil
		}
		if m.cfg.Callbacks.Assign != nil {
			m.cfg.Callbacks.Assign(added) // reads the committed offsets first
		}
		m.mu.Lock()
		m.owned = union(m.owned, added)
		m.mu.Unlock()
		signal(m.beat)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.fenced != nil || m.fatal != nil:
		signal(m.wake)
	case !samePartitions(m.owned, m.target):
		signal(m.wake) // the assignment moved on while callbacks ran
	case m.unresolved == nil && m.generation > 0 && (!m.stable || m.stableAt != m.generation):
		// Reconciled in this epoch: what WaitSync waits for.
		m.stable, m.stableAt = true, m.generation
		m.syncs++
		m.changedLocked()
	}
	return nil
}

// observeReconciliation tells the Rebalancing callback that a
// reconciliation (revoke, assign, acknowledge) begins and returns the
// function that tells Rebalanced it ended: under this protocol a
// reconciliation that moves partitions is what a classic member's join
// and sync round is. The protocol named is the coordinator's assignor,
// "consumer" when the broker's default is used.
func (m *ConsumerMember) observeReconciliation() func() {
	cb := &m.cfg.Callbacks
	if cb.Rebalancing == nil && cb.Rebalanced == nil {
		return func() {}
	}
	protocol := m.cfg.ServerAssignor
	if protocol == "" {
		protocol = "consumer"
	}
	if cb.Rebalancing != nil {
		cb.Rebalancing(protocol)
	}
	start := time.Now()
	return func() {
		if cb.Rebalanced == nil {
			return
		}
		m.mu.Lock()
		epoch := m.generation
		m.mu.Unlock()
		cb.Rebalanced(protocol, epoch, time.Since(start), nil)
	}
}

// resolveLocked names the topic ids of m.unresolved from the cluster view
// and makes it the target; it reports false while some id is unknown (a
// topic just created), leaving those partitions out for now.
func (m *ConsumerMember) resolveLocked() bool {
	byID := map[[16]byte]string{}
	if s := m.meta.Current(); s != nil {
		for name, t := range s.Topics {
			byID[t.ID] = name
		}
	}
	target := Partitions{}
	complete := true
	for _, t := range m.unresolved.Topics {
		name, ok := byID[t.TopicID]
		if !ok {
			complete = false
			continue
		}
		target[name] = append(target[name], t.Partitions...)
	}
	m.target = target
	return complete
}

// Leave leaves the group: epoch -1, or -2 for a static member, whose
// partitions the coordinator then keeps for it until its session times
// out (a restart within it gets them back without a rebalance).
func (m *ConsumerMember) Leave(ctx context.Context) error {
	m.mu.Lock()
	m.leaving = true
	id, epoch := m.memberID, m.generation
	m.generation = -1
	m.stable = false
	m.changedLocked()
	m.mu.Unlock()
	signal(m.beat) // ends the heartbeats
	if epoch <= 0 {
		return nil // not in the group
	}
	leaveEpoch := int32(-1)
	if m.cfg.InstanceID != "" {
		leaveEpoch = -2
	}
	return wait.Retry(ctx, m.cfg.Backoff, 5, func(int) (bool, error) {
		c, addr, err := m.coordinator(ctx)
		if err != nil {
			return errors.Is(err, ErrFatal), err
		}
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group = m.cfg.Group
		req.MemberID = id
		req.MemberEpoch = leaveEpoch
		if m.cfg.InstanceID != "" {
			req.InstanceID = &m.cfg.InstanceID
		}
		resp, err := c.Request(ctx, req)
		if err != nil {
			return ctx.Err() != nil, err
		}
		r := resp.(*kmsg.ConsumerGroupHeartbeatResponse)
		switch code := r.ErrorCode; {
		case code == 0 || isGone(code):
			return true, nil // out of the group: what leaving wants
		case isCoordinatorMove(code):
			return false, m.groupErr("ConsumerGroupHeartbeat (leave)", code, addr)
		default:
			return true, m.groupErr("ConsumerGroupHeartbeat (leave)", code, addr)
		}
	})
}

func minus(a, b Partitions) Partitions {
	drop := map[string]map[int32]bool{}
	for t, ps := range b {
		drop[t] = map[int32]bool{}
		for _, p := range ps {
			drop[t][p] = true
		}
	}
	out := Partitions{}
	for t, ps := range a {
		for _, p := range ps {
			if !drop[t][p] {
				out[t] = append(out[t], p)
			}
		}
	}
	return out
}

func union(a, b Partitions) Partitions {
	out := clonePartitions(a)
	for t, ps := range minus(b, a) {
		out[t] = append(out[t], ps...)
	}
	return out
}

func samePartitions(a, b Partitions) bool {
	r, ad := assign.Diff(a, b)
	return isEmpty(r) && isEmpty(ad)
}

// Fenced is a commit's report that the coordinator refused this member at
// epoch gen (UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH): as after such a
// heartbeat answer, Run reports the partitions lost and the heartbeats
// rejoin with epoch 0. A report for an epoch the member left is ignored.
func (m *ConsumerMember) Fenced(gen int32, cause error) {
	m.mu.Lock()
	if m.leaving || m.fenced != nil || m.fatal != nil || gen <= 0 || gen != m.generation {
		m.mu.Unlock()
		return
	}
	m.fenceLocked(cause)
	m.mu.Unlock()
	signal(m.wake)
}

// fenceLocked records that the member lost its epoch: Run reports the
// partitions lost, commits are refused until the member rejoined.
func (m *ConsumerMember) fenceLocked(cause error) {
	m.fenced = cause
	m.generation = -1
	m.stable = false
	m.changedLocked()
}
