package keel

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ShareOption configures a ShareConsumer. NewShareConsumer checks them
// together.
type ShareOption func(*shareConfig)

type shareConfig struct {
	concurrency int
	maxRecords  int
	maxWait     time.Duration
	rack        string
	onAcked     func(ShareAckResult)
}

func defaultShareConfig() shareConfig {
	return shareConfig{
		concurrency: 1,
		maxRecords:  500, // Java's max.poll.records, KIP-1206's default
		maxWait:     500 * time.Millisecond,
	}
}

// ShareConcurrency is how many handlers Run runs at once (default 1).
// Records of one partition are processed concurrently too: a share group
// gives no order.
func ShareConcurrency(n int) ShareOption { return func(c *shareConfig) { c.concurrency = n } }

// ShareMaxRecords bounds how many records the member holds at once,
// acquired and not yet acknowledged (default 500): a fetch asks for the
// room left (split between the brokers leading the member's partitions).
// Records held but not yet handed out keep their acquisition locks
// renewed, so a small value shares a backlog more evenly between members
// when handlers are slow.
func ShareMaxRecords(n int) ShareOption { return func(c *shareConfig) { c.maxRecords = n } }

// ShareFetchMaxWait is how long a broker may hold a fetch that found no
// records (default 500ms).
func ShareFetchMaxWait(d time.Duration) ShareOption { return func(c *shareConfig) { c.maxWait = d } }

// ShareRack is this member's rack, sent to the group.
func ShareRack(rack string) ShareOption { return func(c *shareConfig) { c.rack = rack } }

// OnShareAcknowledged is called with the broker's answer to every
// acknowledgement (accept, release, reject; renewals are not reported),
// per partition and request, one call at a time on a goroutine of its
// own; keep it fast. A non-nil Err means those records were not
// acknowledged as asked and will be delivered again.
func OnShareAcknowledged(fn func(ShareAckResult)) ShareOption {
	return func(c *shareConfig) { c.onAcked = fn }
}

func applyShareOptions(opts []ShareOption) shareConfig {
	cfg := defaultShareConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return cfg
}

func (c *shareConfig) validate(group string, topics []string) error {
	var problems []error
	bad := func(opt, problem, fix string) {
		problems = append(problems, &ConfigError{Option: opt, Problem: problem, Fix: fix})
	}
	if strings.TrimSpace(group) == "" {
		bad("group", fmt.Sprintf("%q is no share group id", group), "pass the share group's name")
	}
	if len(topics) == 0 {
		bad("topics", "no topics to subscribe to", "pass one or more topic names")
	}
	for _, t := range topics {
		if err := ValidateTopicName(t); err != nil {
			bad("topics", err.Error(), "subscribe to legal topic names only")
		}
	}
	if c.concurrency < 1 {
		bad("ShareConcurrency", fmt.Sprintf("%d handlers", c.concurrency), "use 1 or more")
	}
	if c.maxRecords < 1 {
		bad("ShareMaxRecords", fmt.Sprintf("%d records", c.maxRecords), "use 1 or more (default 500)")
	}
	if c.maxWait <= 0 {
		bad("ShareFetchMaxWait", fmt.Sprintf("%v is not positive", c.maxWait), "use e.g. 500*time.Millisecond")
	}
	return errors.Join(problems...)
}
