package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/errs"
)

// ConfigResourceType says what a ConfigResource names.
type ConfigResourceType int8

const (
	// TopicConfigs: the configs of a topic (Name is the topic).
	TopicConfigs ConfigResourceType = iota
	// BrokerConfigs: the configs of a broker (Name is its id, e.g. "1"),
	// or, with Name "", the cluster-wide default every broker inherits
	// (kafka-configs.sh --entity-default).
	BrokerConfigs
)

func (t ConfigResourceType) String() string {
	if t == BrokerConfigs {
		return "broker"
	}
	return "topic"
}

// ConfigResource is what DescribeConfigs and AlterConfigs act on.
type ConfigResource struct {
	Type ConfigResourceType
	Name string
}

func (r ConfigResource) String() string {
	if r.Type == BrokerConfigs && r.Name == "" {
		return "the brokers' cluster-wide default"
	}
	return fmt.Sprintf("%s %q", r.Type, r.Name)
}

func (r ConfigResource) kafkaType() kmsg.ConfigResourceType {
	if r.Type == BrokerConfigs {
		return kmsg.ConfigResourceTypeBroker
	}
	return kmsg.ConfigResourceTypeTopic
}

// check validates r and returns the broker the request must go to (-1:
// any broker).
func (r ConfigResource) check() (int32, error) {
	switch r.Type {
	case TopicConfigs:
		if err := keel.ValidateTopicName(r.Name); err != nil {
			return -1, fmt.Errorf("admin: %w", err)
		}
		return -1, nil
	case BrokerConfigs:
		if r.Name == "" {
			return -1, nil
		}
		id, err := strconv.ParseInt(r.Name, 10, 32)
		if err != nil || id < 0 {
			return -1, fmt.Errorf("admin: broker %q: name a broker by its id (0, 1, ...), or use \"\" for the cluster-wide default", r.Name)
		}
		// A broker answers only for itself (Kafka routes broker
		// configs to that broker).
		return int32(id), nil
	}
	return -1, fmt.Errorf("admin: unknown config resource type %d", r.Type)
}

// DescribeConfigs returns every config of res, sorted by name, each with
// its value, where the value comes from (Source) and whether it is a
// default. A topic the cluster does not have gives an error matching
// keel.ErrUnknownTopic; a broker id not in the cluster, one naming it.
func (a *Admin) DescribeConfigs(ctx context.Context, res ConfigResource) ([]ConfigEntry, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.DescribeConfigs")
	}
	broker, err := res.check()
	if err != nil {
		return nil, err
	}
	if res.Type == TopicConfigs {
		if err := a.requireTopics(ctx, []string{res.Name}); err != nil {
			return nil, err
		}
		got, err := a.topicConfigs(ctx, []string{res.Name})
		if err != nil {
			return nil, err
		}
		return got[res.Name], nil
	}
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = res.kafkaType(), res.Name
	req.Resources = append(req.Resources, rr)
	r := a.newRetry()
	for {
		var last error
		resp, addr, err := a.sendConfigs(ctx, broker, req)
		if err == nil {
			entries, retry, err := brokerConfigsFrom(resp.(*kmsg.DescribeConfigsResponse), addr, res)
			if err == nil {
				return entries, nil
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
			return nil, fmt.Errorf("describing the configs of %s: %w", res, err)
		}
	}
}

// sendConfigs sends req to broker, or to any broker for -1.
func (a *Admin) sendConfigs(ctx context.Context, broker int32, req kmsg.Request) (kmsg.Response, string, error) {
	if broker < 0 {
		return a.anyBroker(ctx, req)
	}
	if _, err := a.meta.Snapshot(ctx); err != nil {
		return nil, "", err
	}
	if _, ok := a.meta.BrokerAddr(broker); !ok {
		if s, err := a.meta.Refresh(ctx); err == nil {
			if _, ok := s.Brokers[broker]; !ok {
				ids := make([]int32, 0, len(s.Brokers))
				for id := range s.Brokers {
					ids = append(ids, id)
				}
				slices.Sort(ids)
				return nil, "", fmt.Errorf("admin: the cluster has no broker %d (its brokers are %v)", broker, ids)
			}
		}
	}
	return a.sendTo(ctx, broker, req)
}

func brokerConfigsFrom(resp *kmsg.DescribeConfigsResponse, addr string, res ConfigResource) ([]ConfigEntry, bool, error) {
	for _, rr := range resp.Resources {
		if rr.ErrorCode != errs.CodeNone {
			e := codeErr(rr.ErrorCode, addr, rr.ErrorMessage, fmt.Sprintf("describing the configs of %s", res))
			return nil, e.Retriable, e
		}
		entries := make([]ConfigEntry, 0, len(rr.Configs))
		for _, c := range rr.Configs {
			e := ConfigEntry{Name: c.Name, Sensitive: c.IsSensitive, ReadOnly: c.ReadOnly}
			if c.Value != nil {
				e.Value = *c.Value
			}
			if resp.Version >= 1 {
				e.Source = c.Source.String()
				e.Default = c.Source == kmsg.ConfigSourceDefaultConfig
			} else {
				e.Default = c.IsDefault
			}
			entries = append(entries, e)
		}
		slices.SortFunc(entries, func(x, y ConfigEntry) int { return strings.Compare(x.Name, y.Name) })
		return entries, false, nil
	}
	return nil, true, &errs.Error{Broker: addr, Retriable: true, Detail: fmt.Sprintf("the broker left %s out of its DescribeConfigs answer", res), Err: errs.ErrProtocol}
}

