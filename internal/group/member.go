package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/group/assign"
	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/internal/wait"
)

// Partitions maps topics to partition numbers.
type Partitions = map[string][]int32

// Callbacks tell the consumer about its assignment. They run on the
// member's goroutine, one at a time; heartbeats continue meanwhile.
type Callbacks struct {
	// Revoke: these partitions go to other members. Stop processing them,
	// commit what was processed, then return; the rebalance completes
	// after Revoke returns. ctx ends at the rebalance timeout.
	Revoke func(ctx context.Context, revoked Partitions)
	// Assign: these partitions are now this member's.
	Assign func(assigned Partitions)
	// Lost: these partitions may already belong to another member (the
	// member was fenced or expired). Stop processing; do not commit.
	Lost func(lost Partitions)
	// Rebalancing and Rebalanced, when set, bracket every rebalance (one
	// join and sync round, its Revoke and Assign calls inside), for
	// observability. Rebalanced gets the protocol and generation after
	// the round and how it ended.
	Rebalancing func(protocol string)
	Rebalanced  func(protocol string, generation int32, took time.Duration, err error)
}

// Config configures a Member.
type Config struct {
	Group      string
	InstanceID string // static membership (KIP-345); "" for dynamic
	Topics     []string
	Regex      *regexp.Regexp // subscribe to every topic matching it
	Rack       string
	// Assignors in order of preference; the broker picks the first that
	// every member offers.
	Assignors         []assign.Assignor
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
	// Protocol is ProtocolClassic (JoinGroup/SyncGroup, the default) or
	// ProtocolConsumer (KIP-848 ConsumerGroupHeartbeat); NewMember picks
	// the member for it.
	Protocol string
	// ServerAssignor names the coordinator's assignor on the consumer
	// protocol ("uniform", "range"); "" for the broker's default.
	ServerAssignor string
	Backoff        conn.Backoff
	Logger         *slog.Logger
	Callbacks      Callbacks
}

// ErrFatal wraps errors after which the member cannot continue (fenced
// static instance, authorization).
var ErrFatal = errors.New("group member cannot continue")

// state is what both kinds of member share: identity, generation (the
// member epoch on the consumer protocol), owned partitions, and the
// coordinator connections that commits and offset fetches use.
type state struct {
	cfg  Config
	pool *conn.Pool
	meta *meta.Meta
	log  *slog.Logger

	mu         sync.Mutex
	memberID   string
	generation int32
	owned      Partitions
	stable     bool          // synced and not rejoining: heartbeats go out
	syncs      uint64        // syncs completed (stable set): what WaitSync waits on
	changed    chan struct{} // closed (and replaced) when generation or stable change
	owner      string        // names this member's private connection
}

func newState(cfg Config, pool *conn.Pool, m *meta.Meta) state {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return state{
		cfg:        cfg,
		pool:       pool,
		meta:       m,
		log:        cfg.Logger.With("group", cfg.Group),
		generation: -1,
		owned:      Partitions{},
		changed:    make(chan struct{}),
		owner:      fmt.Sprintf("group-member-%p", new(byte)),
	}
}

// Member is one consumer group member on the classic protocol.
type Member struct {
	state
	protocol string // the assignor the broker chose
	// subscribed: the subscribed topics at the last join, comma-joined.
	subscribed string
	// planned: when this member made the last assignment, the partition
	// count of every topic it assigned (all members' subscriptions); nil
	// on a follower.
	planned map[string]int32

	rejoin chan struct{}   // a rejoin was requested
	lost   chan lostSignal // heartbeats found the member fenced
}

// New returns a member; Run drives it.
func New(cfg Config, pool *conn.Pool, m *meta.Meta) *Member {
	return &Member{
		state:  newState(cfg, pool, m),
		rejoin: make(chan struct{}, 1),
		lost:   make(chan lostSignal, 1),
	}
}

// Generation returns what an OffsetCommit must carry: the generation and
// member id (-1 and "" while the member has none) and the instance id.
func (m *state) Generation() (generation int32, memberID, instanceID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.generation, m.memberID, m.cfg.InstanceID
}

// Owned returns the partitions the member owns now.
func (m *state) Owned() Partitions {
	m.mu.Lock()
	defer m.mu.Unlock()
	return clonePartitions(m.owned)
}

// changedLocked wakes those waiting in WaitGeneration.
func (m *state) changedLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Syncs returns how many times the member completed a rebalance (joined
// and synced), for WaitSync.
func (m *state) Syncs() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncs
}

