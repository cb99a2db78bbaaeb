package integration

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// throttleCounter is a ThrottleHook counting what it is told, per API.
type throttleCounter struct {
	mu    sync.Mutex
	byAPI map[string]int
}

func (c *throttleCounter) OnThrottle(broker, api string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byAPI == nil {
		c.byAPI = map[string]int{}
	}
	c.byAPI[api]++
}

func (c *throttleCounter) count(api string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byAPI[api]
}

// TestFaultMatrixThrottling (issue 18, "throttling"): every broker answers
// Produce (then Fetch) as usual but with throttle_time_ms = 100, as under
// a quota (keeltest's Throttle control).
//
// keel's promise: nothing lost, duplicated or reordered; the client holds
// back on a throttled connection until the throttle ends (KIP-219: from
// Produce v6 and Fetch v8 the broker answers at once and expects that), so
// it sends each broker at most MaxInFlight requests of the kind per
// 100 ms — the test checks the count of throttled answers against the
// time taken, a bound a slow machine can only make easier, and reports
// the count beside the unthrottled run's; each throttle is reported to
// ThrottleHooks and as a Throttled event, and logged at Warn.
//
//	go test -race -count=1 -run TestFaultMatrixThrottling -v ./integration/
func TestFaultMatrixThrottling(t *testing.T) {
	n := 4_000
	if os.Getenv("KEEL_FAULTS") == "full" {
		n = 100_000
	}
	const throttle = 100 * time.Millisecond
	const brokers = 3

	t.Run("produce", func(t *testing.T) {
		cl := startCluster(t, keeltest.Brokers(brokers), keeltest.Topics(6, "free", "matrix"))
		hook := &throttleCounter{}
		c := newClient(t, cl, keel.WithHooks(hook))
		p := newProducer(t, c, keel.EventsBuffer(4096))
		var events atomic.Int64
		evCtx, stopEvents := context.WithCancel(context.Background())
		var evDone sync.WaitGroup
		evDone.Go(func() {
			for {
				select {
				case <-evCtx.Done():
					return
				case ev := <-p.Events():
					if th, ok := ev.(keel.Throttled); ok && th.API == "Produce" {
						events.Add(1)
					}
				}
			}
		})
		t.Cleanup(func() { stopEvents(); evDone.Wait() })
		ctx := testCtx(t, 5*time.Minute)
		key := func(i int) []byte { return []byte(strconv.Itoa(i % 1009)) }

		// The same load spread over 2 s, unthrottled and throttled:
		// the request rate is what a throttle slows.
		const spread = 2 * time.Second
		var freeRequests atomic.Int64
		counting := true
		cl.Control(kmsg.Produce, func(kmsg.Request) (kmsg.Response, error, bool) {
			if !counting {
				cl.DropControl()
				return nil, nil, false
			}
			freeRequests.Add(1)
			return nil, nil, false
		})
		start := time.Now()
		if failed := produceIDsThen(t, ctx, p, "free", n, key, spread, func() {}); len(failed) > 0 {
			t.Fatal(failed[0].Err)
		}
		free := time.Since(start)
		counting = false

		h := cl.Throttle(kmsg.Produce, throttle)
		start = time.Now()
		failed := produceIDsThen(t, ctx, p, "matrix", n, key, spread, func() {})
		took := time.Since(start)
		h.Remove()
		for _, d := range failed {
			t.Errorf("record failed under throttling: %v", d.Err)
		}
		rep := checkExactlyOnce(readTopic(t, cl, "matrix"), n)
		answers := h.Throttled()
		// Per broker and throttle period, at most MaxInFlight (5)
		// requests: the connection is muted until the throttle ends,
		// then up to 5 go out pipelined before the next throttled
		// answer mutes it again (the Java client does the same).
		limit := brokers * 5 * (int(took/throttle) + 1)
		time.Sleep(50 * time.Millisecond) // the last event
		t.Logf("ROW | throttling (Produce, 100 ms, every broker) | %d | %d | %d | %d | %d throttled requests (bound %d; unthrottled %d), %d hook calls, %d events | %v (unthrottled %v) |",
			n, rep.Lost, rep.Duplicated, rep.Reordered, answers, limit, freeRequests.Load(), hook.count("Produce"), events.Load(), took.Round(10*time.Millisecond), free.Round(10*time.Millisecond))
		if rep.Lost+rep.Duplicated+rep.Reordered != 0 {
			t.Fatal(rep)
		}
		if answers == 0 {
			t.Fatal("no produce answer was throttled: the scenario did not happen")
		}
		if answers > limit {
			t.Errorf("%d throttled produce answers in %v from %d brokers throttling %v each: the producer did not wait out the throttle", answers, took, brokers, throttle)
		}
		if hook.count("Produce") < answers || events.Load() == 0 {
			t.Errorf("throttles reported: %d to the hook, %d events, for %d throttled answers", hook.count("Produce"), events.Load(), answers)
		}
	})

	t.Run("consume", func(t *testing.T) {
		cl := groupCluster(t, 6)
		hook := &throttleCounter{}
		c := newClient(t, cl, keel.WithHooks(hook))
		ctx := testCtx(t, 5*time.Minute)
		// 4 KB keys: 16 MB to read through 1 MiB fetch buffers takes
		// many fetches, each answered with a throttle.
		pad := []byte(strings.Repeat("k", 4096))
		if failed := produceIDs(t, ctx, newProducer(t, c), "orders", n, func(int) []byte { return pad }); len(failed) > 0 {
			t.Fatal(failed[0].Err)
		}
		h := cl.Throttle(kmsg.Fetch, throttle)
		seen := newProcessed()
		start := time.Now()
		for range 2 {
			startMember(t, c, "throttled", func(ctx context.Context, m *keel.Message) error { seen.add(m); return nil },
				fastGroup(keel.MaxBufferedFetchBytes(1<<20))...)
		}
		seen.waitAll(t, ctx, n)
		took := time.Since(start)
		answers := h.Throttled()
		h.Remove()
		missing, dup := seen.report(n)
		limit := brokers * 2 * (int(took/throttle) + 1) // a fetch connection per broker per member
		t.Logf("ROW | throttling (Fetch, 100 ms, every broker) | %d | %d never processed | %d twice | %d throttled answers (bound %d), %d hook calls | %v |",
			n, missing, dup, answers, limit, hook.count("Fetch"), took.Round(10*time.Millisecond))
		if missing != 0 || dup != 0 {
			t.Fatalf("%d records never processed, %d twice", missing, dup)
		}
		if answers == 0 {
			t.Fatal("no fetch answer was throttled: the scenario did not happen")
		}
		if answers > limit {
			t.Errorf("%d throttled fetch answers in %v: the consumers did not wait out the throttle", answers, took)
		}
		if hook.count("Fetch") == 0 {
			t.Error("the ThrottleHook was never told of a fetch throttle")
		}
	})
}
