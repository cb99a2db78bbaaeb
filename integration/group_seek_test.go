package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// handledCounts counts handlings per offset of one partition.
type handledCounts struct {
	mu     sync.Mutex
	counts map[int64]int
}

func (h *handledCounts) add(o int64) {
	h.mu.Lock()
	if h.counts == nil {
		h.counts = map[int64]int{}
	}
	h.counts[o]++
	h.mu.Unlock()
}

func (h *handledCounts) get(o int64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[o]
}

// all reports whether offsets [from, to) were handled at least times times.
func (h *handledCounts) all(from, to int64, times int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for o := from; o < to; o++ {
		if h.counts[o] < times {
			return false
		}
	}
	return true
}

// want checks that offsets [from, to) were handled times times each.
func (h *handledCounts) want(t *testing.T, from, to int64, times int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for o := from; o < to; o++ {
		if got := h.counts[o]; got != times {
			t.Errorf("offset %d handled %d times, want %d (offsets %d..%d)", o, got, times, from, to-1)
			return
		}
	}
}

// Issue 14: Seek in a group, in the Run consumer's default order and with
// Parallel. A handler skips ahead from inside its own partition (records
// before the target are not handled, records after it are), the test seeks
// back from outside (everything from the target is handled again), and
// the target is committed: after Close, a new member starts exactly where
// the last seek and the records after it left the partition.
func TestGroupSeekInRunConsumer(t *testing.T) {
	for name, opts := range map[string][]keel.GroupOption{
		"sequential": fastGroup(),
		"parallel":   fastGroup(keel.Parallel(keel.NoOrder, 16, 0)),
	} {
		t.Run(name, func(t *testing.T) {
			cl := groupCluster(t, 1)
			c := newClient(t, cl)
			p := newProducer(t, c)
			ctx := testCtx(t, 60*time.Second)
			sendRange(t, ctx, p, 0, 100)
			tp := keel.TopicPartition{Topic: "orders", Partition: 0}
			var got handledCounts
			var g *keel.GroupConsumer
			ready := make(chan struct{})
			seekedFromHandler := make(chan error, 1)
			m := startMember(t, c, "seek-"+name, func(hctx context.Context, msg *keel.Message) error {
				<-ready // g is set
				got.add(msg.Offset)
				if msg.Offset == 20 && got.get(20) == 1 {
					seekedFromHandler <- g.Seek(hctx, tp, keel.AtOffset(60))
				}
				return nil
			}, opts...)
			g = m.g
			close(ready)
			if err := <-seekedFromHandler; err != nil {
				t.Fatalf("Seek from the partition's own handler: %v", err)
			}
			waitFor(t, ctx, "offsets 60..99", func() bool { return got.all(60, 100, 1) })
			// Forward from the handler: 21..59 never handled. (Parallel:
			// records already in flight when the seek came may finish, but
			// they no longer count; none before 60 is taken after it.)
			if name == "sequential" {
				got.want(t, 21, 60, 0)
			}
			got.want(t, 60, 100, 1)

			// Back from outside: 30.. handled again, 0..29 not.
			if err := g.Seek(ctx, tp, keel.AtOffset(30)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, ctx, "offsets 30..99 again", func() bool { return got.all(30, 60, 1) && got.all(60, 100, 2) })
			got.want(t, 0, 20, 1)
			got.want(t, 60, 100, 2)
			// AtLatest: nothing old again, then only what comes after.
			if err := g.Seek(ctx, tp, keel.AtLatest()); err != nil {
				t.Fatal(err)
			}
			sendRange(t, ctx, p, 100, 110)
			waitFor(t, ctx, "the records after the end", func() bool { return got.all(100, 110, 1) })
			got.want(t, 100, 110, 1)
			m.stop(t)
			adm, err := admin.New(c)
			if err != nil {
				t.Fatal(err)
			}
			if o := committedOf(t, ctx, adm, "seek-"+name, 0); o != 110 {
				t.Fatalf("committed %d after the seeks and Close, want 110", o)
			}
			// A partition this member does not own cannot be moved.
			other := keel.TopicPartition{Topic: "orders", Partition: 5}
			if err := g.Seek(ctx, other, keel.AtOffset(0)); !errors.Is(err, keel.ErrNotAssigned) {
				t.Fatalf("Seek of a partition not assigned: %v, want ErrNotAssigned", err)
			}
		})
	}
}

