package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
)

// unknownTopicAnswers is how many answers saying a topic does not exist
// requireTopics waits through (about 1.5 s with the backoff), as keel's
// default UnknownTopicRetries does: a topic just created may take a
// moment to show on every broker.
const unknownTopicAnswers = 4

// requireTopics fails with an error matching keel.ErrUnknownTopic for
// each name the cluster does not have, asking with auto-creation off. The
// lookups that follow go through the client's cluster view, which asks
// brokers to create missing topics when the client was made with
// keel.AllowAutoTopicCreation; a question (describe, list offsets) must
// not create a topic, as it does not with the Java AdminClient.
func (a *Admin) requireTopics(ctx context.Context, names []string) error {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	for _, n := range names {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	r := a.newRetry()
	answers := 0
	for {
		var last error
		resp, addr, err := a.anyBroker(ctx, req)
		if err != nil {
			if !retriable(ctx, err) {
				return err
			}
			last = err
		} else {
			var missing []error
			var gone []string
			for _, t := range resp.(*kmsg.MetadataResponse).Topics {
				if t.Topic != nil && t.ErrorCode == errs.CodeUnknownTopicOrPartition {
					e := codeErr(errs.CodeUnknownTopicOrPartition, addr, nil, fmt.Sprintf("topic %q does not exist", *t.Topic))
					e.Err = errs.ErrUnknownTopic
					missing, gone = append(missing, e), append(gone, *t.Topic)
				}
			}
			if len(missing) == 0 {
				return nil
			}
			if answers++; answers > unknownTopicAnswers {
				// Left in the cluster view's interest, a deleted
				// topic would be asked for, and re-created, on
				// every refresh.
				a.meta.Forget(gone...)
				return errors.Join(missing...)
			}
			last = missing[0]
		}
		if err := r.wait(ctx, last); err != nil {
			return err
		}
	}
}
