package integration

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-go/keel"
)

// keyLedger is the checker of parallel processing: every handling of
// every record, by which member, when it started and ended. It counts
// overlaps of one key's handlings and handlings out of offset order as
// they happen (in this process), and checks everything — including what
// other processes report — at the end.
type keyLedger struct {
	mu       sync.Mutex
	running  map[string]int   // key -> handlings running now, in this process
	last     map[string]int64 // key -> offset of its last record finished, in this process
	events   []ledgerEvent
	overlaps []string
	reorders []string
	finished atomic.Int64
}

// ledgerEvent is one record handled to the end (the handler returned nil).
type ledgerEvent struct {
	member     string
	partition  int32
	offset     int64
	key        string
	start, end time.Time
	id         int
}

func newKeyLedger() *keyLedger {
	return &keyLedger{running: map[string]int{}, last: map[string]int64{}}
}

// keyOf names a record's key for the checker; null keys are one key of
// their partition, as KeyOrder handles them.
func keyOf(m *keel.Message) string {
	if m.Key == nil {
		return fmt.Sprintf("%d/<null>", m.Partition)
	}
	return fmt.Sprintf("%d/%s", m.Partition, m.Key)
}

// begin notes that member starts handling m; it returns what end needs.
func (l *keyLedger) begin(member string, m *keel.Message) ledgerEvent {
	k := keyOf(m)
	id, _ := strconv.Atoi(string(m.Value))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running[k]++
	if l.running[k] > 1 {
		l.overlaps = append(l.overlaps, fmt.Sprintf("%s: offset %d started by %s while another record of the key was being handled", k, m.Offset, member))
	}
	if last, ok := l.last[k]; ok && m.Offset <= last {
		l.reorders = append(l.reorders, fmt.Sprintf("%s: offset %d started by %s after offset %d of the key finished", k, m.Offset, member, last))
	}
	return ledgerEvent{member: member, partition: m.Partition, offset: m.Offset, key: k, start: time.Now(), id: id}
}

// end notes that the handling begun as ev returned; processed says it
// returned nil. It returns how many handlings finished so far.
func (l *keyLedger) end(ev ledgerEvent, processed bool) int64 {
	ev.end = time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running[ev.key]--
	if !processed {
		return l.finished.Load()
	}
	l.last[ev.key] = max(l.last[ev.key], ev.offset)
	l.events = append(l.events, ev)
	return l.finished.Add(1)
}

// add records an event reported by another process.
func (l *keyLedger) add(ev ledgerEvent) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
	l.finished.Add(1)
}

// distinct returns how many different records were handled to the end.
func (l *keyLedger) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[[2]int64]bool{}
	for _, ev := range l.events {
		seen[[2]int64{int64(ev.partition), ev.offset}] = true
	}
	return len(seen)
}

// waitDistinct waits until n different records were handled.
func (l *keyLedger) waitDistinct(t *testing.T, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for l.distinct() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d records handled within %v", l.distinct(), n, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ledgerReport is what check found.
type ledgerReport struct {
	Records, Handled, Missing, Duplicated, AllowedDuplicates int
	Overlaps, Reorders, BadDuplicates                        []string
}

func (r ledgerReport) ok() bool {
	return r.Missing == 0 && r.Duplicated == r.AllowedDuplicates && len(r.Overlaps) == 0 && len(r.Reorders) == 0 && len(r.BadDuplicates) == 0
}

func (r ledgerReport) String() string {
	head := func(s []string) []string { return s[:min(len(s), 5)] }
	return fmt.Sprintf("%d records, %d handlings: missing %d, duplicated %d (%d allowed); %d overlaps %v; %d reorders %v; %d bad duplicates %v",
		r.Records, r.Handled, r.Missing, r.Duplicated, r.AllowedDuplicates, len(r.Overlaps), head(r.Overlaps), len(r.Reorders), head(r.Reorders), len(r.BadDuplicates), head(r.BadDuplicates))
}

// check counts, for records with ids 0..n-1: each handled at least once;
// a second handling only of a record the killed member handled at or
// after its partition's committed offset at the kill (killedAt; nil when
// nobody was killed); and, per key over every member and process, merged
// by start time: handlings never overlap and go in increasing offset
// order, except that a record handled again after the kill comes after
// the killed member's handling of it.
func (l *keyLedger) check(n int, killed string, killedAt map[int32]int64) ledgerReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	rep := ledgerReport{Records: n, Handled: len(l.events), Overlaps: slices.Clone(l.overlaps), Reorders: slices.Clone(l.reorders)}
	byRecord := map[int][]ledgerEvent{}
	for _, ev := range l.events {
		byRecord[ev.id] = append(byRecord[ev.id], ev)
	}
	again := map[[2]int64]bool{} // records handled by the killed member and again after it
	for id := range n {
		evs := byRecord[id]
		switch {
		case len(evs) == 0:
			rep.Missing++
			continue
		case len(evs) == 1:
			continue
		}
		rep.Duplicated += len(evs) - 1
		byKilled := 0
		for _, ev := range evs {
			if ev.member == killed {
				byKilled++
			}
		}
		ev := evs[0]
		at, known := killedAt[ev.partition]
		if killed != "" && len(evs) == 2 && byKilled == 1 && known && ev.offset >= at {
			rep.AllowedDuplicates++
			again[[2]int64{int64(ev.partition), ev.offset}] = true
			continue
		}
		rep.BadDuplicates = append(rep.BadDuplicates, fmt.Sprintf("id %d (%d/%d) handled %d times, %d by the killed member (committed at the kill: %d, known %v)", id, ev.partition, ev.offset, len(evs), byKilled, at, known))
	}
	byKey := map[string][]ledgerEvent{}
	for _, ev := range l.events {
		if ev.member == killed && again[[2]int64{int64(ev.partition), ev.offset}] {
			continue // handled again later: the later handling is the one in order
		}
		byKey[ev.key] = append(byKey[ev.key], ev)
	}
	for k, evs := range byKey {
		slices.SortFunc(evs, func(a, b ledgerEvent) int { return a.start.Compare(b.start) })
		for i := 1; i < len(evs); i++ {
			prev, ev := evs[i-1], evs[i]
			if ev.offset <= prev.offset {
				rep.Reorders = append(rep.Reorders, fmt.Sprintf("%s: offset %d (%s) started after offset %d (%s)", k, ev.offset, ev.member, prev.offset, prev.member))
			}
			if ev.start.Before(prev.end) && ev.member != prev.member {
				rep.Overlaps = append(rep.Overlaps, fmt.Sprintf("%s: offset %d (%s) started %v before offset %d (%s) ended", k, ev.offset, ev.member, prev.end.Sub(ev.start), prev.offset, prev.member))
			}
		}
	}
	return rep
}

