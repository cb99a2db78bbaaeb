package integration

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
	"github.com/keel-go/keel/retry"
)

// Issue 14: the retry package works per record under keel.Parallel. A
// record waiting out its retry (blocking mode, in place) holds only its
// own key: every record of the other keys of its partition, produced after
// it, finishes while it waits; the records of its own key wait behind it
// and follow it in order.
func TestRetryParallelWaitHoldsOnlyItsKey(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topics(1, "orders", "orders.dlt"),
		keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	const n = 400
	// id 0 and every 40th are key "slow"; the others have keys of their own.
	key := func(id int) []byte {
		if id%40 == 0 {
			return []byte("slow")
		}
		return []byte("k" + strconv.Itoa(id))
	}
	retryProduceIDs(t, ctx, p, "orders", n, key)
	var mu sync.Mutex
	calls := map[int]int{}
	var doneAt [n]time.Time
	var slowOrder []int
	h := func(hctx context.Context, m *keel.Message) error {
		id, _ := strconv.Atoi(string(m.Value))
		mu.Lock()
		defer mu.Unlock()
		calls[id]++
		if id == 0 && calls[id] <= 2 {
			return fmt.Errorf("id 0 fails (call %d)", calls[id])
		}
		doneAt[id] = time.Now()
		if id%40 == 0 {
			slowOrder = append(slowOrder, id)
		}
		return nil
	}
	startRetryMember(t, c, "parallel-retry", []string{"orders"}, h, retry.Blocking(), retry.Tiers(time.Second, 2*time.Second), retry.MaxAttempts(5),
		retry.GroupOptions(fastGroup(keel.Parallel(keel.KeyOrder, 32, 0))...))
	retryWaitFor(t, ctx, "every record", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range n {
			if doneAt[i].IsZero() {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	if calls[0] != 3 {
		t.Fatalf("id 0 handled %d times, want 3 (two failures, then success)", calls[0])
	}
	for id := 1; id < n; id++ {
		if id%40 != 0 && doneAt[id].After(doneAt[0]) {
			t.Errorf("id %d (another key) finished %v after id 0's retries ended: the wait held more than its key", id, doneAt[id].Sub(doneAt[0]))
			break
		}
	}
	for i := 1; i < len(slowOrder); i++ {
		if slowOrder[i] < slowOrder[i-1] {
			t.Fatalf("key slow handled out of order: %v", slowOrder)
		}
	}
	if len(slowOrder) != n/40 || slowOrder[0] != 0 {
		t.Fatalf("key slow: %v", slowOrder)
	}
}

// OnHandlerError decides per record under keel.Parallel: SkipMessage marks
// the failed record processed and everything goes on; StopPartition stops
// the partition before it — the committed offset never passes it — and
// a Seek to where it stopped starts it again.
func TestGroupParallelHandlerErrorPerRecord(t *testing.T) {
	cl := groupCluster(t, 1)
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	const n = 300
	if failed := produceIDs(t, ctx, p, "orders", n, func(i int) []byte { return []byte(fmt.Sprint("k", i%10)) }); len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	errBad := errors.New("bad record")
	for _, action := range []keel.HandlerAction{keel.SkipMessage, keel.StopPartition} {
		seen := newProcessed()
		group := fmt.Sprintf("onerror-%d", action)
		var failOnce sync.Once
		failed := make(chan struct{})
		m := startMember(t, c, group, func(hctx context.Context, msg *keel.Message) error {
			if msg.Offset == 100 {
				fail := false
				failOnce.Do(func() { fail = true })
				if fail {
					defer close(failed)
					return errBad
				}
			}
			seen.add(msg)
			return nil
		}, fastGroup(keel.Parallel(keel.KeyOrder, 16, 0), keel.OnHandlerError(func(*keel.Message, error) keel.HandlerAction { return action }))...)
		<-failed
		if action == keel.SkipMessage {
			seen.waitAll(t, ctx, n-1) // all but 100, which was skipped
			if missing, dup := seen.report(n); missing != 1 || dup != 0 {
				t.Fatalf("SkipMessage: missing %d (want 1: the skipped record), duplicated %d", missing, dup)
			}
			m.stop(t)
			continue
		}
		// StopPartition: the commit stays at or below the failed record
		// however long we wait; a Seek to it (where the partition
		// stopped) handles everything from there.
		time.Sleep(500 * time.Millisecond)
		if err := m.g.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		adm := newAdmin(t, c)
		at := committedOf(t, ctx, adm, group, 0)
		if at > 100 {
			t.Fatalf("StopPartition: committed %d, past the failed record 100", at)
		}
		if err := m.g.Seek(ctx, keel.TopicPartition{Topic: "orders", Partition: 0}, keel.AtOffset(max(at, 0))); err != nil {
			t.Fatal(err)
		}
		seen.waitAll(t, ctx, n)
		m.stop(t)
	}
}