// WaitSync waits under ctx until the member completed a rebalance after
// the syncs-th: the rebalance under way, or the next one.
func (m *state) WaitSync(ctx context.Context, after uint64) error {
	for {
		m.mu.Lock()
		done := m.syncs > after && m.stable
		ch := m.changed
		m.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// RequestRejoin makes the member rejoin the group soon.
func (m *Member) RequestRejoin() {
	select {
	case m.rejoin <- struct{}{}:
	default:
	}
}

// Run joins the group and keeps the member in it until ctx ends; it
// returns ctx's error, or an error wrapping ErrFatal. It does not leave the
// group: call Leave after Run returns.
func (m *Member) Run(ctx context.Context) error {
	hbCtx, stopHB := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.heartbeatLoop(hbCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.meta.KeepFresh(hbCtx) // checkMetadata needs fresh snapshots
	}()
	var unwatch func()
	if m.cfg.Regex != nil {
		release := m.meta.WantAllTopics()
		cancel := m.meta.Subscribe(func(*meta.Snapshot) { m.checkMetadata() })
		unwatch = func() { cancel(); release() }
	} else {
		unwatch = m.meta.Subscribe(func(*meta.Snapshot) { m.checkMetadata() })
	}
	defer func() {
		unwatch()
		stopHB()
		wg.Wait()
		m.pool.CloseOwner(m.owner)
	}()

	for attempt := 0; ; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := m.observedJoinAndSync(ctx)
		switch {
		case err == nil:
			attempt = 0
		case errors.Is(err, ErrFatal):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			attempt++
			m.log.Warn("keel: group rebalance failed; retrying", "err", err)
			if !wait.Sleep(ctx, m.cfg.Backoff.Delay(attempt)) {
				return ctx.Err()
			}
			continue
		}
		// Stable: wait until something asks for a rebalance.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.rejoin:
		case sig := <-m.lost:
			if errs.Code(sig.err) == errs.CodeFencedInstanceId { // another process has our instance id
				m.loseAll(sig.err)
				return fmt.Errorf("%w: %w", ErrFatal, sig.err)
			}
			m.mu.Lock()
			current := sig.generation == m.generation
			m.mu.Unlock()
			if current { // a signal from an older generation is stale
				m.loseAll(sig.err)
			}
		}
	}
}

// observedJoinAndSync is joinAndSync bracketed by the Rebalancing and
// Rebalanced callbacks.
func (m *Member) observedJoinAndSync(ctx context.Context) error {
	cb := &m.cfg.Callbacks
	if cb.Rebalancing == nil && cb.Rebalanced == nil {
		return m.joinAndSync(ctx)
	}
	m.mu.Lock()
	protocol := m.protocol
	m.mu.Unlock()
	if cb.Rebalancing != nil {
		cb.Rebalancing(protocol)
	}
	start := time.Now()
	err := m.joinAndSync(ctx)
	if cb.Rebalanced != nil {
		m.mu.Lock()
		protocol, gen := m.protocol, m.generation
		m.mu.Unlock()
		cb.Rebalanced(protocol, gen, time.Since(start), err)
	}
	return err
}

// lostSignal is a heartbeat's report that the member was fenced in a
// generation.
type lostSignal struct {
	generation int32
	err        error
}

// loseAll reports every owned partition lost and forgets the generation
// (and, for an unknown member, the member id).
func (m *Member) loseAll(cause error) {
	m.mu.Lock()
	owned := m.owned
	m.owned = Partitions{}
	m.generation = -1
	m.stable = false
	m.changedLocked()
	if errs.Code(cause) == errs.CodeUnknownMemberId {
		m.memberID = ""
	}
	m.mu.Unlock()
	m.log.Warn("keel: group membership lost; partitions may now belong to others", "err", cause)
	if len(owned) > 0 && m.cfg.Callbacks.Lost != nil {
		m.cfg.Callbacks.Lost(owned)
	}
}

// coordinator returns a shared connection to the group coordinator, for
// requests the broker answers at once (heartbeats, commits).
func (m *state) coordinator(ctx context.Context) (*conn.Conn, string, error) {
	return m.coordinatorConn(ctx, "")
}

// joinCoordinator returns this member's own connection to the coordinator
// for JoinGroup and SyncGroup, which the broker holds until the whole
// group has joined: queued behind them, the heartbeats of other members of
// the same client would stall until their sessions expired.
func (m *state) joinCoordinator(ctx context.Context) (*conn.Conn, string, error) {
	return m.coordinatorConn(ctx, m.owner)
}

