package keel

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/keel-go/keel/internal/fetch"
	"github.com/keel-go/keel/internal/group/assign"
)

// GroupOption configures a GroupConsumer. NewGroupConsumer checks them
// together.
type GroupOption func(*groupConfig)

type groupConfig struct {
	protocol          string
	serverAssignor    string
	assignors         []string
	assignorsSet      bool
	sessionTimeout    time.Duration
	rebalanceTimeout  time.Duration
	heartbeatInterval time.Duration
	instanceID        string
	regex             *regexp.Regexp
	rack              string
	reset             OffsetReset
	topicReset        map[string]OffsetReset // ResetOffsetFor: overrides reset per topic
	readCommitted     bool
	autoCommit        time.Duration
	onAssigned        func([]TopicPartition)
	onRevoked         func([]TopicPartition)
	onLost            func([]TopicPartition)
	onError           func(*Message, error) HandlerAction
	maxConcurrency    int
	order             Order
	perPartition      int
	parallelTotal     int
	parallelSet       bool
	blockOnPoll       bool
	fetchMaxWait      time.Duration
	fetchMaxBytes     int32
	partitionMaxBytes int32
	maxBufferedBytes  int64
	queueRecords      int
	eos               *eosConfig // ExactlyOnce
}

func defaultGroupConfig() groupConfig {
	return groupConfig{
		protocol:          ClassicProtocol,
		assignors:         []string{assign.CooperativeStickyName},
		sessionTimeout:    45 * time.Second, // Java session.timeout.ms
		rebalanceTimeout:  5 * time.Minute,  // Java max.poll.interval.ms
		heartbeatInterval: 3 * time.Second,  // Java heartbeat.interval.ms
		reset:             ResetLatest,      // Java auto.offset.reset
		autoCommit:        5 * time.Second,  // Java auto.commit.interval.ms
		fetchMaxWait:      500 * time.Millisecond,
		fetchMaxBytes:     50 << 20,
		partitionMaxBytes: 1 << 20,
		maxBufferedBytes:  64 << 20,
		queueRecords:      1000,
	}
}

// Assignors sets the partition assignors offered to the group, by name, in
// order of preference: "cooperative-sticky" (the default), "sticky",
// "range", "roundrobin". They interoperate with the Java client and
// librdkafka, which use the same names and formats.
func Assignors(names ...string) GroupOption {
	return func(c *groupConfig) { c.assignors, c.assignorsSet = names, true }
}

// The group protocols (Java's group.protocol), for GroupProtocol.
const (
	// ClassicProtocol: JoinGroup/SyncGroup, the assignment computed by
	// a member with the Assignors; every Kafka version. The default.
	ClassicProtocol = "classic"
	// ConsumerProtocol: KIP-848 (Kafka 4.0+), ConsumerGroupHeartbeat
	// with the assignment computed by the coordinator (ServerAssignor).
	// Rebalances are incremental and involve only the members whose
	// partitions move. docs/GROUPS.md compares the two.
	ConsumerProtocol = "consumer"
)

// GroupProtocol picks the group protocol: ClassicProtocol (the default)
// or ConsumerProtocol. Under ConsumerProtocol the coordinator decides the
// session timeout and heartbeat interval (group.consumer.session.timeout.ms,
// group.consumer.heartbeat.interval.ms; SessionTimeout is then unused and
// HeartbeatInterval applies only until its first answer), a SubscribeRegex
// is evaluated by the broker, and Assignors is refused (use ServerAssignor).
// Commits carry the member epoch as their generation. Run, Poll, Parallel
// and the retry package work the same under both.
func GroupProtocol(name string) GroupOption { return func(c *groupConfig) { c.protocol = name } }

// ServerAssignor names the coordinator's assignor under ConsumerProtocol
// (Java's group.remote.assignor): "uniform" or "range"; "" (the default)
// leaves it to the broker (group.consumer.assignors, uniform first).
func ServerAssignor(name string) GroupOption {
	return func(c *groupConfig) { c.serverAssignor = name }
}

// SessionTimeout is how long the group waits without heartbeats before it
// expires this member (default 45s). Classic protocol only: under
// ConsumerProtocol the broker's group.consumer.session.timeout.ms applies
// and this option is ignored, as the Java client ignores
// session.timeout.ms there.
func SessionTimeout(d time.Duration) GroupOption {
	return func(c *groupConfig) { c.sessionTimeout = d }
}

