package keel

import (
	"context"
	"errors"
	"sync"

	"github.com/keel-go/keel/internal/errs"

	"github.com/keel-go/keel/internal/fetch"
)

// Consumer reads partitions directly, without a group: the caller says
// which partitions and where to start, and tracks its own positions.
type Consumer struct {
	client  *Client
	fetcher *fetch.Of[Message]
	events  *consumerEvents
	watch   *consumeWatch // lag and partition stalls (consumer_watch.go)
	closed  sync.Once
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
	c := &Consumer{client: client, fetcher: newFetcher(client, cfg.fetchConfig(client))}
	c.events = newConsumerEvents(client)
	c.watch = newConsumeWatch(client, "", c.events, c.partitionStats)
	c.watch.start()
	return c, nil
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
	for {
		out, err := c.poll(ctx)
		if len(out) > 0 || err != nil {
			return out, err
		}
		// Only positions moved (past commit markers or aborted
		// transactions; Position shows it): wait for records.
	}
}

func (c *Consumer) poll(ctx context.Context) ([]*Message, error) {
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
	c.closed.Do(func() {
		c.watch.stop()
		c.fetcher.Close()
		c.events.close()
	})
	return nil
}

// partitionStats samples the assigned partitions: without a group, the
// position is where Poll continues (what was handed out counts as
// processed) and nothing is committed.
func (c *Consumer) partitionStats() []PartitionStats {
	var out []PartitionStats
	c.fetcher.Partitions(func(pi fetch.PartitionInfo) {
		out = append(out, PartitionStats{TopicPartition: pi.TP, HighWatermark: pi.HighWatermark, Position: pi.Position.At,
			Committed: -1, Lag: lagOf(pi.HighWatermark, pi.Position.At), CommittedLag: -1, FetchState: pi.State, Paused: pi.Paused})
	})
	sortPartitionStats(out)
	return out
}

// Stats returns a snapshot of the consumer's partitions (high watermark,
// position, lag, fetch state, paused, stalled) and what it has buffered.
// Call it for metrics (every few seconds), not per record.
func (c *Consumer) Stats() ConsumerStats {
	s := ConsumerStats{BufferedBytes: c.fetcher.Buffered(), Partitions: c.partitionStats()}
	stalled := c.watch.stalled()
	for i := range s.Partitions {
		s.Partitions[i].Stalled = stalled[s.Partitions[i].TopicPartition]
	}
	return s
}

// Events returns the consumer's operational events: Stall (a partition
// whose position has not moved for StallAfter while it has lag) and the
// client's connection events. It never makes the consumer wait: an event
// that finds it full is dropped, and EventsDropped says how many once
// there is room. It is closed by Close.
func (c *Consumer) Events() <-chan Event { return c.events.ch }