func (m *state) coordinatorConn(ctx context.Context, owner string) (*conn.Conn, string, error) {
	b, err := m.meta.Coordinator(ctx, meta.GroupCoordinator, m.cfg.Group)
	if err != nil {
		if fatalCode(errs.Code(err)) || refusedLogin(err) { // GROUP_AUTHORIZATION_FAILED, bad credentials
			return nil, "", fmt.Errorf("%w: %w", ErrFatal, err)
		}
		return nil, "", err
	}
	c, err := m.pool.GetOwned(ctx, b.Addr(), conn.Group, owner)
	if err != nil {
		m.meta.InvalidateCoordinator(meta.GroupCoordinator, m.cfg.Group)
		if refusedLogin(err) {
			return nil, "", fmt.Errorf("%w: %w", ErrFatal, err)
		}
		return nil, "", err
	}
	return c, b.Addr(), nil
}

// groupErr turns a group API error code into an error, forgetting the
// coordinator when it moved.
func (m *state) groupErr(api string, code int16, addr string) error {
	m.meta.HandleCoordinatorError(meta.GroupCoordinator, m.cfg.Group, code)
	e := errs.FromCode(code, addr, "").(*errs.Error)
	e.Detail = fmt.Sprintf("%s for group %q", api, m.cfg.Group)
	if fatalCode(code) {
		return fmt.Errorf("%w: %w", ErrFatal, e)
	}
	return e
}

// refusedLogin reports a connection the cluster will not accept however
// often it is dialed: SASL credentials refused, a TLS certificate not
// trusted.
func refusedLogin(err error) bool {
	return errors.Is(err, errs.ErrAuthentication) || errors.Is(err, errs.ErrTLSVerification)
}

// fatalCode reports the group error codes no retry can fix.
func fatalCode(code int16) bool {
	switch code {
	case errs.CodeFencedInstanceId, errs.CodeGroupAuthorizationFailed, errs.CodeTopicAuthorizationFailed,
		errs.CodeClusterAuthorizationFailed, errs.CodeInvalidGroupId:
		return true
	}
	return false
}

// subscription returns the topics to subscribe to now.
func (m *Member) subscription() []string {
	if m.cfg.Regex == nil {
		return slices.Clone(m.cfg.Topics)
	}
	var out []string
	if s := m.meta.Current(); s != nil {
		for name, t := range s.Topics {
			if !t.Internal && m.cfg.Regex.MatchString(name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// checkMetadata rejoins when the subscribed topics changed since the last
// join (a regex now matches another topic) or, on the member that made
// the assignment, when a partition count differs from the one its plan
// used (a topic grew), as the Java client does. A follower does not watch
// counts: its first join often comes before its client loaded the topics,
// so counts of 0 then "changed" at the next refresh and every new member
// rejoined once. It runs on every metadata change and once more when a
// rebalance ends, since a change seen mid-rebalance is not seen again.
func (m *Member) checkMetadata() {
	names := strings.Join(m.subscription(), ",")
	m.mu.Lock()
	stable, subscribed, planned := m.stable, m.subscribed, m.planned
	m.mu.Unlock()
	if !stable {
		return
	}
	if names != subscribed {
		m.log.Info("keel: subscribed topics changed; rejoining the group", "was", subscribed, "now", names)
		m.RequestRejoin()
		return
	}
	if topic, was, now, ok := m.countChanged(planned); ok {
		m.log.Info("keel: a subscribed topic's partition count changed; rejoining the group",
			"topic", topic, "assigned", was, "now", now)
		m.RequestRejoin()
	}
}

// countChanged returns a topic of planned whose partition count in the
// current metadata differs from the count the plan assigned. The plan
// loaded every topic it counts, so one the metadata no longer holds was
// deleted: a change too (its partitions must be revoked).
func (m *Member) countChanged(planned map[string]int32) (topic string, was, now int32, ok bool) {
	s := m.meta.Current()
	if s == nil {
		return "", 0, 0, false
	}
	for t, n := range planned {
		got := int32(0) // absent or refused: deleted
		if mt := s.Topics[t]; mt != nil {
			got = int32(len(mt.Partitions))
		}
		if got != n {
			return t, n, got, true
		}
	}
	return "", 0, 0, false
}

func clonePartitions(p Partitions) Partitions {
	out := make(Partitions, len(p))
	for t, ps := range p {
		out[t] = slices.Clone(ps)
	}
	return out
}

func isEmpty(p Partitions) bool {
	for _, ps := range p {
		if len(ps) > 0 {
			return false
		}
	}
	return true
}

// Fenced is a commit's report that the coordinator refused this member in
// generation gen (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION): as after such a
// heartbeat answer, Run reports the partitions lost, forgets the
// generation and rejoins. A report for a generation the member already
// left is ignored.
func (m *Member) Fenced(gen int32, cause error) {
	m.mu.Lock()
	current := gen >= 0 && gen == m.generation
	m.mu.Unlock()
	if !current {
		return
	}
	select {
	case m.lost <- lostSignal{gen, cause}:
	default: // a loss is pending already
	}
}
