package keel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/share"
	"github.com/keel-go/keel/internal/wait"
)

// ShareConsumer is one member of a share group (KIP-932, Kafka 4.1+): a
// queue over Kafka topics. Any number of members may read the same
// partition; the broker hands each record to one member at a time, under
// an acquisition lock, and the member acknowledges it:
//
//   - accept: processed, never delivered again;
//   - release: delivered again, to any member, with its DeliveryCount one
//     higher (the broker archives it after its delivery limit, 5 by
//     default);
//   - reject: cannot be processed, never delivered again;
//   - renew: still being processed; restart the lock (KIP-1222, Kafka
//     4.2+).
//
// A record whose lock runs out unacknowledged (its member crashed, hung
// or lost its connection) goes back to the queue. Delivery is therefore
// at least once, with no order, even within a partition. See
// docs/GROUPS.md for when to choose a share group over a consumer group.
//
// Run processes records with a handler and acknowledges by its result;
// Poll hands records out for explicit acknowledgement. A consumer uses one
// of the two.
type ShareConsumer struct {
	client *Client
	group  string
	topics []string
	cfg    shareConfig

	mu       sync.Mutex
	member   *share.Consumer
	mode     string // "" until Run or Poll, then "Run" or "Poll"
	closed   bool
	ranOnce  bool
	stopping chan struct{} // closed by Close
	// Run's handlers: their ctx, cancelled with ErrConsumerClosed when
	// Close runs out of time, and the count of workers still running.
	cancelHandlers context.CancelCauseFunc
	workers        sync.WaitGroup
}

// AckType is how a share group record is acknowledged.
type AckType int8

const (
	// AckAccept: processed; never delivered again.
	AckAccept = AckType(share.Accept)
	// AckRelease: not processed; delivered again with its delivery
	// count one higher.
	AckRelease = AckType(share.Release)
	// AckReject: cannot be processed; never delivered again.
	AckReject = AckType(share.Reject)
	// AckRenew: still being processed; restart the acquisition lock. The
	// record still needs one of the three above.
	AckRenew = AckType(share.Renew)
)

// String names the acknowledgement as Kafka does (ACCEPT, RELEASE, ...).
func (a AckType) String() string { return share.AckType(a).String() }

// ShareAckResult is the broker's answer to the acknowledgements of one
// partition's records sent in one request.
type ShareAckResult struct {
	TopicPartition
	Type    AckType
	Offsets []int64
	// Err is nil when the broker applied the acknowledgements. Otherwise
	// they were not applied (or not known to be): the records go back to
	// the queue when their locks run out, if they have not already.
	Err error
}

// Errors of share consumers.
var (
	// ErrShareRecordNotHeld: the consumer does not hold the record: it
	// was acknowledged already, or its acquisition was lost (the share
	// session with its broker was reset, the member was fenced), in
	// which case the broker delivers it again.
	ErrShareRecordNotHeld = share.ErrNotHeld
	// ErrAcquisitionLost: an acknowledgement was not sent because the
	// record's acquisition had ended (session reset, fenced, closed); the
	// broker delivers the record again.
	ErrAcquisitionLost = share.ErrAcquisitionLost
	// ErrRenewUnsupported: the broker cannot renew acquisition locks
	// (KIP-1222, Kafka 4.2+).
	ErrRenewUnsupported = share.ErrRenewUnsupported
)

// NewShareConsumer returns a member of share group group subscribed to
// topics. It joins the group when Run or Poll is first called. Invalid
// options give an error matching ErrInvalidConfig.
//
// A share group starts reading a partition it never read at the
// partition's end, unless its share.auto.offset.reset group config says
// earliest (admin.AlterShareGroupConfigs) or its start offsets were set
// (admin.AlterShareGroupOffsets).
func NewShareConsumer(client *Client, group string, topics []string, opts ...ShareOption) (*ShareConsumer, error) {
	if client == nil {
		return nil, &ConfigError{Option: "client", Problem: "nil client", Fix: "pass the *Client from NewClient"}
	}
	cfg := applyShareOptions(opts)
	if err := cfg.validate(group, topics); err != nil {
		return nil, err
	}
	topics = slices.Clone(topics)
	slices.Sort(topics)
	return &ShareConsumer{
		client:   client,
		group:    group,
		topics:   slices.Compact(topics),
		cfg:      cfg,
		stopping: make(chan struct{}),
	}, nil
}