// Seek back, and the position to commit moves back with it: a member
// closed right after a Seek back, before any record after the target was
// processed, commits the target, so the next member handles everything
// from it again — the seek is not lost with the member.
func TestGroupSeekBackIsCommitted(t *testing.T) {
	cl := groupCluster(t, 1)
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	sendRange(t, ctx, p, 0, 50)
	tp := keel.TopicPartition{Topic: "orders", Partition: 0}
	var got handledCounts
	var stopping <-chan struct{}
	var ready sync.WaitGroup
	ready.Add(1)
	m := startMember(t, c, "seekback", func(hctx context.Context, msg *keel.Message) error {
		ready.Wait()
		if got.get(49) > 0 {
			// After the seek: give the record up when Close begins.
			<-stopping
			return keel.ErrConsumerClosed
		}
		got.add(msg.Offset)
		return nil
	}, fastGroup()...)
	stopping = m.g.Stopping()
	ready.Done()
	waitFor(t, ctx, "everything", func() bool { return got.get(49) == 1 })
	if err := m.g.Seek(ctx, tp, keel.AtOffset(10)); err != nil {
		t.Fatal(err)
	}
	m.stop(t)
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	if o := committedOf(t, ctx, adm, "seekback", 0); o != 10 {
		t.Fatalf("committed %d, want the seek target 10", o)
	}
}

// Seek in the Poll consumer: Poll returns records from the target on
// (nothing fetched before the seek), and the target is what gets
// committed.
func TestGroupSeekInPoller(t *testing.T) {
	cl := groupCluster(t, 1)
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	sendRange(t, ctx, p, 0, 100)
	g, err := keel.NewGroupPoller(c, "seekpoll", []string{"orders"}, fastGroup(keel.AutoCommitInterval(0))...)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	tp := keel.TopicPartition{Topic: "orders", Partition: 0}
	var first []*keel.Message
	for len(first) == 0 {
		if first, err = g.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	g.MarkProcessed(first...)
	if err := g.Seek(ctx, tp, keel.AtOffset(70)); err != nil {
		t.Fatal(err)
	}
	next, err := g.Poll(ctx)
	if err != nil || len(next) == 0 || next[0].Offset != 70 {
		t.Fatalf("after Seek to 70, Poll returned %d records from %v (%v)", len(next), offsetOf(next), err)
	}
	if err := g.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	if o := committedOf(t, ctx, adm, "seekpoll", 0); o != 70 {
		t.Fatalf("committed %d after Seek to 70 (nothing after it marked), want 70", o)
	}
	// A message handed out before the seek back is refused: its offset
	// is past the position now.
	if err := g.Seek(ctx, tp, keel.AtOffset(5)); err != nil {
		t.Fatal(err)
	}
	if err := g.MarkProcessed(next[len(next)-1]); err == nil {
		t.Errorf("MarkProcessed of offset %d handed out before a Seek back to 5 was accepted", next[len(next)-1].Offset)
	}
	// By time: the first record at or after the timestamp.
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	sendRange(t, ctx, p, 100, 110)
	if err := g.Seek(ctx, tp, keel.AtTime(mid)); err != nil {
		t.Fatal(err)
	}
	byTime, err := g.Poll(ctx)
	if err != nil || len(byTime) == 0 || byTime[0].Offset != 100 {
		t.Fatalf("after Seek by time, Poll returned %v (%v), want offset 100 first", offsetOf(byTime), err)
	}
}

func offsetOf(msgs []*keel.Message) string {
	if len(msgs) == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%d..%d", msgs[0].Offset, msgs[len(msgs)-1].Offset)
}
