package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
)

// DeleteTopics deletes topics through the cluster's controller. A topic
// the cluster does not have gives an error matching keel.ErrUnknownTopic;
// the errors of several topics are joined. Deleting removes every record
// of the topic and cannot be undone.
func (a *Admin) DeleteTopics(ctx context.Context, names ...string) error {
	if ctx == nil {
		return errs.NilContext("admin.Admin.DeleteTopics")
	}
	names = dedupe(names)
	if len(names) == 0 {
		return errors.New("admin: DeleteTopics needs at least one topic name")
	}
	for _, n := range names {
		if n == "" {
			return errors.New("admin: DeleteTopics got an empty topic name")
		}
	}
	pending := make(map[string]bool, len(names))
	for _, n := range names {
		pending[n] = true
	}
	results := make(map[string]error, len(names))
	timedOut := make(map[string]bool)
	r := a.newRetry()
	refresh := false
	for len(pending) > 0 {
		var last error
		addr, err := a.controllerAddr(ctx, refresh)
		var resp *kmsg.DeleteTopicsResponse
		if err == nil {
			var kresp kmsg.Response
			if kresp, err = a.send(ctx, addr, deleteRequest(ctx, pending)); err == nil {
				resp = kresp.(*kmsg.DeleteTopicsResponse)
			}
		}
		refresh = false
		if err != nil {
			if !retriable(ctx, err) {
				return fmt.Errorf("deleting %q: %w", sortedKeys(pending), err)
			}
			last, refresh = err, true
		} else {
			answered := make(map[string]bool)
			for _, rt := range resp.Topics {
				if rt.Topic == nil || !pending[*rt.Topic] {
					continue
				}
				name := *rt.Topic
				answered[name] = true
				switch code := rt.ErrorCode; {
				case code == errs.CodeNone, code == errs.CodeUnknownTopicOrPartition && timedOut[name]:
					results[name] = nil
					delete(pending, name)
				case errs.Lookup(code).Retriable && code != errs.CodeUnknownTopicOrPartition:
					timedOut[name] = timedOut[name] || code == errs.CodeRequestTimedOut
					refresh = refresh || code == errs.CodeNotController
					last = deleteErr(name, code, addr, rt.ErrorMessage)
				default:
					results[name] = deleteErr(name, code, addr, rt.ErrorMessage)
					delete(pending, name)
				}
			}
			for name := range pending {
				if !answered[name] {
					last = &errs.Error{Broker: addr, Retriable: true, Detail: fmt.Sprintf("the controller did not answer for topic %q", name), Err: errs.ErrProtocol}
				}
			}
		}
		if len(pending) == 0 {
			break
		}
		if err := r.wait(ctx, last); err != nil {
			for name := range pending {
				results[name] = fmt.Errorf("deleting topic %q: %w", name, err)
			}
			break
		}
	}
	var deleted []string
	var failures []error
	for _, n := range names {
		if err := results[n]; err != nil {
			failures = append(failures, err)
		} else {
			deleted = append(deleted, n)
		}
	}
	if len(deleted) > 0 {
		// Stop asking for the deleted topics, and make the cached view
		// forget them, so that a describe or a re-create that follows
		// does not see the old topic.
		a.meta.Forget(deleted...)
		if _, err := a.meta.Refresh(ctx); err != nil {
			a.logger.Debug("keel admin: metadata refresh after deleting topics failed", "err", err)
		}
	}
	return errors.Join(failures...)
}

func deleteRequest(ctx context.Context, pending map[string]bool) *kmsg.DeleteTopicsRequest {
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TimeoutMillis = brokerTimeout(ctx)
	for _, name := range sortedKeys(pending) {
		// The request's version decides which of the two lists goes
		// on the wire: names before v6, topics (by name) from v6.
		req.TopicNames = append(req.TopicNames, name)
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func deleteErr(name string, code int16, broker string, msg *string) error {
	var detail string
	switch code {
	case errs.CodeUnknownTopicOrPartition:
		e := codeErr(code, broker, msg, fmt.Sprintf("cannot delete topic %q: it does not exist", name))
		e.Err = errs.ErrUnknownTopic
		return e
	case errs.CodeTopicDeletionDisabled:
		detail = fmt.Sprintf("cannot delete topic %q: the brokers run with delete.topic.enable=false", name)
	case errs.CodeInvalidTopicException:
		detail = fmt.Sprintf("cannot delete topic %q: internal topics cannot be deleted", name)
	default:
		detail = fmt.Sprintf("cannot delete topic %q", name)
	}
	return codeErr(code, broker, msg, detail)
}
