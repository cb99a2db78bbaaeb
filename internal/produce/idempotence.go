package produce

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
)

// idempotence holds the producer id and epoch. The id comes from
// InitProducerId on first use; the epoch is bumped locally (KIP-360) when
// a partition's sequence state became unknown, and every partition moves to
// the new epoch, sequences from 0, at its next quiet moment (nothing in
// flight), as the Java client does.
type idempotence struct {
	e *Engine

	mu      sync.Mutex
	pid     int64
	epoch   int16
	ready   bool
	loading bool
	err     error // a permanent failure of InitProducerId
}

func newIdempotence(e *Engine) *idempotence { return &idempotence{e: e, pid: -1, epoch: -1} }

// current returns the producer id and epoch, or ok false while unknown.
func (i *idempotence) current() (pid int64, epoch int16, ok bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.pid, i.epoch, i.ready
}

// ensure starts fetching a producer id if none is known or being fetched.
func (i *idempotence) ensure() {
	i.mu.Lock()
	if i.ready || i.loading || i.e.isClosing() {
		i.mu.Unlock()
		return
	}
	i.loading = true
	i.e.wg.Add(1)
	i.mu.Unlock()
	go i.load()
}

// bump moves the producer to the next epoch unless another partition has
// already moved it past from. At the last epoch a new producer id is
// fetched instead.
func (i *idempotence) bump(from int16, why string) {
	i.mu.Lock()
	if !i.ready || i.epoch != from {
		i.mu.Unlock()
		return
	}
	if i.epoch == math.MaxInt16 {
		i.ready = false
		i.mu.Unlock()
		i.e.cfg.Warn("producer epoch exhausted; asking for a new producer id ("+why+")", nil)
		i.ensure()
		return
	}
	i.epoch++
	epoch := i.epoch
	i.mu.Unlock()
	i.e.cfg.Warn(fmt.Sprintf("bumping producer epoch to %d: %s", epoch, why), nil)
}

func (i *idempotence) load() {
	defer i.e.wg.Done()
	e := i.e
	for attempt := 1; ; attempt++ {
		pid, epoch, err := i.initProducerID(e.ctx)
		if err == nil {
			i.mu.Lock()
			i.pid, i.epoch, i.ready, i.loading, i.err = pid, epoch, true, false, nil
			i.mu.Unlock()
			e.mu.Lock()
			sinks := e.allSinksLocked()
			e.mu.Unlock()
			for _, s := range sinks {
				s.maybeDrain()
			}
			return
		}
		if e.isClosing() {
			i.mu.Lock()
			i.loading = false
			i.mu.Unlock()
			return
		}
		e.cfg.Warn("InitProducerId failed; retrying", err)
		t := time.NewTimer(e.cfg.RetryBackoff.Delay(attempt))
		select {
		case <-t.C:
		case <-e.ctx.Done():
			t.Stop()
		}
	}
}

func (i *idempotence) initProducerID(ctx context.Context) (int64, int16, error) {
	e := i.e
	snap, err := e.meta.Snapshot(ctx)
	if err != nil {
		return 0, 0, err
	}
	var lastErr error = &errs.Error{Detail: "no broker known to ask for a producer id", Err: errs.ErrBrokerUnreachable, Retriable: true}
	for _, b := range snap.Brokers {
		c, err := e.pool.Get(ctx, b.Addr(), conn.General)
		if err != nil {
			lastErr = err
			continue
		}
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionTimeoutMillis = -1
		req.ProducerID = -1
		req.ProducerEpoch = -1
		resp, err := c.Request(ctx, req)
		if err != nil {
			lastErr = err
			continue
		}
		r := resp.(*kmsg.InitProducerIDResponse)
		if r.ErrorCode != 0 {
			e := errs.FromCode(r.ErrorCode, b.Addr(), "").(*errs.Error)
			e.Detail = "InitProducerId for the idempotent producer"
			return 0, 0, e
		}
		return r.ProducerID, r.ProducerEpoch, nil
	}
	return 0, 0, lastErr
}
