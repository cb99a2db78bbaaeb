package keel

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// consumeWatch samples a consumer's partitions (a group member's or a
// Consumer's): it tells LagHooks of lag that changed, at most once per
// lagEvery per partition, and looks for stalls (StallAfter) — a handler
// call running on one record that long (StallHandler), a partition whose
// position has not moved that long while it has lag and no handler is
// running on it (StallPartition: a handler that is running is the
// handler stall's business, so one stuck handler is one stall, not two).
// Stalls go to the consumer's Events(), StallHooks and the log, once per
// stall. One goroutine per consumer, ticking at stallTick(StallAfter) (a
// second when stall detection is off); none when neither stalls nor lag
// hooks are wanted.
type consumeWatch struct {
	group    string
	after    time.Duration // StallAfter; 0: no stall detection
	hooks    *hookSet      // nil when no hook is installed
	logger   *slog.Logger
	events   *consumerEvents
	sample   func() []PartitionStats // Stalled not filled
	handlers handlerSlots

	quit chan struct{}
	done chan struct{}

	mu    sync.Mutex
	parts map[TopicPartition]*watchedPart
	// handlerStalls: the handler calls reported stalled, by slot, with
	// the call they were in (a new call on the slot is a new stall).
	handlerStalls map[*handlerSlot]handlerCall
}

// lagEvery is how often, at most, a partition's lag is told to LagHooks.
const lagEvery = time.Second

// watchedPart is what the watch remembers of a partition between ticks.
type watchedPart struct {
	told    Lag
	toldAt  time.Time
	toldAny bool
	// position last seen, and since when it has not moved (a running
	// handler restarts the clock: see consumeWatch).
	pos     int64
	movedAt time.Time
	stalled bool // a StallPartition was reported and has not ended
}

func newConsumeWatch(client *Client, group string, events *consumerEvents, sample func() []PartitionStats) *consumeWatch {
	return &consumeWatch{
		group:         group,
		after:         client.cfg.stallAfter,
		hooks:         client.hooks,
		logger:        client.logger,
		events:        events,
		sample:        sample,
		parts:         map[TopicPartition]*watchedPart{},
		handlerStalls: map[*handlerSlot]handlerCall{},
	}
}

// start runs the watch's goroutine, if it has anything to do.
func (w *consumeWatch) start() {
	lagHooks := w.hooks != nil && len(w.hooks.lag) > 0
	if w.after <= 0 && !lagHooks {
		return
	}
	tick := time.Second
	if w.after > 0 {
		tick = stallTick(w.after)
	}
	w.quit, w.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(w.done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-w.quit:
				return
			case <-t.C:
				w.check(time.Now())
			}
		}
	}()
}

// stop ends the goroutine and waits for it.
func (w *consumeWatch) stop() {
	if w.quit == nil {
		return
	}
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.done
}

// check is one tick: lag to tell, stalls begun, stalls ended.
func (w *consumeWatch) check(now time.Time) {
	parts := w.sample()
	busy := w.handlers.busy()
	var lags []Lag
	var stalls []Stall
	w.mu.Lock()
	seen := make(map[TopicPartition]bool, len(parts))
	lagOn := map[TopicPartition]int64{}
	for i := range parts {
		ps := &parts[i]
		seen[ps.TopicPartition] = true
		lagOn[ps.TopicPartition] = ps.Lag
		wp := w.parts[ps.TopicPartition]
		if wp == nil {
			wp = &watchedPart{pos: ps.Position, movedAt: now}
			w.parts[ps.TopicPartition] = wp
		}
		if w.hooks != nil && len(w.hooks.lag) > 0 {
			l := Lag{Group: w.group, TopicPartition: ps.TopicPartition, HighWatermark: ps.HighWatermark,
				Position: ps.Position, Committed: ps.Committed, Lag: ps.Lag, CommittedLag: ps.CommittedLag}
			if (!wp.toldAny || l != wp.told) && now.Sub(wp.toldAt) >= lagEvery && ps.HighWatermark >= 0 {
				wp.told, wp.toldAt, wp.toldAny = l, now, true
				lags = append(lags, l)
			}
		}
		if w.after <= 0 {
			continue
		}
		if ps.Position != wp.pos || ps.Lag <= 0 || busy[ps.TopicPartition] {
			wp.pos, wp.movedAt, wp.stalled = ps.Position, now, false
			continue
		}
		if !wp.stalled && now.Sub(wp.movedAt) >= w.after {
			wp.stalled = true
			stalls = append(stalls, Stall{Kind: StallPartition, Group: w.group, TopicPartition: ps.TopicPartition,
				Offset: ps.Position, For: now.Sub(wp.movedAt), Lag: ps.Lag})
		}
	}
	for tp := range w.parts {
		if !seen[tp] {
			delete(w.parts, tp) // revoked, lost, unassigned: a new owner starts afresh
		}
	}
	if w.after > 0 {
		stalls = w.handlerStallsLocked(now, lagOn, stalls)
	}
	w.mu.Unlock()
	for _, l := range lags {
		w.hooks.onLag(l)
	}
	for _, st := range stalls {
		w.logger.Warn("keel: "+st.String(), "group", w.group, "partition", st.TopicPartition, "offset", st.Offset, "for", st.For)
		if w.events != nil {
			w.events.emit(st)
		}
		if w.hooks != nil && len(w.hooks.stall) > 0 {
			w.hooks.onStall(st)
		}
	}
}

