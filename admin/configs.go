package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
)

// ConfigEntry is one config of a topic.
type ConfigEntry struct {
	Name  string
	Value string // empty for a sensitive config (the broker hides it) or an unset one
	// Default: for a topic, the topic does not set this config itself; the
	// value comes from the broker's configuration or Kafka's built-in
	// default (Source says which). For a broker, the value is Kafka's
	// built-in default (DEFAULT_CONFIG).
	Default   bool
	Sensitive bool
	ReadOnly  bool
	// Source is Kafka's name for where the value comes from, such as
	// DYNAMIC_TOPIC_CONFIG (set on the topic), DYNAMIC_BROKER_CONFIG,
	// STATIC_BROKER_CONFIG or DEFAULT_CONFIG; empty from brokers older than
	// Kafka 1.1.
	Source string
}

// topicConfigs asks any one broker for the configs of topics (Java sends
// topic DescribeConfigs to the least loaded broker; every broker can
// answer).
func (a *Admin) topicConfigs(ctx context.Context, topics []string) (map[string][]ConfigEntry, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	for _, t := range topics {
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType = kmsg.ConfigResourceTypeTopic
		rr.ResourceName = t
		req.Resources = append(req.Resources, rr)
	}
	r := a.newRetry()
	for {
		resp, addr, err := a.anyBroker(ctx, req)
		var last error
		if err == nil {
			out, retry, err := configsFrom(resp.(*kmsg.DescribeConfigsResponse), addr)
			if err == nil {
				return out, nil
			}
			if !retry {
				return nil, err
			}
			last = err
		} else if !retriable(ctx, err) {
			return nil, err
		} else {
			last = err
		}
		if err := r.wait(ctx, last); err != nil {
			return nil, fmt.Errorf("describing the configs of %q: %w", topics, err)
		}
	}
}

func configsFrom(resp *kmsg.DescribeConfigsResponse, addr string) (map[string][]ConfigEntry, bool, error) {
	out := make(map[string][]ConfigEntry, len(resp.Resources))
	var failures []error
	retry := true
	for _, res := range resp.Resources {
		if res.ErrorCode != errs.CodeNone {
			detail := fmt.Sprintf("describing the configs of topic %q", res.ResourceName)
			if res.ErrorCode == errs.CodeUnknownTopicOrPartition {
				detail = fmt.Sprintf("topic %q does not exist (it may have just been deleted)", res.ResourceName)
			}
			e := codeErr(res.ErrorCode, addr, res.ErrorMessage, detail)
			retry = retry && e.Retriable && res.ErrorCode != errs.CodeUnknownTopicOrPartition
			failures = append(failures, e)
			continue
		}
		entries := make([]ConfigEntry, 0, len(res.Configs))
		for _, c := range res.Configs {
			e := ConfigEntry{Name: c.Name, Sensitive: c.IsSensitive, ReadOnly: c.ReadOnly}
			if c.Value != nil {
				e.Value = *c.Value
			}
			if resp.Version >= 1 {
				e.Source = c.Source.String()
				e.Default = c.Source != kmsg.ConfigSourceDynamicTopicConfig
			} else {
				e.Default = c.IsDefault
			}
			entries = append(entries, e)
		}
		slices.SortFunc(entries, func(a, b ConfigEntry) int { return strings.Compare(a.Name, b.Name) })
		out[res.ResourceName] = entries
	}
	if len(failures) > 0 {
		return nil, retry, errors.Join(failures...)
	}
	return out, false, nil
}

// anyBroker sends req to one broker after another, in the metadata's
// order, until one answers; it reports the broker that did.
func (a *Admin) anyBroker(ctx context.Context, req kmsg.Request) (kmsg.Response, string, error) {
	s, err := a.meta.Snapshot(ctx)
	if err != nil {
		return nil, "", err
	}
	ids := make([]int32, 0, len(s.Brokers))
	for id := range s.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var last error = &errs.Error{Retriable: true, Detail: "the cluster listed no brokers", Err: errs.ErrBrokerUnreachable}
	for _, id := range ids {
		addr := s.Brokers[id].Addr()
		resp, err := a.send(ctx, addr, req)
		if err == nil {
			return resp, addr, nil
		}
		last = err
		if !retriable(ctx, err) {
			break
		}
	}
	return nil, "", last
}
