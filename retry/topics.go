package retry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/keel-go/keel/internal/errs"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// ErrMissingTopic: a retry or dead-letter topic the policy needs does not
// exist (and CreateMissingTopics was not given).
var ErrMissingTopic = errors.New("retry: topic missing")

// EnsureTopics checks that the source topics exist and that every retry
// and dead-letter topic does too. With CreateMissingTopics it creates the
// missing ones with their source topic's partition count; without it a
// missing topic is an error (matching ErrMissingTopic) that names it.
// Several members may run it at once: a topic another one just created
// counts as existing.
func (p *Policy) EnsureTopics(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("retry.Policy.EnsureTopics")
	}
	adm, err := admin.New(p.client)
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	listed, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("retry: listing topics: %w", err)
	}
	parts := make(map[string]int, len(listed))
	for _, t := range listed {
		parts[t.Name] = t.Partitions
	}
	var missing []admin.TopicSpec
	var problems []error
	for _, s := range p.sources {
		n, ok := parts[s]
		if !ok {
			problems = append(problems, fmt.Errorf("retry: source topic %q does not exist: %w", s, keel.ErrUnknownTopic))
			continue
		}
		for _, t := range append(p.RetryTopics(s), p.DeadLetterTopic(s)) {
			if _, ok := parts[t]; !ok {
				missing = append(missing, admin.TopicSpec{Name: t, Partitions: int32(n), ReplicationFactor: p.cfg.createRF, Configs: p.cfg.createConf})
			}
		}
	}
	if len(problems) > 0 {
		return errors.Join(problems...)
	}
	if len(missing) == 0 {
		return nil
	}
	if !p.cfg.create {
		names := make([]string, len(missing))
		for i, m := range missing {
			names[i] = m.Name
		}
		return fmt.Errorf("%w: %s; create them (with the source's partition count) or use retry.CreateMissingTopics", ErrMissingTopic, strings.Join(names, ", "))
	}
	// One request per topic, so that "already exists" (another member was
	// quicker) is told apart from a real failure of another topic.
	for _, spec := range missing {
		switch err := adm.CreateTopics(ctx, spec); {
		case err == nil:
			p.logger.Info("retry: created topic", "topic", spec.Name, "partitions", spec.Partitions)
		case errors.Is(err, admin.ErrTopicExists):
		default:
			problems = append(problems, fmt.Errorf("retry: creating %s: %w", spec.Name, err))
		}
	}
	return errors.Join(problems...)
}