// handlerStallsLocked adds to stalls the handler calls that reached
// StallAfter since the last tick, and forgets the reported calls that
// returned.
func (w *consumeWatch) handlerStallsLocked(now time.Time, lagOn map[TopicPartition]int64, stalls []Stall) []Stall {
	running := map[*handlerSlot]handlerCall{}
	w.handlers.each(func(s *handlerSlot, call handlerCall) {
		running[s] = call
		d := call.since.runningFor(now)
		if d < w.after {
			return
		}
		if prev, ok := w.handlerStalls[s]; ok && prev == call {
			return // reported already
		}
		w.handlerStalls[s] = call
		lag, ok := lagOn[s.tp]
		if !ok {
			lag = -1
		}
		stalls = append(stalls, Stall{Kind: StallHandler, Group: w.group, TopicPartition: s.tp, Offset: call.offset, For: d, Lag: lag})
	})
	for s, call := range w.handlerStalls {
		if now, ok := running[s]; !ok || now != call {
			delete(w.handlerStalls, s)
		}
	}
	return stalls
}

// stalled returns the partitions stalled now (either kind), for Stats.
func (w *consumeWatch) stalled() map[TopicPartition]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[TopicPartition]bool{}
	for tp, wp := range w.parts {
		if wp.stalled {
			out[tp] = true
		}
	}
	for s := range w.handlerStalls {
		out[s.tp] = true
	}
	return out
}

// monoBase is the origin of handler-call start times: nanoseconds since it
// fit one atomic word and are monotonic.
var monoBase = time.Now()

type monoTime int64

func monoNow() monoTime { return monoTime(time.Since(monoBase)) }

func (t monoTime) runningFor(now time.Time) time.Duration {
	return now.Sub(monoBase) - time.Duration(t)
}

// handlerSlot is one goroutine that calls a handler (a partition's worker,
// or one of a parallel lane's runners): what it is running now, read by
// the watch. Two words written by their goroutine alone, per record.
type handlerSlot struct {
	tp     TopicPartition
	offset atomic.Int64 // the record's offset + 1 while a call runs, else 0
	since  atomic.Int64 // when that call began (monoTime)
}

// handlerCall is one call a slot ran.
type handlerCall struct {
	offset int64
	since  monoTime
}

func (s *handlerSlot) begin(offset int64, at monoTime) {
	s.since.Store(int64(at))
	s.offset.Store(offset + 1)
}

func (s *handlerSlot) end() { s.offset.Store(0) }

// call returns what s runs now, if anything; a call that changed while it
// was read is skipped (the next tick sees it).
func (s *handlerSlot) call() (handlerCall, bool) {
	o := s.offset.Load()
	since := s.since.Load()
	if o == 0 || s.offset.Load() != o {
		return handlerCall{}, false
	}
	return handlerCall{offset: o - 1, since: monoTime(since)}, true
}

// handlerSlots is a consumer's slots. Slots are added and removed when a
// handler goroutine starts and ends, not per record.
type handlerSlots struct {
	mu  sync.Mutex
	set map[*handlerSlot]struct{}
}

func (h *handlerSlots) add(tp TopicPartition) *handlerSlot {
	s := &handlerSlot{tp: tp}
	h.mu.Lock()
	if h.set == nil {
		h.set = map[*handlerSlot]struct{}{}
	}
	h.set[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *handlerSlots) remove(s *handlerSlot) {
	h.mu.Lock()
	delete(h.set, s)
	h.mu.Unlock()
}

// each calls fn for every slot running a call now.
func (h *handlerSlots) each(fn func(*handlerSlot, handlerCall)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.set {
		if call, ok := s.call(); ok {
			fn(s, call)
		}
	}
}

// busy returns the partitions a handler runs on now.
func (h *handlerSlots) busy() map[TopicPartition]bool {
	out := map[TopicPartition]bool{}
	h.each(func(s *handlerSlot, _ handlerCall) { out[s.tp] = true })
	return out
}
