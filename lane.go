package keel

import (
	"context"
	"errors"
	"fmt"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/fetch"
)

// lane processes one partition's records on the Run path: a worker (one
// record at a time, in offset order) or, with Parallel, a parallelLane
// (several at once, by key or unordered). The dispatcher pushes fetched
// records into it; the member core stops it on revoke, loss, Close and at
// the end of Run.
type lane interface {
	// push queues a fetched run of the partition's records, dropping it
	// when it was fetched before the lane's position moved (f.Seq).
	push(f *fetch.FetchOf[Message])
	// setUserPaused applies GroupConsumer.Pause and Resume.
	setUserPaused(paused bool)
	// seek moves the lane to the offset to (see GroupConsumer.Seek).
	seek(ctx context.Context, to int64) error
	// stop: Close began; finish the records being handled, take no more.
	stop()
	// cancel stops the lane now: its handlers' ctx is cancelled with
	// cause, and no record starts any more.
	cancel(cause error)
	// done is closed once the lane's handlers all returned and its
	// goroutines ended.
	done() <-chan struct{}
	// afterExit runs fn once done is closed (at once if it is), on the
	// lane's goroutine; false if it had exited already and fn did not run.
	afterExit(fn func()) bool
	// resume says, once the lane exited, where a lane that continues the
	// partition starts and which records after that were processed
	// already; ok is false when the lane never received a record (the
	// fetcher has handed out nothing it did not process).
	resume() (at int64, done doneRanges, ok bool)
	// doneMetadata is the metadata to commit with the offset committed:
	// the records after it known processed (see doneRanges).
	doneMetadata(committed int64) string
}

// laneKey is the context key under which a lane's handlers find it, so
// that a Seek from a handler of its own partition is told apart.
type laneKey struct{}

// laneCtx makes a lane's handler ctx from the Run's ctx: it carries its
// values and ends with it (with its cause).
func laneCtx(runCtx context.Context, l lane) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(runCtx)
	return context.WithValue(ctx, laneKey{}, l), cancel
}

// fromOwnHandler reports whether ctx is (derived from) a handler ctx of l.
func fromOwnHandler(ctx context.Context, l lane) bool {
	v, _ := ctx.Value(laneKey{}).(lane)
	return v == l
}

// recordOutcome is what a handler's return means for its record.
type recordOutcome int8

const (
	// recordDone: processed (or skipped by OnHandlerError): it counts
	// towards the committed offset.
	recordDone recordOutcome = iota
	// recordLeft: given up unprocessed because the lane stops (revoke,
	// loss, Close, end of Run): not committed, and no failure.
	recordLeft
	// recordFailed: the handler failed and OnHandlerError says stop the
	// partition before this record.
	recordFailed
)

// outcome classifies a handler's return for m (whose offset was read
// before the handler ran: it may change m) on a lane whose handler ctx is
// ctx, logging what needs logging.
func (r *runPath) outcome(ctx context.Context, m *Message, offset int64, err error) recordOutcome {
	c := r.core
	if err == nil {
		return recordDone
	}
	if c.eos != nil {
		// The handler may have produced part of its outputs: the whole
		// transaction aborts and its partitions are processed again from
		// their committed offsets. The partition halts until then.
		tp := TopicPartition{Topic: m.Topic, Partition: m.Partition}
		c.eos.fail(fmt.Errorf("handler of %v at offset %d: %w", tp, offset, err))
		if ctx.Err() == nil {
			c.client.logger.Warn("keel: handler failed; the transaction aborts and its partitions are processed again", "group", c.group, "partition", tp, "offset", offset, "err", err)
		}
		return recordFailed
	}
	if cause := context.Cause(ctx); cause != nil && (errors.Is(err, context.Canceled) || errors.Is(err, cause)) {
		return recordLeft // revoked, lost or closing: the record stays unprocessed
	}
	if c.isStopping() && errors.Is(err, ErrConsumerClosed) {
		// The handler gave its record up because Close began (see
		// Stopping): unprocessed, and not a failure.
		return recordLeft
	}
	tp := TopicPartition{Topic: m.Topic, Partition: m.Partition}
	action := StopPartition
	if c.cfg.onError != nil {
		action = c.cfg.onError(m, err)
	}
	if action == SkipMessage {
		c.client.logger.Warn("keel: handler failed; skipping the message", "group", c.group, "partition", tp, "offset", offset, "err", err)
		return recordDone
	}
	attrs := []any{"group", c.group, "partition", tp, "offset", offset, "err", err}
	if pe := (*errs.PanicError)(nil); errors.As(err, &pe) {
		attrs = append(attrs, "stack", string(pe.Stack))
	}
	c.client.logger.Error("keel: handler failed; partition stopped (its offset is not committed past the failed message; Seek restarts it)", attrs...)
	return recordFailed
}

// callHandler runs h for m, turning a panic into a *PanicError (matching
// ErrPanicked, with the value and stack): the record then fails like any
// handler error and OnHandlerError decides, instead of the panic ending
// the user's process from a keel goroutine.
func callHandler(h Handler, ctx context.Context, m *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errs.Recovered("handler", r)
		}
	}()
	return h.Handle(ctx, m)
}

// Flow control: a partition whose lane falls behind stops being fetched
// until its queue drains, so fetched data does not pile up in memory. The
// chunk a worker is on no longer counts, so at most one more chunk (one
// partition's share of a fetch answer) is held beyond these.
const (
	queueHighBytes = 4 << 20
	queueLowBytes  = 1 << 20
)

// workChunk is one pushed run of a partition's records, in offset order.
type workChunk struct {
	msgs  []Message
	bytes int // of the messages' keys and values
	// tail, when At > 0, is where the partition's position moves once
	// every record of msgs is processed: past offsets after them that
	// hold no records (a commit marker, an aborted transaction; see
	// fetch.FetchOf.Next), so that the committed offset of a fully read
	// transactional partition is its end, not one short of it.
	tail fetch.Offset
}

// tailOf is the tail of a fetch whose records end before next, the
// offset expected next on the lane (-1: any), and then the new offset
// expected next.
func tailOf(f *fetch.FetchOf[Message], next int64) (fetch.Offset, int64) {
	if f.Next.At > next && f.Next.At > 0 {
		return f.Next, f.Next.At
	}
	return fetch.Offset{}, next
}

func msgBytes(msgs []Message) int {
	n := 0
	for i := range msgs {
		n += len(msgs[i].Key) + len(msgs[i].Value)
	}
	return n
}

// dropBefore returns msgs without the records below next (-1: none).
func dropBefore(msgs []Message, next int64) []Message {
	if next < 0 {
		return msgs
	}
	skip := 0
	for skip < len(msgs) && msgs[skip].Offset < next {
		skip++
	}
	return msgs[skip:]
}
