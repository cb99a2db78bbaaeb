package keel

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
)

// hookSet is WithHooks' values sorted once, at NewClient, into one slice
// per interface, so that a call site costs one length check when nothing
// is installed and never a type assertion per call. A Client's is nil
// when no hook was given.
type hookSet struct {
	logger *slog.Logger

	connect       []BrokerConnectHook
	disconnect    []BrokerDisconnectHook
	written       []RequestWrittenHook
	read          []ResponseReadHook
	throttle      []ThrottleHook
	produceBatch  []ProduceBatchHook
	produce       []ProduceHook
	produceRecord []ProduceRecordHook
	buffer        []BufferHook
	fetchBatch    []FetchBatchHook
	rebalance     []RebalanceHook
	commit        []CommitHook
	handlerStart  []HandlerStartHook
	handlerFinish []HandlerFinishHook
	lag           []LagHook
	stall         []StallHook
}

// newHookSet sorts hooks; a value implementing no hook interface is an
// error (most likely a pointer/value receiver mix-up).
func newHookSet(hooks []any, logger *slog.Logger) (*hookSet, error) {
	if len(hooks) == 0 {
		return nil, nil
	}
	h := &hookSet{logger: logger}
	for i, v := range hooks {
		n := 0
		add := func(ok bool) {
			if ok {
				n++
			}
		}
		if x, ok := v.(BrokerConnectHook); ok {
			h.connect = append(h.connect, x)
			add(ok)
		}
		if x, ok := v.(BrokerDisconnectHook); ok {
			h.disconnect = append(h.disconnect, x)
			add(ok)
		}
		if x, ok := v.(RequestWrittenHook); ok {
			h.written = append(h.written, x)
			add(ok)
		}
		if x, ok := v.(ResponseReadHook); ok {
			h.read = append(h.read, x)
			add(ok)
		}
		if x, ok := v.(ThrottleHook); ok {
			h.throttle = append(h.throttle, x)
			add(ok)
		}
		if x, ok := v.(ProduceBatchHook); ok {
			h.produceBatch = append(h.produceBatch, x)
			add(ok)
		}
		if x, ok := v.(ProduceHook); ok {
			h.produce = append(h.produce, x)
			add(ok)
		}
		if x, ok := v.(ProduceRecordHook); ok {
			h.produceRecord = append(h.produceRecord, x)
			add(ok)
		}
		if x, ok := v.(BufferHook); ok {
			h.buffer = append(h.buffer, x)
			add(ok)
		}
		if x, ok := v.(FetchBatchHook); ok {
			h.fetchBatch = append(h.fetchBatch, x)
			add(ok)
		}
		if x, ok := v.(RebalanceHook); ok {
			h.rebalance = append(h.rebalance, x)
			add(ok)
		}
		if x, ok := v.(CommitHook); ok {
			h.commit = append(h.commit, x)
			add(ok)
		}
		if x, ok := v.(HandlerStartHook); ok {
			h.handlerStart = append(h.handlerStart, x)
			add(ok)
		}
		if x, ok := v.(HandlerFinishHook); ok {
			h.handlerFinish = append(h.handlerFinish, x)
			add(ok)
		}
		if x, ok := v.(LagHook); ok {
			h.lag = append(h.lag, x)
			add(ok)
		}
		if x, ok := v.(StallHook); ok {
			h.stall = append(h.stall, x)
			add(ok)
		}
		if n == 0 {
			return nil, &ConfigError{Option: "WithHooks", Problem: fmt.Sprintf("value %d (%T) implements none of keel's hook interfaces", i, v),
				Fix: "implement at least one (BrokerConnectHook, ProduceRecordHook, ...); check pointer versus value receivers"}
		}
	}
	return h, nil
}

// guard recovers a hook's panic: a hook must never end a keel goroutine.
func (h *hookSet) guard(name string) {
	if r := recover(); r != nil {
		h.logger.Error("keel: a hook panicked; the call was skipped", "hook", name, "err", errs.Recovered(name, r))
	}
}

func (h *hookSet) onConnect(broker string) {
	defer h.guard("OnBrokerConnect")
	for _, x := range h.connect {
		x.OnBrokerConnect(broker)
	}
}

func (h *hookSet) onDisconnect(broker string, err error) {
	defer h.guard("OnBrokerDisconnect")
	for _, x := range h.disconnect {
		x.OnBrokerDisconnect(broker, err)
	}
}

