package admin

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/wait"
)

// CreatePartitions grows topic to total partitions (Kafka's
// CreatePartitions, sent to the controller). Kafka cannot remove
// partitions: a total below the current count fails before anything is
// sent with an error matching ErrInvalidPartitions that says how many the
// topic has, and so does a total equal to it (nothing to add). Keys of
// existing records keep their partition only while the count stays the
// same, so growing a keyed topic moves where new records of a key go.
// With validateOnly the controller checks the request and changes
// nothing.
func (a *Admin) CreatePartitions(ctx context.Context, topic string, total int32, validateOnly bool) error {
	if ctx == nil {
		return errs.NilContext("admin.Admin.CreatePartitions")
	}
	if err := keel.ValidateTopicName(topic); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if total < 1 {
		return invalidPartitions(topic, fmt.Sprintf("cannot give topic %q %d partitions: use at least 1", topic, total))
	}
	if err := a.requireTopics(ctx, []string{topic}); err != nil {
		return err
	}
	t, err := a.refreshedTopic(ctx, topic)
	if err != nil {
		return err
	}
	if have := int32(len(t.Partitions)); total <= have {
		what := fmt.Sprintf("topic %q has %d partitions; Kafka cannot remove partitions, so ask for more than %d", topic, have, have)
		if total == have {
			what = fmt.Sprintf("topic %q already has %d partitions; ask for more to add some", topic, have)
		}
		return invalidPartitions(topic, what)
	}
	r := a.newRetry()
	refresh := false
	timedOut := false
	for {
		var last error
		addr, err := a.controllerAddr(ctx, refresh)
		var resp *kmsg.CreatePartitionsResponse
		if err == nil {
			req := kmsg.NewPtrCreatePartitionsRequest()
			req.TimeoutMillis = brokerTimeout(ctx)
			req.ValidateOnly = validateOnly
			rt := kmsg.NewCreatePartitionsRequestTopic()
			rt.Topic, rt.Count = topic, total
			req.Topics = append(req.Topics, rt)
			var kresp kmsg.Response
			if kresp, err = a.send(ctx, addr, req); err == nil {
				resp = kresp.(*kmsg.CreatePartitionsResponse)
			}
		}
		refresh = false
		switch {
		case err != nil && !retriable(ctx, err):
			return fmt.Errorf("adding partitions to topic %q: %w", topic, err)
		case err != nil:
			last, refresh = err, true
		case len(resp.Topics) != 1 || resp.Topics[0].Topic != topic:
			last = &errs.Error{Broker: addr, Retriable: true, Detail: fmt.Sprintf("the controller did not answer for topic %q", topic), Err: errs.ErrProtocol}
		default:
			rt := resp.Topics[0]
			code := rt.ErrorCode
			switch {
			case code == errs.CodeNone:
				if !validateOnly {
					a.awaitPartitions(ctx, topic, total)
				}
				return nil
			case code == errs.CodeInvalidPartitions && timedOut:
				// The first attempt timed out on the broker but went
				// through: the topic has the count asked for.
				if t, err := a.refreshedTopic(ctx, topic); err == nil && int32(len(t.Partitions)) == total {
					return nil
				}
				return codeErr(code, addr, rt.ErrorMessage, fmt.Sprintf("cannot give topic %q %d partitions", topic, total))
			case errs.Lookup(code).Retriable:
				timedOut = timedOut || code == errs.CodeRequestTimedOut
				refresh = code == errs.CodeNotController
				last = codeErr(code, addr, rt.ErrorMessage, fmt.Sprintf("adding partitions to topic %q", topic))
			default:
				detail := fmt.Sprintf("cannot give topic %q %d partitions", topic, total)
				if code == errs.CodeUnknownTopicOrPartition {
					e := codeErr(code, addr, rt.ErrorMessage, fmt.Sprintf("topic %q does not exist", topic))
					e.Err = errs.ErrUnknownTopic
					return e
				}
				return codeErr(code, addr, rt.ErrorMessage, detail)
			}
		}
		if err := r.wait(ctx, last); err != nil {
			return fmt.Errorf("adding partitions to topic %q: %w", topic, err)
		}
	}
}

func invalidPartitions(topic, detail string) error {
	return &errs.Error{Code: errs.CodeInvalidPartitions, Name: errs.Lookup(errs.CodeInvalidPartitions).Name, Detail: detail}
}

// awaitPartitions waits, at most a.settle, until metadata shows topic with
// total partitions, each with a leader, so that producing to a new
// partition right after works. Running out of time is only logged.
func (a *Admin) awaitPartitions(ctx context.Context, topic string, total int32) {
	sctx, cancel := context.WithTimeout(ctx, a.settle)
	defer cancel()
	for attempt := 1; sctx.Err() == nil; attempt++ {
		if s, err := a.meta.Refresh(sctx); err == nil {
			if t := s.Topics[topic]; t != nil && int32(len(t.Partitions)) >= total && hasLeaders(s, topic) {
				return
			}
		}
		if !wait.Sleep(sctx, a.backoff.Delay(attempt)) {
			break
		}
	}
	a.logger.Warn("keel admin: partitions added, but metadata does not show them all with leaders yet", "topic", topic, "partitions", total)
}