// RebalanceTimeout bounds a rebalance, including the wait for handlers of
// revoked partitions to finish (default 5m, Java's max.poll.interval.ms).
func RebalanceTimeout(d time.Duration) GroupOption {
	return func(c *groupConfig) { c.rebalanceTimeout = d }
}

// HeartbeatInterval is how often the member heartbeats (default 3s).
func HeartbeatInterval(d time.Duration) GroupOption {
	return func(c *groupConfig) { c.heartbeatInterval = d }
}

// InstanceID makes the member static (KIP-345): a restart within the
// session timeout keeps its partitions without a rebalance.
func InstanceID(id string) GroupOption { return func(c *groupConfig) { c.instanceID = id } }

// SubscribeRegex subscribes to every topic whose name matches re (in
// addition to the topics given to NewGroupConsumer), following topics as
// they are created and deleted.
func SubscribeRegex(re *regexp.Regexp) GroupOption {
	return func(c *groupConfig) { c.regex = re }
}

// Rack is this member's rack (client.rack), sent to the group.
func Rack(rack string) GroupOption { return func(c *groupConfig) { c.rack = rack } }

// ResetOffset says where a partition without a committed offset starts
// (default ResetLatest, as Java).
func ResetOffset(r OffsetReset) GroupOption { return func(c *groupConfig) { c.reset = r } }

// ResetOffsetFor overrides ResetOffset for the partitions of topics that
// have no committed offset. The retry package uses it to start retry
// topics at the earliest record whatever the source topics do: a retry
// record written before a member first resolved "latest" must not be
// skipped.
func ResetOffsetFor(r OffsetReset, topics ...string) GroupOption {
	return func(c *groupConfig) {
		if c.topicReset == nil {
			c.topicReset = make(map[string]OffsetReset)
		}
		for _, t := range topics {
			c.topicReset[t] = r
		}
	}
}

// resetFor is the reset policy of topic's partitions without a committed
// offset.
func (c *groupConfig) resetFor(topic string) OffsetReset {
	if r, ok := c.topicReset[topic]; ok {
		return r
	}
	return c.reset
}

// ReadCommitted reads only committed transactional records.
func ReadCommitted() GroupOption { return func(c *groupConfig) { c.readCommitted = true } }

// AutoCommitInterval commits processed offsets this often (default 5s); 0
// turns interval commits off (commits still happen on revoke and Close,
// and with Commit).
func AutoCommitInterval(d time.Duration) GroupOption {
	return func(c *groupConfig) { c.autoCommit = d }
}

// OnAssigned is called with partitions added to this member.
func OnAssigned(fn func([]TopicPartition)) GroupOption {
	return func(c *groupConfig) { c.onAssigned = fn }
}

// OnRevoked is called with partitions taken from this member, after their
// handlers returned and what they processed was committed. A handler that
// does not return within the rebalance timeout (it ignores its ctx) does
// not hold the rebalance longer: its partition moves on without it, and
// OnRevoked is called for that partition alone once the handler returns
// — never before — from the goroutine that ran it, so possibly beside
// other callbacks. What that handler finishes is not committed by this
// member (the partition is another's by then): its next owner processes
// it again. A handler that never returns gets no OnRevoked. Nothing of a
// GroupPoller is waited for: its partitions' OnRevoked comes after
// AllowRebalance (with BlockRebalanceOnPoll) and the commit.
func OnRevoked(fn func([]TopicPartition)) GroupOption {
	return func(c *groupConfig) { c.onRevoked = fn }
}

// OnLost is called with partitions this member lost without a rebalance
// (fenced or expired); their offsets were not committed.
func OnLost(fn func([]TopicPartition)) GroupOption {
	return func(c *groupConfig) { c.onLost = fn }
}

// OnHandlerError decides what happens when a handler returns an error
// (default: StopPartition, after logging the error).
func OnHandlerError(fn func(m *Message, err error) HandlerAction) GroupOption {
	return func(c *groupConfig) { c.onError = fn }
}

// MaxConcurrency bounds how many handlers run at once across partitions
// (default: one per assigned partition, or Parallel's per-partition limit
// for each). With Parallel it is the same bound as its total.
func MaxConcurrency(n int) GroupOption { return func(c *groupConfig) { c.maxConcurrency = n } }

// Order is which records of a partition a GroupConsumer may process at
// the same time.
type Order int8