// ConfigOp is one change AlterConfigs makes: set Name to Value, or, with
// Delete, remove the resource's own value so the default applies again.
type ConfigOp struct {
	Name   string
	Value  string
	Delete bool
}

// AlterConfigs changes configs of res with IncrementalAlterConfigs (Kafka
// 2.3+), leaving the others as they are. Before sending, it describes res
// and refuses, with an error matching ErrInvalidConfig, a name the
// resource does not have (a typo would otherwise be stored, or refused
// with a vaguer message) and a read-only one. With validateOnly the broker
// checks the change and applies nothing.
func (a *Admin) AlterConfigs(ctx context.Context, res ConfigResource, validateOnly bool, ops ...ConfigOp) error {
	if ctx == nil {
		return errs.NilContext("admin.Admin.AlterConfigs")
	}
	broker, err := res.check()
	if err != nil {
		return err
	}
	if len(ops) == 0 {
		return errors.New("admin: AlterConfigs needs at least one change")
	}
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		if strings.TrimSpace(op.Name) == "" {
			return errors.New("admin: AlterConfigs got a change with an empty config name")
		}
		if seen[op.Name] {
			return fmt.Errorf("admin: AlterConfigs changes config %q twice; change each config once", op.Name)
		}
		seen[op.Name] = true
	}
	current, err := a.DescribeConfigs(ctx, res)
	if err != nil {
		return err
	}
	known := make(map[string]ConfigEntry, len(current))
	for _, c := range current {
		known[c.Name] = c
	}
	for _, op := range ops {
		c, ok := known[op.Name]
		switch {
		case !ok:
			return &errs.Error{Code: errs.CodeInvalidConfig, Name: errs.Lookup(errs.CodeInvalidConfig).Name,
				Detail: fmt.Sprintf("%s has no config %q%s; 'keel configs describe' lists the ones it has", res, op.Name, suggest(op.Name, current))}
		case c.ReadOnly && res.Type == BrokerConfigs:
			return &errs.Error{Code: errs.CodeInvalidConfig, Name: errs.Lookup(errs.CodeInvalidConfig).Name,
				Detail: fmt.Sprintf("config %q of %s is read-only: it can be changed only in the broker's server.properties and a restart", op.Name, res)}
		}
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = validateOnly
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = res.kafkaType(), res.Name
	for _, op := range ops {
		rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		rc.Name = op.Name
		if op.Delete {
			rc.Op = kmsg.IncrementalAlterConfigOpDelete
		} else {
			rc.Op, rc.Value = kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(op.Value)
		}
		rr.Configs = append(rr.Configs, rc)
	}
	req.Resources = append(req.Resources, rr)
	r := a.newRetry()
	for {
		var last error
		kresp, addr, err := a.sendConfigs(ctx, broker, req)
		switch {
		case err != nil && !retriable(ctx, err):
			return fmt.Errorf("altering the configs of %s: %w", res, err)
		case err != nil:
			last = err
		default:
			resp := kresp.(*kmsg.IncrementalAlterConfigsResponse)
			if len(resp.Resources) == 0 {
				last = &errs.Error{Broker: addr, Retriable: true, Detail: fmt.Sprintf("the broker left %s out of its answer", res), Err: errs.ErrProtocol}
				break
			}
			code := resp.Resources[0].ErrorCode
			if code == errs.CodeNone {
				return nil
			}
			detail := fmt.Sprintf("altering the configs of %s", res)
			switch code {
			case errs.CodeInvalidConfig, errs.CodeInvalidRequest:
				detail = fmt.Sprintf("the broker refused the change to %s: a value is invalid for its config (check %s)", res, opNames(ops))
			case errs.CodeUnknownTopicOrPartition:
				e := codeErr(code, addr, resp.Resources[0].ErrorMessage, fmt.Sprintf("topic %q does not exist", res.Name))
				e.Err = errs.ErrUnknownTopic
				return e
			}
			e := codeErr(code, addr, resp.Resources[0].ErrorMessage, detail)
			if !e.Retriable {
				return e
			}
			last = e
		}
		if err := r.wait(ctx, last); err != nil {
			return fmt.Errorf("altering the configs of %s: %w", res, err)
		}
	}
}

func opNames(ops []ConfigOp) string {
	names := make([]string, len(ops))
	for i, op := range ops {
		names[i] = op.Name
	}
	return strings.Join(names, ", ")
}

// suggest names the known config closest to name, for a typo, as
// "; did you mean retention.ms?", or "".
func suggest(name string, known []ConfigEntry) string {
	best, bestD := "", len(name)/2+1
	for _, c := range known {
		if d := editDistance(name, c.Name); d < bestD {
			best, bestD = c.Name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
