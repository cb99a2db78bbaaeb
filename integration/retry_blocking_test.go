package integration

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
	"github.com/keel-go/keel/retry"
)

// Blocking mode retries in place: the records of each key are handled
// in the order they were produced (dead letters aside), even while a
// member joins and one leaves, and the ones that never succeed end in the
// dead-letter topic after the last attempt.
func TestRetryBlockingKeepsOrderPerKey(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topics(4, "orders", "orders.dlt"),
		keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 90*time.Second)
	const n, keys = 2000, 20
	retryProduceIDs(t, ctx, p, "orders", n, func(i int) []byte { return []byte("k" + strconv.Itoa(i%keys)) })
	failsTwice := func(id int) bool { return id%50 == 7 }
	never := func(id int) bool { return id%100 == 13 }

	var mu sync.Mutex
	calls := map[int]int{}
	order := map[int][]int{} // per key, ids handled successfully, in order
	handled := 0
	h := func(ctx context.Context, m *keel.Message) error {
		id, _ := strconv.Atoi(string(m.Value))
		mu.Lock()
		defer mu.Unlock()
		calls[id]++
		if never(id) || failsTwice(id) && calls[id] <= 2 {
			return fmt.Errorf("id %d fails (call %d)", id, calls[id])
		}
		order[id%keys] = append(order[id%keys], id)
		handled++
		return nil
	}
	opts := []retry.Option{retry.Blocking(), retry.Tiers(100*time.Millisecond, 300*time.Millisecond), retry.MaxAttempts(3),
		retry.GroupOptions(fastGroup()...)}
	a := startRetryMember(t, c, "ledger", []string{"orders"}, h, opts...)
	time.Sleep(500 * time.Millisecond)
	b := startRetryMember(t, c, "ledger", []string{"orders"}, h, opts...)
	time.Sleep(700 * time.Millisecond)
	a.stop(t)
	neverCount := 0
	for id := range n {
		if never(id) {
			neverCount++
		}
	}
	retryWaitFor(t, ctx, "every record handled or dead-lettered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled >= n-neverCount && retryHWMSum(cl, "orders.dlt") >= int64(neverCount)
	})
	b.stop(t)

	mu.Lock()
	defer mu.Unlock()
	for k, ids := range order {
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("key k%d handled out of order or twice: ... %d then %d", k, ids[i-1], ids[i])
			}
		}
	}
	if handled != n-neverCount {
		t.Fatalf("%d handled, want %d", handled, n-neverCount)
	}
	dead := retryReadAll(t, cl, "orders.dlt")
	if len(dead) != neverCount {
		t.Fatalf("%d dead letters, want %d", len(dead), neverCount)
	}
	for _, m := range dead {
		id, _ := strconv.Atoi(string(m.Value))
		info, _, err := retry.InfoOf(m)
		if !never(id) || err != nil || info.Attempt != 3 || info.DeadLetterReason != retry.ReasonExhausted || info.OriginalTopic != "orders" {
			t.Fatalf("dead letter %d: %+v, %v", id, info, err)
		}
	}
	for id, k := range calls {
		if failsTwice(id) && k < 3 {
			t.Fatalf("id %d called %d times", id, k)
		}
	}
}

// Close while a record waits (for its retry-after, or in blocking mode
// for its backoff) returns at once rather than at the end of the wait;
// the record is left uncommitted and the next member handles it.
func TestRetryCloseWhileWaiting(t *testing.T) {
	for _, mode := range []string{"retry topics", "blocking"} {
		t.Run(mode, func(t *testing.T) {
			cl := startCluster(t, keeltest.Brokers(1), keeltest.Topics(1, "orders", "orders.retry.1", "orders.dlt"),
				keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
			c := newClient(t, cl)
			p := newProducer(t, c)
			ctx := testCtx(t, 60*time.Second)
			retryProduceIDs(t, ctx, p, "orders", 1, nil)
			var mu sync.Mutex
			var calls []int
			waiting := make(chan struct{})
			var once sync.Once
			h := func(ctx context.Context, m *keel.Message) error {
				mu.Lock()
				calls = append(calls, retry.Attempt(m))
				first := len(calls) == 1
				mu.Unlock()
				if first {
					once.Do(func() { time.AfterFunc(500*time.Millisecond, func() { close(waiting) }) })
					return fmt.Errorf("first call fails")
				}
				return nil
			}
			opts := []retry.Option{retry.Tiers(time.Minute), retry.MaxAttempts(3), retry.GroupOptions(fastGroup()...)}
			if mode == "blocking" {
				opts = append(opts, retry.Blocking())
			}
			a := startRetryMember(t, c, "g", []string{"orders"}, h, opts...)
			select {
			case <-waiting:
			case <-ctx.Done():
				t.Fatal("the record was never handled")
			}
			began := time.Now()
			a.stop(t)
			if took := time.Since(began); took > 20*time.Second {
				t.Fatalf("Close took %v with a record waiting a minute", took)
			}
			t.Logf("Close returned %v after it began, with a record waiting a minute", time.Since(began).Round(time.Millisecond))
			if mode == "blocking" {
				// Blocking retries keep no record of the attempt: the next
				// owner starts the record again at once.
				startRetryMember(t, c, "g", []string{"orders"}, h, opts...)
				retryWaitFor(t, ctx, "the next member to handle the record", func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(calls) == 2
				})
				return
			}
			// The retry record is still there, uncommitted, waiting its
			// minute; the source record is committed and not handled again.
			recs := retryReadAll(t, cl, "orders.retry.1")
			if len(recs) != 1 {
				t.Fatalf("retry topic holds %d records", len(recs))
			}
			mu.Lock()
			if len(calls) != 1 {
				t.Fatalf("handler calls %v", calls)
			}
			mu.Unlock()
			adm, err := admin.New(c)
			if err != nil {
				t.Fatal(err)
			}
			committed, err := adm.GroupOffsets(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			if got := committed[keel.TopicPartition{Topic: "orders", Partition: 0}]; got != 1 {
				t.Fatalf("source committed at %d, want 1", got)
			}
			if got, ok := committed[keel.TopicPartition{Topic: "orders.retry.1", Partition: 0}]; ok && got != 0 {
				t.Fatalf("retry topic committed at %d: the abandoned record was marked", got)
			}
		})
	}
}
