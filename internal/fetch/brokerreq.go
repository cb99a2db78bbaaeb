package fetch

import (
	"fmt"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
)

// The per-broker requests about positions (ListOffsets to resolve them,
// OffsetForLeaderEpoch to validate them) share how they reach the broker
// and how a failed one is settled.

// brokerConn is the general connection to broker id and its address (for
// errors about its answer), or the retriable error saying why there is
// no connection.
func (f *Of[R]) brokerConn(id int32) (*conn.Conn, string, error) {
	addr, ok := f.meta.BrokerAddr(id)
	if !ok {
		return nil, "", &errs.Error{Retriable: true, Detail: fmt.Sprintf("broker %d is not in the metadata", id), Err: errs.ErrBrokerUnreachable}
	}
	c, err := f.pool.Get(f.ctx, addr, conn.General)
	return c, addr, err
}

// endRequestLocked ends a per-broker request about ps: they are no longer
// in flight; on err (unless the fetcher is closing) each is backed off and
// fresh metadata is asked for. It reports whether the request succeeded.
// The caller routes ps again once it applied the answers.
func (f *Of[R]) endRequestLocked(ps []*partition[R], what string, id int32, err error) bool {
	for _, p := range ps {
		p.inflight = false
	}
	if err == nil {
		return true
	}
	if !f.closed {
		f.cfg.Logger.Debug("keel: "+what+" failed", "broker", id, "err", err)
		for _, p := range ps {
			if !p.removed {
				f.backoffLocked(p, true)
			}
		}
		f.meta.RefreshSoon()
	}
	return false
}
