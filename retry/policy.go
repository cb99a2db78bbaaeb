package retry

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/errs"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/clientlink"
)

// Policy is the retry configuration of one consumer group's source
// topics. Wrap turns a Handler into one that retries failed records
// through retry topics (or in place, with Blocking) and dead-letters the
// ones that keep failing, so that every record ends either handled or in
// the dead-letter topic. A Policy is safe for concurrent use by every
// worker of a GroupConsumer.
type Policy struct {
	client  *keel.Client
	group   string
	sources []string
	cfg     config
	delays  []time.Duration
	roles   map[string]role // consumed topic → what it is
	send    sender
	own     *keel.Producer // made by NewPolicy; closed by Close
	logger  *slog.Logger

	closeOnce sync.Once
	closing   chan struct{} // closed by Close: waits give their records up
}

// role is what a consumed topic is to the policy.
type role struct {
	source string
	tier   int // 0 for the source topic itself
}

// sender is the part of *keel.Producer the policy uses (a fake in unit
// tests).
type sender interface {
	Produce(ctx context.Context, m *keel.Message, deliveries chan<- keel.Delivery)
}

// NewPolicy returns the retry policy for group's handling of the source
// topics. It makes a producer on client (acks from all replicas,
// idempotent) unless WithProducer gives one. Invalid options give an error
// matching keel.ErrInvalidConfig.
func NewPolicy(client *keel.Client, group string, topics []string, opts ...Option) (*Policy, error) {
	if client == nil {
		return nil, &keel.ConfigError{Option: "retry client", Problem: "nil client", Fix: "pass the *keel.Client from keel.NewClient"}
	}
	p, err := newPolicy(client, group, topics, opts)
	if err != nil {
		return nil, err
	}
	if p.cfg.producer != nil {
		p.send = p.cfg.producer
	} else {
		prod, err := keel.NewProducer(client)
		if err != nil {
			return nil, fmt.Errorf("retry: making the policy's producer: %w", err)
		}
		p.own, p.send = prod, prod
	}
	return p, nil
}

// newPolicy builds a Policy without its producer (unit tests give it a
// fake one).
func newPolicy(client *keel.Client, group string, topics []string, opts []Option) (*Policy, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := cfg.validate(group, topics); err != nil {
		return nil, err
	}
	p := &Policy{
		client:  client,
		group:   group,
		sources: slices.Clone(topics),
		cfg:     cfg,
		delays:  cfg.delays(),
		roles:   make(map[string]role),
		closing: make(chan struct{}),
		logger:  cfg.logger,
	}
	if err := p.name(); err != nil {
		return nil, err
	}
	if p.logger == nil {
		if in, ok := clientlink.Of(client); ok && in.Logger != nil {
			p.logger = in.Logger
		} else {
			p.logger = slog.New(slog.DiscardHandler)
		}
	}
	return p, nil
}

// name works out every topic's role and checks the names.
func (p *Policy) name() error {
	seen := make(map[string]string)
	claim := func(topic, what string) error {
		if err := validTopic(topic); err != nil {
			return &keel.ConfigError{Option: "retry topic names", Problem: fmt.Sprintf("%s: %v", what, err), Fix: "fix RetryTopicName or DeadLetterTopicName"}
		}
		if prev, dup := seen[topic]; dup {
			return &keel.ConfigError{Option: "retry topic names", Problem: fmt.Sprintf("%q is both %s and %s", topic, prev, what), Fix: "give every source, retry and dead-letter topic its own name"}
		}
		seen[topic] = what
		return nil
	}
	for _, s := range p.sources {
		if err := claim(s, "a source topic"); err != nil {
			return err
		}
		p.roles[s] = role{source: s}
	}
	for _, s := range p.sources {
		if !p.cfg.blocking {
			for i := range p.delays {
				t := p.cfg.retryName(s, i+1)
				if err := claim(t, fmt.Sprintf("retry topic %d of %s", i+1, s)); err != nil {
					return err
				}
				p.roles[t] = role{source: s, tier: i + 1}
			}
		}
		if err := claim(p.cfg.dltName(s), "the dead-letter topic of "+s); err != nil {
			return err
		}
	}
	return nil
}

// Topics returns what the group must subscribe to: the source topics and,
// unless Blocking, their retry topics.
func (p *Policy) Topics() []string {
	out := slices.Clone(p.sources)
	for _, s := range p.sources {
		out = append(out, p.RetryTopics(s)...)
	}
	return out
}

// RetryTopics returns source's retry topics, one per delay tier, in order
// (none with Blocking).
func (p *Policy) RetryTopics(source string) []string {
	if p.cfg.blocking {
		return nil
	}
	out := make([]string, len(p.delays))
	for i := range p.delays {
		out[i] = p.cfg.retryName(source, i+1)
	}
	return out
}

// DeadLetterTopic returns source's dead-letter topic.
func (p *Policy) DeadLetterTopic(source string) string { return p.cfg.dltName(source) }

// Delays returns the delay of each tier: tier n (from 1) waits
// Delays()[n-1].
func (p *Policy) Delays() []time.Duration { return slices.Clone(p.delays) }

// GroupConsumerOptions returns what a GroupConsumer running the policy's
// handler needs: partitions of the retry topics without a committed offset
// start at their earliest record whatever ResetOffset says for the source
// topics. With "latest" there, a retry record written to a partition no
// member has committed on yet — say, one waiting out its retry-after when
// its partition moves — would be skipped by the next owner.
// NewGroupConsumer adds these itself; pass them to keel.NewGroupConsumer
// (after your own options) when you use Wrap.
func (p *Policy) GroupConsumerOptions() []keel.GroupOption {
	var retries []string
	for _, s := range p.sources {
		retries = append(retries, p.RetryTopics(s)...)
	}
	if len(retries) == 0 {
		return nil
	}
	return []keel.GroupOption{keel.ResetOffsetFor(keel.ResetEarliest, retries...)}
}

// Group returns the consumer group the policy was made for.
func (p *Policy) Group() string { return p.group }

// Close makes records waiting out their retry-after (or, with Blocking,
// their backoff) give up at once, unprocessed, and closes the policy's own
// producer within ctx. Call it after the GroupConsumer's Close began, or
// use Consumer, which does both in order. Called while the consumer still
// runs, it moves no record on any more: waiting records are held,
// unprocessed, until the consumer closes or their partitions move.
func (p *Policy) Close(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("retry.Policy.Close")
	}
	p.stopWaiting()
	if p.own != nil {
		return p.own.Close(ctx)
	}
	return nil
}

func (p *Policy) stopWaiting() { p.closeOnce.Do(func() { close(p.closing) }) }

// next decides where a record goes after attempt failed with err: the
// retry tier (from 1) and its delay, or the dead-letter topic with a
// reason.
func (p *Policy) next(attempt int, err error) (tier int, delay time.Duration, deadWhy string) {
	if p.cfg.permanent(err) {
		return 0, 0, ReasonPermanent
	}
	if attempt >= p.cfg.maxAttempts || len(p.delays) == 0 {
		return 0, 0, ReasonExhausted
	}
	tier = min(attempt, len(p.delays))
	return tier, p.delays[tier-1], ""
}
