package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/keel-go/keel/internal/errs"
)

// controllerAddr returns the address of the cluster's controller, which
// CreateTopics and DeleteTopics must reach. refresh forces a metadata
// request first (after NOT_CONTROLLER: the controller moved).
func (a *Admin) controllerAddr(ctx context.Context, refresh bool) (string, error) {
	s := a.meta.Current()
	if s == nil || refresh {
		var err error
		if s, err = a.meta.Refresh(ctx); err != nil {
			return "", err
		}
	}
	if s.ControllerID < 0 {
		return "", &errs.Error{Retriable: true, Detail: "the cluster reports no active controller", Err: errs.ErrNotController}
	}
	b, ok := s.Brokers[s.ControllerID]
	if !ok {
		return "", &errs.Error{Retriable: true, Detail: fmt.Sprintf("the controller (broker %d) is not among the brokers the cluster listed", s.ControllerID), Err: errs.ErrNotController}
	}
	return b.Addr(), nil
}

// brokerTimeout is how long a create or delete asks the controller to wait
// for the change to complete: the time left in ctx, at most 30 s.
func brokerTimeout(ctx context.Context) int32 {
	d := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, max(time.Until(dl), time.Second))
	}
	return int32(d / time.Millisecond)
}