// start joins the group for mode, once; Run and Poll do not mix.
func (s *ShareConsumer) start(mode string) (*share.Consumer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrConsumerClosed
	}
	if s.mode != "" {
		if s.mode != mode {
			return nil, fmt.Errorf("keel: share consumer already used with %s; Run and Poll do not mix", s.mode)
		}
		return s.member, nil
	}
	s.mode = mode
	cfg := share.Config{
		Group:             s.group,
		Topics:            s.topics,
		Rack:              s.cfg.rack,
		MaxRecords:        s.cfg.maxRecords,
		MaxWait:           s.cfg.maxWait,
		MaxBytes:          50 << 20,
		PartitionMaxBytes: 1 << 20,
		AutoRenew:         mode == "Run",
		Backoff:           wait.Backoff{Min: 100 * time.Millisecond, Max: time.Second},
		Logger:            s.client.logger,
	}
	if fn := s.cfg.onAcked; fn != nil {
		cfg.OnAcked = func(r share.AckResult) {
			fn(ShareAckResult{TopicPartition: TopicPartition{Topic: r.Topic, Partition: r.Partition}, Type: AckType(r.Type), Offsets: r.Offsets, Err: r.Err})
		}
	}
	s.member = share.New(cfg, s.client.pool, s.client.meta)
	s.member.Start()
	return s.member, nil
}

// MemberID is the id this member has in the group, generated by keel (as
// KIP-932 has clients do); empty before Run or Poll.
func (s *ShareConsumer) MemberID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.member == nil {
		return ""
	}
	return s.member.MemberID()
}

// Assigned returns the partitions the group currently has this member
// read (in a share group, other members may read them too).
func (s *ShareConsumer) Assigned() []TopicPartition {
	s.mu.Lock()
	m := s.member
	s.mu.Unlock()
	if m == nil {
		return nil
	}
	var out []TopicPartition
	for _, tp := range m.Assigned() {
		out = append(out, TopicPartition{Topic: tp.Topic, Partition: tp.Partition})
	}
	return out
}

// LockTimeout is the brokers' acquisition lock duration, as the last
// fetch answer said (30s, Kafka's default, before one): a record held
// longer than this without a renewal goes to another member.
func (s *ShareConsumer) LockTimeout() time.Duration {
	s.mu.Lock()
	m := s.member
	s.mu.Unlock()
	if m == nil {
		return 30 * time.Second
	}
	return m.LockTimeout()
}

// Poll waits under ctx for records and returns those fetched so far.
// Each must be acknowledged (Accept, Release, Reject) before its lock
// runs out, or renewed (Renew); a record left unacknowledged goes back to
// the queue when its lock runs out, or when the consumer closes.
// Acknowledgements travel with the next fetch, or at once with Flush.
func (s *ShareConsumer) Poll(ctx context.Context) ([]*Message, error) {
	if ctx == nil {
		return nil, errs.NilContext("ShareConsumer.Poll")
	}
	m, err := s.start("Poll")
	if err != nil {
		return nil, err
	}
	recs, err := m.Take(ctx, 0)
	if errors.Is(err, errs.ErrClosed) {
		err = ErrConsumerClosed
	}
	if err != nil {
		return nil, err
	}
	return shareMessages(recs), nil
}

// shareMessages turns acquired records into Messages, in one allocation.
func shareMessages(recs []share.Record) []*Message {
	msgs := make([]Message, len(recs))
	out := make([]*Message, len(recs))
	for i := range recs {
		fillShareMessage(&msgs[i], &recs[i])
		out[i] = &msgs[i]
	}
	return out
}

