package keel

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// watchRecorder is a LagHook and StallHook that keeps what it was told.
type watchRecorder struct {
	mu     sync.Mutex
	lags   []Lag
	stalls []Stall
}

func (r *watchRecorder) OnLag(l Lag)     { r.mu.Lock(); r.lags = append(r.lags, l); r.mu.Unlock() }
func (r *watchRecorder) OnStall(s Stall) { r.mu.Lock(); r.stalls = append(r.stalls, s); r.mu.Unlock() }

// newTestWatch is a watch over parts (changed by the test between
// ticks), with StallAfter after, whose ticks the test drives with check.
func newTestWatch(t *testing.T, after time.Duration, parts *[]PartitionStats) (*consumeWatch, *watchRecorder, *consumerEvents) {
	t.Helper()
	rec := &watchRecorder{}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	hooks, err := newHookSet([]any{rec}, logger)
	if err != nil {
		t.Fatal(err)
	}
	ev := &consumerEvents{ch: make(chan Event, consumerEventsBuffer), stop: func() {}}
	w := &consumeWatch{group: "g", after: after, hooks: hooks, logger: logger, events: ev,
		sample: func() []PartitionStats { return append([]PartitionStats(nil), *parts...) },
		parts:  map[TopicPartition]*watchedPart{}, calls: map[*handlerSlot]*seenCall{}}
	return w, rec, ev
}

func part(p int32, hwm, pos int64) PartitionStats {
	return PartitionStats{TopicPartition: TopicPartition{Topic: "t", Partition: p}, HighWatermark: hwm, Position: pos,
		Committed: -1, Lag: lagOf(hwm, pos), CommittedLag: -1}
}

// A partition whose position stays while it has lag is reported once,
// StallAfter after it was first seen; it is reported again only after it
// moved and stalled anew; a partition without lag never is.
func TestWatchPartitionStallOnce(t *testing.T) {
	parts := []PartitionStats{part(0, 10, 3), part(1, 5, 5)}
	w, rec, ev := newTestWatch(t, time.Second, &parts)
	t0 := time.Unix(1000, 0)
	for i := range 30 { // 3 s in ticks of 100 ms
		w.check(t0.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	if len(rec.stalls) != 1 {
		t.Fatalf("stalls %+v, want one", rec.stalls)
	}
	st := rec.stalls[0]
	if st.Kind != StallPartition || st.Partition != 0 || st.Offset != 3 || st.Lag != 7 || st.For != time.Second || st.Group != "g" {
		t.Fatalf("stall %+v", st)
	}
	if got := len(ev.ch); got != 1 {
		t.Fatalf("%d events, want 1", got)
	}
	if !w.stalled()[st.TopicPartition] {
		t.Fatal("Stats would not show the partition stalled")
	}
	parts[0] = part(0, 10, 4) // moved: the stall ends
	w.check(t0.Add(3 * time.Second))
	if w.stalled()[st.TopicPartition] {
		t.Fatal("still stalled after moving")
	}
	for i := 1; i <= 15; i++ {
		w.check(t0.Add(3*time.Second + time.Duration(i)*100*time.Millisecond))
	}
	if len(rec.stalls) != 2 || rec.stalls[1].Offset != 4 {
		t.Fatalf("stalls %+v, want a second one at offset 4", rec.stalls)
	}
}

// A handler call running on a partition is a handler stall, once per
// call, and the partition's own stall is not reported meanwhile.
func TestWatchHandlerStallOnce(t *testing.T) {
	parts := []PartitionStats{part(0, 10, 3)}
	w, rec, _ := newTestWatch(t, time.Second, &parts)
	slot := w.handlers.add(parts[0].TopicPartition)
	t0 := time.Unix(1000, 0)
	slot.begin(3)
	for i := range 30 {
		w.check(t0.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	if len(rec.stalls) != 1 || rec.stalls[0].Kind != StallHandler || rec.stalls[0].Offset != 3 || rec.stalls[0].Lag != 7 {
		t.Fatalf("stalls %+v, want one handler stall at offset 3", rec.stalls)
	}
	if ht := time.Duration(w.handlerTime.Load()); ht != 2900*time.Millisecond {
		t.Fatalf("sampled handler time %v, want 2.9s (29 ticks of 100ms)", ht)
	}
	slot.end()
	slot.begin(3) // the same record again (a new call): a new stall if it lasts
	for i := 30; i < 45; i++ {
		w.check(t0.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	if len(rec.stalls) != 2 || rec.stalls[1].Kind != StallHandler {
		t.Fatalf("stalls %+v, want a second handler stall for the second call", rec.stalls)
	}
	slot.end()
	if w.handlers.calls() != 2 {
		t.Fatalf("calls %d, want 2", w.handlers.calls())
	}
	w.handlers.remove(slot)
	if w.handlers.calls() != 2 {
		t.Fatalf("calls after the slot went %d, want 2", w.handlers.calls())
	}
}

// Lag is told when it changed, at most once a second per partition, and
// not before the high watermark is known.
func TestWatchLagThrottled(t *testing.T) {
	parts := []PartitionStats{part(0, -1, 0)}
	w, rec, _ := newTestWatch(t, 0, &parts)
	t0 := time.Unix(1000, 0)
	w.check(t0)
	if len(rec.lags) != 0 {
		t.Fatalf("told %+v before the high watermark was known", rec.lags)
	}
	parts[0] = part(0, 10, 0)
	w.check(t0.Add(100 * time.Millisecond))
	parts[0] = part(0, 10, 4)
	w.check(t0.Add(200 * time.Millisecond)) // changed, but told 100 ms ago
	w.check(t0.Add(1100 * time.Millisecond))
	w.check(t0.Add(3 * time.Second)) // unchanged: nothing
	if len(rec.lags) != 2 || rec.lags[0].Lag != 10 || rec.lags[1].Lag != 6 || rec.lags[1].Position != 4 {
		t.Fatalf("lags %+v, want 10 then 6", rec.lags)
	}
}

// Events() never blocks: what finds it full is counted, and the count
// goes out first once there is room.
func TestConsumerEventsDropWhenFull(t *testing.T) {
	ev := &consumerEvents{ch: make(chan Event, 2), stop: func() {}}
	for range 5 {
		ev.emit(Warning{Message: "x"})
	}
	<-ev.ch
	<-ev.ch
	ev.emit(Warning{Message: "y"})
	if d, ok := (<-ev.ch).(EventsDropped); !ok || d.Count != 3 {
		t.Fatalf("want EventsDropped{3} first, got %#v", d)
	}
	if w, ok := (<-ev.ch).(Warning); !ok || w.Message != "y" {
		t.Fatalf("got %#v, want the new event", w)
	}
	ev.close()
	ev.close()
	ev.emit(Warning{}) // after close: dropped, no panic
	if _, open := <-ev.ch; open {
		t.Fatal("channel not closed")
	}
}