// The checker itself: fed handlings that break each rule, it reports
// each, and a clean history passes.
func TestKeyLedgerCatchesViolations(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ev := func(member string, offset int64, key string, id, start, end int) ledgerEvent {
		return ledgerEvent{member: member, partition: 0, offset: offset, key: key, id: id, start: at(start), end: at(end)}
	}
	run := func(events ...ledgerEvent) ledgerReport {
		l := newKeyLedger()
		for _, e := range events {
			l.add(e)
		}
		return l.check(3, "killed", map[int32]int64{0: 1})
	}
	clean := run(ev("a", 0, "k", 0, 0, 5), ev("a", 1, "k", 1, 6, 9), ev("b", 2, "k", 2, 10, 12))
	if !clean.ok() {
		t.Fatalf("clean history: %s", clean)
	}
	for name, c := range map[string]struct {
		events []ledgerEvent
		bad    func(ledgerReport) bool
	}{
		"missing":   {[]ledgerEvent{ev("a", 0, "k", 0, 0, 1), ev("a", 1, "k", 1, 2, 3)}, func(r ledgerReport) bool { return r.Missing == 1 }},
		"reordered": {[]ledgerEvent{ev("a", 1, "k", 1, 0, 1), ev("a", 0, "k", 0, 2, 3), ev("a", 2, "k", 2, 4, 5)}, func(r ledgerReport) bool { return len(r.Reorders) == 1 }},
		"overlap across members": {[]ledgerEvent{ev("a", 0, "k", 0, 0, 10), ev("b", 1, "k", 1, 5, 12), ev("b", 2, "k", 2, 13, 14)},
			func(r ledgerReport) bool { return len(r.Overlaps) == 1 }},
		"duplicate without a kill": {[]ledgerEvent{ev("a", 0, "k", 0, 0, 1), ev("a", 1, "k", 1, 2, 3), ev("b", 1, "k", 1, 4, 5), ev("b", 2, "k", 2, 6, 7)},
			func(r ledgerReport) bool { return len(r.BadDuplicates) == 1 }},
		"duplicate before the killed member's commit": {[]ledgerEvent{ev("killed", 0, "k", 0, 0, 1), ev("b", 0, "k", 0, 4, 5), ev("b", 1, "k", 1, 6, 7), ev("b", 2, "k", 2, 8, 9)},
			func(r ledgerReport) bool { return len(r.BadDuplicates) == 1 }},
	} {
		if rep := run(c.events...); rep.ok() || !c.bad(rep) {
			t.Errorf("%s: not caught: %s", name, rep)
		}
	}
	// The one allowed duplicate: the killed member's record at or after
	// its committed offset, handled again after it.
	if rep := run(ev("a", 0, "k", 0, 0, 1), ev("killed", 1, "k", 1, 2, 3), ev("b", 1, "k", 1, 8, 9), ev("b", 2, "k", 2, 10, 11)); !rep.ok() || rep.AllowedDuplicates != 1 {
		t.Errorf("allowed duplicate: %s", rep)
	}
}