func fillShareMessage(m *Message, r *share.Record) {
	m.Topic = r.Topic
	m.Partition = r.Partition
	m.Key = r.Key
	m.Value = r.Value
	m.Headers = r.Headers
	m.Timestamp = time.UnixMilli(r.Timestamp)
	m.Offset = r.Offset
	m.leaderEpoch = -1
	m.deliveryCount = r.DeliveryCount
}

// Accept acknowledges records as processed: they are never delivered
// again.
func (s *ShareConsumer) Accept(msgs ...*Message) error { return s.Acknowledge(AckAccept, msgs...) }

// Release gives records back unprocessed: they are delivered again (to
// any member) with their delivery count one higher.
func (s *ShareConsumer) Release(msgs ...*Message) error { return s.Acknowledge(AckRelease, msgs...) }

// Reject acknowledges records as impossible to process: they are never
// delivered again.
func (s *ShareConsumer) Reject(msgs ...*Message) error { return s.Acknowledge(AckReject, msgs...) }

// Renew restarts the acquisition locks of records still being processed
// (KIP-1222, Kafka 4.2+; ErrRenewUnsupported otherwise). They stay held
// and still need Accept, Release or Reject.
func (s *ShareConsumer) Renew(msgs ...*Message) error { return s.Acknowledge(AckRenew, msgs...) }

// Acknowledge acknowledges records, which must be ones Poll returned, as
// typ. A record the consumer does not hold (acknowledged already, or its
// acquisition was lost) gives an error matching ErrShareRecordNotHeld;
// the others are acknowledged all the same.
func (s *ShareConsumer) Acknowledge(typ AckType, msgs ...*Message) error {
	s.mu.Lock()
	m := s.member
	s.mu.Unlock()
	if m == nil {
		return fmt.Errorf("keel: nothing to acknowledge before Poll or Run: %w", ErrShareRecordNotHeld)
	}
	var problems []error
	for _, msg := range msgs {
		if msg == nil {
			problems = append(problems, errors.New("keel: a nil *Message cannot be acknowledged"))
			continue
		}
		if err := m.Ack(share.TP{Topic: msg.Topic, Partition: msg.Partition}, msg.Offset, share.AckType(typ)); err != nil {
			problems = append(problems, err)
		}
	}
	return errors.Join(problems...)
}

// Flush sends the acknowledgements made so far at once, rather than with
// the next fetch, and waits under ctx for the brokers' answers. It
// returns the acknowledgement failures reported meanwhile (also passed to
// OnShareAcknowledged), joined.
func (s *ShareConsumer) Flush(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("ShareConsumer.Flush")
	}
	s.mu.Lock()
	m := s.member
	s.mu.Unlock()
	if m == nil {
		return nil
	}
	return m.Flush(ctx)
}

// Close stops fetching, lets Run's handlers finish the record they are on
// (until ctx ends; then their ctx is cancelled with ErrConsumerClosed),
// sends the pending acknowledgements with the request that closes each
// share session — the brokers release at once whatever the member still
// holds, so other members get it — leaves the group (a heartbeat with
// member epoch -1) and stops every goroutine. It returns when ctx ends at
// the latest. Calling Close again returns nil.
func (s *ShareConsumer) Close(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("ShareConsumer.Close")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stopping)
	m := s.member
	cancelHandlers := s.cancelHandlers
	s.mu.Unlock()
	if m == nil {
		return nil
	}
	m.StopFetching()
	var problems []error
	done := make(chan struct{})
	go func() { s.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if cancelHandlers != nil {
			cancelHandlers(ErrConsumerClosed)
		}
		problems = append(problems, errors.New("keel: share consumer handlers did not return before ctx ended; their records go back to the queue"))
	}
	if err := m.Close(ctx); err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("keel: closing share consumer of group %q: %w", s.group, errors.Join(problems...))
	}
	return nil
}
