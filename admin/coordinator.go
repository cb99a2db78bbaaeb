package admin

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
)

// groupSender sends one request about groups to the coordinator at addr
// and returns, per group, nil or the error its answer carried (an
// *errs.Error with the Kafka code), or an error for the whole request.
type groupSender func(ctx context.Context, addr string, groups []string) (map[string]error, error)

// perCoordinator runs send once per coordinator for the groups it
// coordinates, concurrently, and again for groups whose coordinator moved
// (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE) or was unreachable, after
// forgetting the cached coordinator, and for groups whose coordinator was
// still loading (COORDINATOR_LOAD_IN_PROGRESS). It returns every group's final error (nil for
// success).
func (a *Admin) perCoordinator(ctx context.Context, groups []string, send groupSender) map[string]error {
	results := make(map[string]error, len(groups))
	pending := dedupe(groups)
	r := a.newRetry()
	for len(pending) > 0 {
		round := a.coordinatorRound(ctx, pending, send)
		var again []string
		var last error
		for _, g := range pending {
			err := round[g]
			if err != nil && retryCoordinator(ctx, err) {
				if errs.Code(err) != errs.CodeCoordinatorLoadInProgress {
					// Moved or unreachable: look it up again. A
					// loading coordinator is the right one; wait.
					a.meta.InvalidateCoordinator(meta.GroupCoordinator, g)
				}
				again, last = append(again, g), err
				continue
			}
			results[g] = err
		}
		pending = again
		if len(pending) == 0 {
			break
		}
		if err := r.wait(ctx, last); err != nil {
			for _, g := range pending {
				results[g] = fmt.Errorf("group %q: %w", g, err)
			}
			break
		}
	}
	return results
}

func (a *Admin) coordinatorRound(ctx context.Context, groups []string, send groupSender) map[string]error {
	out := make(map[string]error, len(groups))
	byAddr := make(map[string][]string)
	for _, g := range groups {
		// Coordinator retries while the coordinator is unavailable
		// under the ctx it gets; the bound keeps a call without a
		// deadline from waiting forever.
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		b, err := a.meta.Coordinator(lctx, meta.GroupCoordinator, g)
		cancel()
		if err != nil {
			out[g] = fmt.Errorf("finding the coordinator of group %q: %w", g, err)
			continue
		}
		byAddr[b.Addr()] = append(byAddr[b.Addr()], g)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for addr, gs := range byAddr {
		wg.Go(func() {
			got, err := send(ctx, addr, gs)
			mu.Lock()
			defer mu.Unlock()
			for _, g := range gs {
				switch {
				case err != nil:
					out[g] = err
				case got == nil:
				default:
					if e, ok := got[g]; ok {
						out[g] = e
					} else {
						out[g] = &errs.Error{Broker: addr, Retriable: true, Detail: fmt.Sprintf("the coordinator left group %q out of its answer", g), Err: errs.ErrProtocol}
					}
				}
			}
		})
	}
	wg.Wait()
	return out
}

// retryCoordinator: the group's coordinator moved, is loading, or could
// not be reached.
func retryCoordinator(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	switch errs.Code(err) {
	case errs.CodeCoordinatorLoadInProgress, errs.CodeCoordinatorNotAvailable, errs.CodeNotCoordinator:
		return true
	case errs.CodeNone:
		return retriable(ctx, err)
	}
	return false
}