const (
	// PartitionOrder processes a partition's records one at a time, in
	// offset order: the default.
	PartitionOrder Order = iota
	// KeyOrder processes records with different keys at the same time
	// and records with the same key one after another, in offset order.
	// Records without a key (nil Key) count as one key of their own:
	// they are processed one after another, in offset order, beside the
	// keyed ones. (An empty, non-nil key is a key like any other.)
	KeyOrder
	// NoOrder processes any records of a partition at the same time.
	NoOrder
)

func (o Order) String() string {
	switch o {
	case PartitionOrder:
		return "PartitionOrder"
	case KeyOrder:
		return "KeyOrder"
	case NoOrder:
		return "NoOrder"
	}
	return fmt.Sprintf("Order(%d)", int8(o))
}

// Parallel makes Run process up to perPartition records of each partition
// at once, in order (KeyOrder or NoOrder), and up to total across all
// partitions (0: no bound but perPartition times the partitions). Whatever
// finishes when, the committed offset of a partition is its contiguous
// processed prefix: never past a record that has not finished. Records
// processed past it are committed too, in the commit's metadata, so that
// whoever continues the partition — after a rebalance, a restart or a
// crash — skips them rather than processing them again. A partition's
// fetching pauses while its queue is full, so memory stays bounded as in
// sequential processing. docs/CONSUMING.md has the whole story.
func Parallel(order Order, perPartition, total int) GroupOption {
	return func(c *groupConfig) {
		c.order, c.perPartition, c.parallelTotal, c.parallelSet = order, perPartition, total, true
	}
}

// totalLimit is the bound on handlers running at once across partitions,
// 0 for none.
func (c *groupConfig) totalLimit() int {
	switch {
	case c.maxConcurrency > 0 && c.parallelTotal > 0:
		return min(c.maxConcurrency, c.parallelTotal)
	case c.maxConcurrency > 0:
		return c.maxConcurrency
	}
	return c.parallelTotal
}

// BlockRebalanceOnPoll holds a rebalance, once Poll has returned records,
// until AllowRebalance is called (bounded by the rebalance timeout): the
// manual pattern for processing polled records safely.
func BlockRebalanceOnPoll() GroupOption { return func(c *groupConfig) { c.blockOnPoll = true } }

// FetchMaxWait is how long a broker may hold a fetch waiting for data
// (default 500ms).
func FetchMaxWait(d time.Duration) GroupOption {
	return func(c *groupConfig) { c.fetchMaxWait = d }
}

// MaxBufferedFetchBytes bounds fetched data held before processing,
// counted decompressed (default 64 MiB).
func MaxBufferedFetchBytes(n int64) GroupOption {
	return func(c *groupConfig) { c.maxBufferedBytes = n }
}

// applyGroupOptions builds the configuration from the defaults and opts.
func applyGroupOptions(opts []GroupOption) groupConfig {
	cfg := defaultGroupConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return cfg
}

// fetchConfig is the part of the configuration the fetcher uses.
func (c *groupConfig) fetchConfig(client *Client) fetch.Config {
	return fetch.Config{
		MaxWait:           c.fetchMaxWait,
		MaxBytes:          c.fetchMaxBytes,
		PartitionMaxBytes: c.partitionMaxBytes,
		ReadCommitted:     c.readCommitted,
		Reset:             fetch.ResetPolicy(c.reset),
		MaxBufferedBytes:  c.maxBufferedBytes,
		Logger:            client.logger,
		OnPositionReset:   client.positionReset,
	}
}

// consumerKind says which consumer options are for, so that an option of
// the other kind is refused rather than ignored.
type consumerKind int8

const (
	runKind    consumerKind = iota // GroupConsumer: Run with a handler
	pollKind                       // GroupPoller: the caller polls
	directKind                     // Consumer: no group
)