func (h *hookSet) onWritten(broker string, key int16, bytes int, wait time.Duration, err error) {
	defer h.guard("OnRequestWritten")
	rw := RequestWritten{Broker: broker, API: kmsg.NameForKey(key), Key: key, Bytes: bytes, WriteWait: wait, Err: err}
	for _, x := range h.written {
		x.OnRequestWritten(rw)
	}
}

func (h *hookSet) onRead(broker string, key int16, bytes int, latency time.Duration) {
	defer h.guard("OnResponseRead")
	rr := ResponseRead{Broker: broker, API: kmsg.NameForKey(key), Key: key, Bytes: bytes, Latency: latency}
	for _, x := range h.read {
		x.OnResponseRead(rr)
	}
}

func (h *hookSet) onThrottle(broker string, key int16, d time.Duration) {
	defer h.guard("OnThrottle")
	for _, x := range h.throttle {
		x.OnThrottle(broker, kmsg.NameForKey(key), d)
	}
}

func (h *hookSet) onProduceBatch(b ProduceBatch) {
	defer h.guard("OnProduceBatch")
	for _, x := range h.produceBatch {
		x.OnProduceBatch(b)
	}
}

func (h *hookSet) onProduce(ctx context.Context, m *Message) {
	defer h.guard("OnProduce")
	for _, x := range h.produce {
		x.OnProduce(ctx, m)
	}
}

func (h *hookSet) onProduceRecord(d Delivery) {
	defer h.guard("OnProduceRecord")
	for _, x := range h.produceRecord {
		x.OnProduceRecord(d)
	}
}

func (h *hookSet) onBuffered(topic string, records int, bytes int64) {
	defer h.guard("OnBuffered")
	for _, x := range h.buffer {
		x.OnBuffered(topic, records, bytes)
	}
}

func (h *hookSet) onUnbuffered(topic string, records int, bytes int64) {
	defer h.guard("OnUnbuffered")
	for _, x := range h.buffer {
		x.OnUnbuffered(topic, records, bytes)
	}
}

func (h *hookSet) onFetchBatch(b FetchBatch) {
	defer h.guard("OnFetchBatch")
	for _, x := range h.fetchBatch {
		x.OnFetchBatch(b)
	}
}

func (h *hookSet) onRebalanceStart(s RebalanceStart) {
	defer h.guard("OnRebalanceStart")
	for _, x := range h.rebalance {
		x.OnRebalanceStart(s)
	}
}

func (h *hookSet) onRebalance(r Rebalance) {
	defer h.guard("OnRebalance")
	for _, x := range h.rebalance {
		x.OnRebalance(r)
	}
}

func (h *hookSet) onCommit(c Commit) {
	defer h.guard("OnCommit")
	for _, x := range h.commit {
		x.OnCommit(c)
	}
}

// onHandlerStart returns the ctx the handler gets. A hook returning nil
// (or panicking) leaves ctx as it was.
func (h *hookSet) onHandlerStart(ctx context.Context, group string, m *Message) (out context.Context) {
	out = ctx
	defer h.guard("OnHandlerStart")
	for _, x := range h.handlerStart {
		if next := x.OnHandlerStart(out, group, m); next != nil {
			out = next
		}
	}
	return out
}

func (h *hookSet) onHandlerFinish(ctx context.Context, f HandlerFinish) {
	defer h.guard("OnHandlerFinish")
	for _, x := range h.handlerFinish {
		x.OnHandlerFinish(ctx, f)
	}
}

func (h *hookSet) onLag(l Lag) {
	defer h.guard("OnLag")
	for _, x := range h.lag {
		x.OnLag(l)
	}
}

func (h *hookSet) onStall(s Stall) {
	defer h.guard("OnStall")
	for _, x := range h.stall {
		x.OnStall(s)
	}
}

// connHooks adds the request hooks to the connections' hooks, only those
// installed: a nil func is the connection's one check per request.
func (h *hookSet) connHooks(hk *conn.Hooks) {
	if h == nil {
		return
	}
	if len(h.written) > 0 {
		hk.OnRequestWritten = h.onWritten
	}
	if len(h.read) > 0 {
		hk.OnResponseRead = h.onRead
	}
}

// handlers reports whether handler calls are watched by any hook.
func (h *hookSet) handlers() bool {
	return h != nil && (len(h.handlerStart) > 0 || len(h.handlerFinish) > 0)
}
