package meta

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/wait"
)

// CoordinatorType says which kind of coordinator to look up.
type CoordinatorType int8

const (
	GroupCoordinator CoordinatorType = 0
	TxnCoordinator   CoordinatorType = 1
)

type coordKey struct {
	typ CoordinatorType
	key string
}

// Coordinator returns the broker coordinating group (or transactional id)
// key, from cache when known. Lookups retry while the coordinator is not
// available or still loading, under ctx.
func (m *Meta) Coordinator(ctx context.Context, typ CoordinatorType, key string) (Broker, error) {
	ck := coordKey{typ, key}
	m.mu.Lock()
	id, ok := m.coords[ck]
	m.mu.Unlock()
	if ok {
		if s := m.snap.Load(); s != nil {
			if b, ok := s.Brokers[id]; ok {
				return b, nil
			}
		}
	}
	var found Broker
	err := wait.Retry(ctx, m.cfg.Backoff, 0, func(int) (bool, error) {
		b, code, err := m.findCoordinator(ctx, typ, key)
		if err == nil && code == errs.CodeNone {
			m.mu.Lock()
			m.coords[ck] = b.ID
			m.mu.Unlock()
			found = b
			return true, nil
		}
		if err == nil {
			e := errs.FromCode(code, "", "").(*errs.Error)
			e.Detail = fmt.Sprintf("looking up the coordinator of %q", key)
			// Not available or still loading: ask again.
			return code != errs.CodeCoordinatorNotAvailable && code != errs.CodeCoordinatorLoadInProgress, e
		}
		return !errs.IsRetriable(err), err
	})
	if err != nil {
		return Broker{}, err
	}
	return found, nil
}

// InvalidateCoordinator forgets the cached coordinator of key; call it on
// NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE.
func (m *Meta) InvalidateCoordinator(typ CoordinatorType, key string) {
	m.mu.Lock()
	delete(m.coords, coordKey{typ, key})
	m.mu.Unlock()
}

// HandleCoordinatorError invalidates the coordinator of key when code says
// it moved, and reports whether it did.
func (m *Meta) HandleCoordinatorError(typ CoordinatorType, key string, code int16) bool {
	if code == errs.CodeCoordinatorNotAvailable || code == errs.CodeNotCoordinator {
		m.InvalidateCoordinator(typ, key)
		return true
	}
	return false
}

func (m *Meta) findCoordinator(ctx context.Context, typ CoordinatorType, key string) (Broker, int16, error) {
	s, err := m.Snapshot(ctx)
	if err != nil {
		return Broker{}, 0, err
	}
	var lastErr error
	for _, addr := range m.candidates() {
		c, err := m.pool.Get(ctx, addr, conn.General)
		if err != nil {
			lastErr = err
			continue
		}
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorType = int8(typ)
		req.CoordinatorKey = key
		req.CoordinatorKeys = []string{key}
		resp, err := c.Request(ctx, req)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				return Broker{}, 0, err
			}
			continue
		}
		r := resp.(*kmsg.FindCoordinatorResponse)
		nodeID, host, port, code := r.NodeID, r.Host, r.Port, r.ErrorCode
		if r.Version >= 4 {
			if len(r.Coordinators) != 1 {
				return Broker{}, 0, &errs.Error{Broker: addr, Detail: "FindCoordinator answered for the wrong number of keys", Err: errs.ErrProtocol, Retriable: true}
			}
			co := r.Coordinators[0]
			nodeID, host, port, code = co.NodeID, co.Host, co.Port, co.ErrorCode
		}
		if code != errs.CodeNone {
			return Broker{}, code, nil
		}
		b := Broker{ID: nodeID, Host: host, Port: port}
		if known, ok := s.Brokers[nodeID]; ok {
			b.Rack = known.Rack
		}
		return b, 0, nil
	}
	if lastErr == nil {
		lastErr = &errs.Error{Detail: "no broker to ask for a coordinator", Err: errs.ErrBrokerUnreachable, Retriable: true}
	}
	return Broker{}, 0, lastErr
}