func (c *groupConfig) validate(group string, topics []string, kind consumerKind) error {
	var problems []error
	bad := func(opt, problem, fix string) {
		problems = append(problems, &ConfigError{Option: opt, Problem: problem, Fix: fix})
	}
	c.validateEOS(kind, bad)
	if kind == runKind && c.blockOnPoll {
		bad("BlockRebalanceOnPoll", "given to a GroupConsumer, which has no Poll", "use it with NewGroupPoller; Run holds rebalances for its handlers itself")
	}
	if c.parallelSet {
		switch {
		case kind != runKind:
			bad("Parallel", "given to a consumer without a handler", "use it with NewGroupConsumer")
		case c.order != KeyOrder && c.order != NoOrder:
			bad("Parallel", fmt.Sprintf("order %v", c.order), "use KeyOrder or NoOrder (PartitionOrder is the default without Parallel)")
		}
		if c.perPartition < 1 {
			bad("Parallel", fmt.Sprintf("%d records per partition", c.perPartition), "allow at least 1, e.g. 64")
		}
		if c.parallelTotal < 0 {
			bad("Parallel", fmt.Sprintf("total %d", c.parallelTotal), "use 0 for no bound across partitions")
		}
	}
	if kind == pollKind {
		if c.maxConcurrency != 0 {
			bad("MaxConcurrency", "given to a GroupPoller, which calls no handlers", "use it with NewGroupConsumer")
		}
		if c.onError != nil {
			bad("OnHandlerError", "given to a GroupPoller, which calls no handlers", "use it with NewGroupConsumer")
		}
	}
	switch c.protocol {
	case ClassicProtocol:
		if c.serverAssignor != "" {
			bad("ServerAssignor", "given with the classic protocol, whose members assign", `add GroupProtocol(keel.ConsumerProtocol), or use Assignors`)
		}
	case ConsumerProtocol:
		if c.assignorsSet {
			bad("Assignors", "given with the consumer protocol, where the coordinator assigns", `use ServerAssignor("uniform") or ServerAssignor("range")`)
		}
		if c.serverAssignor != "" && c.serverAssignor != "uniform" && c.serverAssignor != "range" {
			bad("ServerAssignor", fmt.Sprintf("unknown assignor %q", c.serverAssignor), `use "uniform", "range", or "" for the broker's default`)
		}
		if c.regex != nil && len(topics) > 0 {
			bad("SubscribeRegex", "given with topic names under the consumer protocol, whose broker takes one or the other", "put the topics in the regex (a|b|prefix.*), or pass no topic names")
		}
	default:
		bad("GroupProtocol", fmt.Sprintf("unknown protocol %q", c.protocol), `use keel.ClassicProtocol or keel.ConsumerProtocol`)
	}
	if group == "" {
		bad("group", "empty group id", "pass the consumer group's name")
	}
	if len(topics) == 0 && c.regex == nil {
		bad("topics", "no topics to subscribe to", "pass topic names or SubscribeRegex")
	}
	for _, t := range topics {
		if err := ValidateTopicName(t); err != nil {
			problems = append(problems, &ConfigError{Option: "topics", Problem: err.Error(), Fix: "subscribe to legal topic names only", Err: err})
		}
	}
	if len(c.assignors) == 0 {
		bad("Assignors", "none given", `use e.g. Assignors("cooperative-sticky")`)
	}
	cooperative, eager := false, false
	for _, n := range c.assignors {
		a, ok := assign.ByName(n)
		if !ok {
			bad("Assignors", fmt.Sprintf("unknown assignor %q", n), `use "cooperative-sticky", "sticky", "range" or "roundrobin"`)
			continue
		}
		if a.Protocol() == assign.Cooperative {
			cooperative = true
		} else {
			eager = true
		}
	}
	if cooperative && eager {
		bad("Assignors", "mixes cooperative and eager assignors", "offer one kind; move a group from eager to cooperative with two rolling restarts")
	}
	if c.sessionTimeout <= 0 {
		bad("SessionTimeout", fmt.Sprintf("%v is not positive", c.sessionTimeout), "use e.g. 45*time.Second")
	}
	if c.heartbeatInterval <= 0 || c.heartbeatInterval >= c.sessionTimeout {
		bad("HeartbeatInterval", fmt.Sprintf("%v must be positive and below the session timeout (%v)", c.heartbeatInterval, c.sessionTimeout), "use about a third of the session timeout or less")
	}
	if c.rebalanceTimeout <= 0 {
		bad("RebalanceTimeout", fmt.Sprintf("%v is not positive", c.rebalanceTimeout), "use e.g. 5*time.Minute")
	}
	if c.autoCommit < 0 {
		bad("AutoCommitInterval", fmt.Sprintf("%v is negative", c.autoCommit), "use 0 to commit only on revoke, Close and Commit")
	}
	if c.maxConcurrency < 0 {
		bad("MaxConcurrency", "negative", "use 0 for one handler per partition")
	}
	if c.fetchMaxWait <= 0 {
		bad("FetchMaxWait", "not positive", "use e.g. 500*time.Millisecond")
	}
	if c.maxBufferedBytes < int64(c.partitionMaxBytes) {
		bad("MaxBufferedFetchBytes", "below one partition's fetch size", "raise it")
	}
	return errors.Join(problems...)
}
