package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
)

// TopicSpec describes a topic to create.
type TopicSpec struct {
	Name              string
	Partitions        int32             // -1 = broker default
	ReplicationFactor int16             // -1 = broker default
	Configs           map[string]string // e.g. "retention.ms": "60000"
}

// CreateTopics creates topics on the cluster's controller and waits (up
// to ten seconds, within ctx) until metadata shows each new topic with a
// leader for every partition, so that producing right after does not meet
// UNKNOWN_TOPIC_OR_PARTITION. A topic that could not be created gives an
// error naming it (errors.Is(err, ErrTopicExists), ErrInvalidPartitions,
// ...); the errors of several topics are joined. Topics that succeeded
// stay created even when others failed.
func (a *Admin) CreateTopics(ctx context.Context, topics ...TopicSpec) error {
	if ctx == nil {
		return errs.NilContext("admin.Admin.CreateTopics")
	}
	return a.createTopics(ctx, false, topics)
}

// ValidateCreateTopics asks the controller whether CreateTopics would
// succeed for topics (CreateTopics with validate_only, as the Java
// AdminClient's validateOnly) and creates nothing. It returns the errors
// CreateTopics would: an existing topic, a replication factor above the
// broker count, a rejected config.
func (a *Admin) ValidateCreateTopics(ctx context.Context, topics ...TopicSpec) error {
	if ctx == nil {
		return errs.NilContext("admin.Admin.ValidateCreateTopics")
	}
	return a.createTopics(ctx, true, topics)
}

func (a *Admin) createTopics(ctx context.Context, validateOnly bool, topics []TopicSpec) error {
	if err := validateSpecs(topics); err != nil {
		return err
	}
	results := make(map[string]error, len(topics))
	pending := make(map[string]TopicSpec, len(topics))
	for _, t := range topics {
		pending[t.Name] = t
	}
	// A create that timed out on the broker may still have happened; if
	// the retry then finds the topic, that is our topic, not a clash.
	timedOut := make(map[string]bool)
	r := a.newRetry()
	refresh := false
	for len(pending) > 0 {
		var last error
		addr, err := a.controllerAddr(ctx, refresh)
		var resp *kmsg.CreateTopicsResponse
		if err == nil {
			var c *conn.Conn
			if c, err = a.pool.Get(ctx, addr, conn.General); err == nil {
				if v := c.Versions().Version(int16(kmsg.CreateTopics)); v < 4 {
					if err := needsDefaults(pending, v); err != nil {
						return err
					}
				}
				var kresp kmsg.Response
				if kresp, err = c.Request(ctx, createRequest(ctx, pending, validateOnly)); err == nil {
					resp = kresp.(*kmsg.CreateTopicsResponse)
				}
			}
		}
		refresh = false
		if err != nil {
			if !retriable(ctx, err) {
				return fmt.Errorf("creating %s: %w", topicList(pending), err)
			}
			last, refresh = err, true
		} else {
			for _, rt := range resp.Topics {
				spec, ok := pending[rt.Topic]
				if !ok {
					continue
				}
				switch code := rt.ErrorCode; {
				case code == errs.CodeNone, code == errs.CodeTopicAlreadyExists && timedOut[rt.Topic] && !validateOnly:
					results[rt.Topic] = nil
					delete(pending, rt.Topic)
				case errs.Lookup(code).Retriable:
					// NOT_CONTROLLER (41): the controller moved;
					// REQUEST_TIMED_OUT (7): the create may have
					// happened and may still finish.
					timedOut[rt.Topic] = timedOut[rt.Topic] || code == errs.CodeRequestTimedOut
					refresh = refresh || code == errs.CodeNotController
					last = createErr(a.meta.Current(), spec, code, addr, rt.ErrorMessage)
				default:
					results[rt.Topic] = createErr(a.meta.Current(), spec, code, addr, rt.ErrorMessage)
					delete(pending, rt.Topic)
				}
			}
			for name, spec := range pending {
				if !slices.ContainsFunc(resp.Topics, func(rt kmsg.CreateTopicsResponseTopic) bool { return rt.Topic == name }) {
					last = &errs.Error{Broker: addr, Retriable: true, Detail: fmt.Sprintf("the controller did not answer for topic %q", spec.Name), Err: errs.ErrProtocol}
				}
			}
		}
		if len(pending) == 0 {
			break
		}
		if err := r.wait(ctx, last); err != nil {
			for name := range pending {
				results[name] = fmt.Errorf("creating topic %q: %w", name, err)
			}
			break
		}
	}
	var created []string
	var failures []error
	for _, t := range topics {
		if err := results[t.Name]; err != nil {
			failures = append(failures, err)
		} else {
			created = append(created, t.Name)
		}
	}
	if validateOnly {
		created = nil // nothing was created: no leaders to wait for
	}
	if err := a.awaitLeaders(ctx, created); err != nil {
		failures = append(failures, err)
	}
	return errors.Join(failures...)
}

