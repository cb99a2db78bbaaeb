package keel

import (
	"context"
	"errors"

	"github.com/keel-go/keel/internal/errs"

	"github.com/keel-go/keel/internal/fetch"
)

// Consumer reads partitions directly, without a group: the caller says
// which partitions and where to start, and tracks its own positions.
type Consumer struct {
	client  *Client
	fetcher *fetch.Of[Message]
}

// ConsumerOption configures a Consumer. Of the group options, these apply:
// ResetOffset, ReadCommitted, FetchMaxWait and MaxBufferedFetchBytes.
type ConsumerOption = GroupOption

// NewConsumer returns a consumer reading through client.
func NewConsumer(client *Client, opts ...ConsumerOption) (*Consumer, error) {
	if client == nil {
		return nil, &ConfigError{Option: "client", Problem: "nil client", Fix: "pass the *Client from NewClient"}
	}
	cfg := applyGroupOptions(opts)
	if cfg.fetchMaxWait <= 0 || cfg.maxBufferedBytes < int64(cfg.partitionMaxBytes) {
		return nil, cfg.validate("direct", []string{"-"}, directKind)
	}
	return &Consumer{client: client, fetcher: newFetcher(client, cfg.fetchConfig(client))}, nil
}

// Assign starts reading tp at start (AtEarliest, AtLatest, AtOffset,
// AtTime). Assigning a partition again moves it. An unusable start (a
// negative AtOffset) or partition is refused with an error matching
// ErrInvalidConfig, and nothing changes.
func (c *Consumer) Assign(tp TopicPartition, start StartOffset) error {
	if err := start.check("Consumer.Assign", tp); err != nil {
		return err
	}
	if !start.time.IsZero() {
		c.fetcher.AssignAtTime(tp, start.time)
		return nil
	}
	c.fetcher.Assign(tp, fetch.At(start.at))
	return nil
}

// Unassign stops reading partitions and drops what was fetched for them.
func (c *Consumer) Unassign(tps ...TopicPartition) { c.fetcher.Unassign(tps...) }

// Pause stops fetching partitions until Resume.
func (c *Consumer) Pause(tps ...TopicPartition) { c.fetcher.Pause(tps...) }

// Resume resumes fetching paused partitions.
func (c *Consumer) Resume(tps ...TopicPartition) { c.fetcher.Resume(tps...) }

// Seek moves tp to start, dropping what was fetched beyond it. An unusable
// start is refused as by Assign.
func (c *Consumer) Seek(tp TopicPartition, start StartOffset) error {
	if err := start.check("Consumer.Seek", tp); err != nil {
		return err
	}
	if !start.time.IsZero() {
		c.fetcher.AssignAtTime(tp, start.time)
		return nil
	}
	c.fetcher.Seek(tp, fetch.At(start.at))
	return nil
}

// Position returns the next offset Poll will return for tp.
func (c *Consumer) Position(tp TopicPartition) (int64, bool) {
	o, ok := c.fetcher.Position(tp)
	return o.At, ok
}

// Poll waits under ctx for records and returns them, in offset order per
// partition. A partition that cannot be read (out of range with
// ResetNone, corrupt data) is reported once in the error, joined with the
// others, and stops until Seek.
func (c *Consumer) Poll(ctx context.Context) ([]*Message, error) {
	if ctx == nil {
		return nil, errs.NilContext("Consumer.Poll")
	}
	fs, err := c.fetcher.Poll(ctx, 0)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, f := range fs {
		n += len(f.Records)
	}
	var out []*Message
	if n > 0 {
		out = make([]*Message, 0, n)
	}
	var problems []error
	for _, f := range fs {
		for i := range f.Records {
			out = append(out, &f.Records[i])
		}
		if f.Err != nil {
			problems = append(problems, f.Err)
		}
	}
	return out, errors.Join(problems...)
}

// Close stops fetching and waits for the consumer's goroutines.
func (c *Consumer) Close(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("Consumer.Close")
	}
	c.fetcher.Close()
	return nil
}
