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

	// handlerTime is the time spent in handler calls, sampled: each tick
	// adds the time since the last for every call running.
	handlerTime atomic.Int64

	mu    sync.Mutex
	parts map[TopicPartition]*watchedPart
	// calls are the handler calls running at the last tick, by slot.
	calls    map[*handlerSlot]*seenCall
	lastTick time.Time
}

// seenCall is a handler call the watch has seen running.
type seenCall struct {
	word     uint64    // the slot's word: which call
	since    time.Time // the first tick that saw it
	tick     time.Time // the last
	reported bool      // as a StallHandler
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
		group:  group,
		after:  client.cfg.stallAfter,
		hooks:  client.hooks,
		logger: client.logger,
		events: events,
		sample: sample,
		parts:  map[TopicPartition]*watchedPart{},
		calls:  map[*handlerSlot]*seenCall{},
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
	var lags []Lag
	var stalls []Stall
	lagOn := make(map[TopicPartition]int64, len(parts))
	for i := range parts {
		lagOn[parts[i].TopicPartition] = parts[i].Lag
	}
	w.mu.Lock()
	stalls, busy := w.handlerStallsLocked(now, lagOn, stalls)
	for i := range parts {
		ps := &parts[i]
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
		if _, ok := lagOn[tp]; !ok {
			delete(w.parts, tp) // revoked, lost, unassigned: a new owner starts afresh
		}
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

// handlerStallsLocked times the handler calls running (from the first
// tick that saw each), adds to stalls those that reached StallAfter, and
// forgets calls that returned. It also adds the time since the last tick
// for each call running to the sampled handler time, and returns the
// partitions a handler runs on now.
func (w *consumeWatch) handlerStallsLocked(now time.Time, lagOn map[TopicPartition]int64, stalls []Stall) ([]Stall, map[TopicPartition]bool) {
	busy := map[TopicPartition]bool{}
	var elapsed time.Duration
	if !w.lastTick.IsZero() {
		elapsed = now.Sub(w.lastTick)
	}
	w.lastTick = now
	running := 0
	w.handlers.each(func(s *handlerSlot, word uint64, offset int64) {
		busy[s.tp] = true
		running++
		seen, ok := w.calls[s]
		if !ok || seen.word != word {
			seen = &seenCall{word: word, since: now}
			w.calls[s] = seen
		}
		seen.tick = now
		if d := now.Sub(seen.since); w.after > 0 && !seen.reported && d >= w.after {
			seen.reported = true
			lag, ok := lagOn[s.tp]
			if !ok {
				lag = -1
			}
			stalls = append(stalls, Stall{Kind: StallHandler, Group: w.group, TopicPartition: s.tp, Offset: offset, For: d, Lag: lag})
		}
	})
	for s, seen := range w.calls {
		if !seen.tick.Equal(now) {
			delete(w.calls, s) // returned (or a new call, seen afresh above)
		}
	}
	w.handlerTime.Add(int64(elapsed) * int64(running))
	return stalls, busy
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
	for s, call := range w.calls {
		if call.reported {
			out[s.tp] = true
		}
	}
	return out
}

// handlerSlot is one goroutine that calls a handler (a partition's worker,
// or one of a parallel lane's runners): what it runs now, for the watch.
// No clock is read per record: the watch times a call from the first tick
// that sees it (so a stall's For is short by up to one tick), and samples
// handler time. Per record, two stores to words only this goroutine
// writes.
type handlerSlot struct {
	tp TopicPartition
	// word is the number of calls begun (its low bits) << slotOffsetBits
	// | the offset + 1 of the record of the last call begun. A call runs
	// while done is one behind that number.
	word atomic.Uint64
	done atomic.Int64 // calls returned
	n    int64        // calls begun; the slot's goroutine's alone
}

const (
	slotOffsetBits = 44
	slotOffsetMask = 1<<slotOffsetBits - 1 // also: an offset too large to hold
	slotSeqMask    = 1<<(64-slotOffsetBits) - 1
)

// begin marks a call on the record at offset begun.
func (s *handlerSlot) begin(offset int64) {
	s.n++
	s.word.Store(uint64(s.n)<<slotOffsetBits | uint64(min(offset+1, slotOffsetMask)))
}

// end marks the call begun last returned.
func (s *handlerSlot) end() { s.done.Store(s.n) }

// call returns the slot's call running now, if any (word tells calls
// apart), and its record's offset (-1 when too large for the slot). A call
// that ended while it was read is not running.
func (s *handlerSlot) call() (word uint64, offset int64, running bool) {
	d := s.done.Load()
	w := s.word.Load()
	if uint64(d+1)&slotSeqMask != w>>slotOffsetBits || s.done.Load() != d {
		return 0, 0, false
	}
	if o := int64(w & slotOffsetMask); o != slotOffsetMask {
		return w, o - 1, true
	}
	return w, -1, true
}

// handlerSlots is a consumer's slots. Slots are added and removed when a
// handler goroutine starts and ends, not per record.
type handlerSlots struct {
	mu      sync.Mutex
	set     map[*handlerSlot]struct{}
	retired int64 // calls of the slots removed
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
	h.retired += s.done.Load()
	h.mu.Unlock()
}

// calls returns how many handler calls returned, on every slot ever.
func (h *handlerSlots) calls() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.retired
	for s := range h.set {
		n += s.done.Load()
	}
	return n
}

// each calls fn for every slot running a call now.
func (h *handlerSlots) each(fn func(s *handlerSlot, word uint64, offset int64)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.set {
		if w, o, ok := s.call(); ok {
			fn(s, w, o)
		}
	}
}