func validateSpecs(topics []TopicSpec) error {
	if len(topics) == 0 {
		return errors.New("admin: CreateTopics needs at least one TopicSpec")
	}
	seen := make(map[string]bool, len(topics))
	for _, t := range topics {
		switch {
		case keel.ValidateTopicName(t.Name) != nil:
			return fmt.Errorf("admin: %w", keel.ValidateTopicName(t.Name))
		case seen[t.Name]:
			return fmt.Errorf("admin: topic %q is listed twice", t.Name)
		case t.Partitions == 0 || t.Partitions < -1:
			return &keel.ConfigError{Option: "TopicSpec.Partitions", Problem: fmt.Sprintf("topic %q: %d partitions", t.Name, t.Partitions), Fix: "use at least 1, or -1 for the broker default"}
		case t.ReplicationFactor == 0 || t.ReplicationFactor < -1:
			return &keel.ConfigError{Option: "TopicSpec.ReplicationFactor", Problem: fmt.Sprintf("topic %q: replication factor %d", t.Name, t.ReplicationFactor), Fix: "use at least 1, or -1 for the broker default"}
		}
		seen[t.Name] = true
	}
	return nil
}

// needsDefaults fails, before anything is sent, when a spec asks for
// broker defaults (-1) and the controller speaks a CreateTopics version
// older than 4 (Kafka 2.4), which cannot fill them in.
func needsDefaults(pending map[string]TopicSpec, version int16) error {
	for _, name := range sortedKeys(pending) {
		if t := pending[name]; t.Partitions < 0 || t.ReplicationFactor < 0 {
			return fmt.Errorf("admin: topic %q: the controller speaks CreateTopics v%d, which cannot apply broker defaults (that needs v4, Kafka 2.4); give Partitions and ReplicationFactor explicitly", name, version)
		}
	}
	return nil
}

func createRequest(ctx context.Context, pending map[string]TopicSpec, validateOnly bool) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = brokerTimeout(ctx)
	req.ValidateOnly = validateOnly
	for _, name := range sortedKeys(pending) {
		spec := pending[name]
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = spec.Name
		rt.NumPartitions = spec.Partitions
		rt.ReplicationFactor = spec.ReplicationFactor
		for _, k := range sortedKeys(spec.Configs) {
			rc := kmsg.NewCreateTopicsRequestTopicConfig()
			rc.Name = k
			rc.Value = kmsg.StringPtr(spec.Configs[k])
			rt.Configs = append(rt.Configs, rc)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// createErr words a failed create for the person who asked for it.
func createErr(s *meta.Snapshot, spec TopicSpec, code int16, broker string, msg *string) error {
	var detail string
	switch code {
	case errs.CodeTopicAlreadyExists:
		detail = fmt.Sprintf("cannot create topic %q: it already exists", spec.Name)
	case errs.CodeInvalidPartitions:
		detail = fmt.Sprintf("cannot create topic %q with %d partitions: use at least 1", spec.Name, spec.Partitions)
	case errs.CodeInvalidReplicationFactor:
		n := 0
		if s != nil {
			n = len(s.Brokers)
		}
		detail = fmt.Sprintf("cannot create topic %q with replication factor %d: the cluster has %d brokers; use at most that many", spec.Name, spec.ReplicationFactor, n)
	case errs.CodeInvalidConfig:
		detail = fmt.Sprintf("cannot create topic %q: a config was rejected (check the names and values of %v)", spec.Name, sortedKeys(spec.Configs))
	case errs.CodeInvalidTopicException:
		detail = fmt.Sprintf("cannot create topic %q: the name is invalid or collides with an existing topic (names may use letters, digits, '.', '_' and '-'; '.' and '_' count as the same)", spec.Name)
	case errs.CodeNotController:
		detail = fmt.Sprintf("cannot create topic %q: the request reached a broker that is no longer the controller", spec.Name)
	default:
		detail = fmt.Sprintf("cannot create topic %q", spec.Name)
	}
	return codeErr(code, broker, msg, detail)
}

// awaitLeaders waits until metadata shows every topic of names with a
// leader for each partition, at most a.settle. Running out of that time is
// not an error (the topics exist; leaders are being elected) and is only
// logged; ctx ending is.
func (a *Admin) awaitLeaders(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, a.settle)
	defer cancel()
	for attempt := 1; ; attempt++ {
		var missing []string
		for _, n := range names {
			if !hasLeaders(a.meta.Current(), n) {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		// Topic registers interest in the topic (so refreshes fetch
		// it) and waits out a short "unknown" phase; Refresh then
		// brings fresh leaders.
		for _, n := range missing {
			_, _ = a.meta.Topic(sctx, n)
		}
		_, _ = a.meta.Refresh(sctx)
		if missing = slices.DeleteFunc(missing, func(n string) bool { return hasLeaders(a.meta.Current(), n) }); len(missing) == 0 {
			return nil
		}
		t := time.NewTimer(a.backoff.Delay(attempt))
		select {
		case <-t.C:
		case <-sctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return fmt.Errorf("created %v, but %w before metadata showed their leaders", missing, ctx.Err())
			}
			a.logger.Warn("keel admin: topics created, but their leaders are not in metadata yet", "topics", missing, "waited", a.settle)
			return nil
		}
	}
}

func hasLeaders(s *meta.Snapshot, name string) bool {
	if s == nil {
		return false
	}
	t := s.Topics[name]
	if t == nil || t.ErrCode != 0 || len(t.Partitions) == 0 {
		return false
	}
	for _, p := range t.Partitions {
		if p.Leader < 0 || p.ErrCode != 0 {
			return false
		}
	}
	return true
}

func topicList(m map[string]TopicSpec) string {
	names := sortedKeys(m)
	if len(names) == 1 {
		return fmt.Sprintf("topic %q", names[0])
	}
	return fmt.Sprintf("topics %q", names)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
