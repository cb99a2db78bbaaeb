package retry

import (
	"context"
	"errors"
	"fmt"

	"github.com/keel-go/keel/internal/errs"

	"github.com/keel-go/keel"
)

// Consumer is a GroupConsumer subscribed to source topics and their retry
// topics, with a Policy around its handler: the one-call way to consume
// with retries.
//
//	c, err := retry.NewGroupConsumer(client, "billing", []string{"orders"},
//		retry.Tiers(time.Second, 10*time.Second, time.Minute), retry.MaxAttempts(4),
//		retry.CreateMissingTopics(-1, nil))
//	...
//	err = c.Run(ctx, keel.HandlerFunc(handle))
//	...
//	c.Close(ctx)
type Consumer struct {
	policy *Policy
	group  *keel.GroupConsumer
}

// NewGroupConsumer returns a member of group consuming topics with the
// retry policy opts describe (GroupOptions passes options on to the
// GroupConsumer).
func NewGroupConsumer(client *keel.Client, group string, topics []string, opts ...Option) (*Consumer, error) {
	p, err := NewPolicy(client, group, topics, opts...)
	if err != nil {
		return nil, err
	}
	gopts := append(append([]keel.GroupOption(nil), p.cfg.groupOpts...), p.GroupConsumerOptions()...)
	g, err := keel.NewGroupConsumer(client, group, p.Topics(), gopts...)
	if err != nil {
		p.Close(context.Background())
		return nil, err
	}
	return &Consumer{policy: p, group: g}, nil
}

// Run checks (and with CreateMissingTopics creates) the retry and
// dead-letter topics, then handles records with h under the policy until
// ctx ends or Close is called; see keel.GroupConsumer.Run.
func (c *Consumer) Run(ctx context.Context, h keel.Handler) error {
	if ctx == nil {
		return errs.NilContext("retry.Consumer.Run")
	}
	if h == nil {
		return &keel.ConfigError{Option: "Run", Problem: "nil handler", Fix: "pass a Handler or HandlerFunc"}
	}
	if err := c.policy.EnsureTopics(ctx); err != nil {
		return err
	}
	return c.group.Run(ctx, c.policy.Wrap(c.group, h))
}

// Close closes the group consumer — records waiting out a retry-after are
// given up at once, unprocessed, for the next owner; handlers at work
// finish within ctx — and then the policy's producer.
func (c *Consumer) Close(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("retry.Consumer.Close")
	}
	var problems []error
	if err := c.group.Close(ctx); err != nil {
		problems = append(problems, err)
	}
	if err := c.policy.Close(ctx); err != nil {
		problems = append(problems, fmt.Errorf("retry: closing the producer: %w", err))
	}
	return errors.Join(problems...)
}

// Group returns the underlying GroupConsumer (for Assigned, Commit, ...).
func (c *Consumer) Group() *keel.GroupConsumer { return c.group }

// Policy returns the consumer's retry policy.
func (c *Consumer) Policy() *Policy { return c.policy }
