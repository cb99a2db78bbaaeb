package integration

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
	"github.com/keel-go/keel/retry"
)

// Records dead-lettered while a bug made them fail are replayed to their
// topic once it is fixed, and handled there. A replay stopped half-way
// (Max) resumes where it stopped; running it again finds nothing new.
func TestRetryReplayMovesDeadLettersBack(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topic("orders", 4), keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 90*time.Second)
	const n = 200
	retryProduceIDs(t, ctx, p, "orders", n, func(i int) []byte { return []byte("k" + strconv.Itoa(i%10)) })
	var broken atomic.Bool
	broken.Store(true)
	bad := func(id int) bool { return id%10 == 3 }
	ledger := newRetryLedger()
	startRetryMember(t, c, "billing", []string{"orders"}, func(ctx context.Context, m *keel.Message) error {
		id, _ := ledger.saw(m)
		if bad(id) && broken.Load() {
			return retry.Permanent(errors.New("the parser rejects it"))
		}
		ledger.succeeded(id)
		return nil
	}, retry.Tiers(time.Second), retry.MaxAttempts(2), retry.CreateMissingTopics(-1, nil), retry.GroupOptions(fastGroup()...))
	retryWaitFor(t, ctx, "the good records handled and the bad dead-lettered", func() bool {
		return ledger.successCount() == n-n/10 && retryHWMSum(cl, "orders.dlt") == n/10
	})

	broken.Store(false) // the fix is deployed
	replayed := map[string]bool{}
	first, err := retry.Replay(ctx, c, retry.ReplayOptions{DLT: "orders.dlt", Max: 5,
		OnReplay: func(from *keel.Message, to keel.Delivery) { replayed[string(from.Value)] = true }})
	if err != nil {
		t.Fatal(err)
	}
	if first.Replayed != 5 || !first.Remaining || first.Group != "keel-replay.orders.dlt" {
		t.Fatalf("first replay: %+v", first)
	}
	rest, err := retry.Replay(ctx, c, retry.ReplayOptions{DLT: "orders.dlt",
		OnReplay: func(from *keel.Message, to keel.Delivery) {
			if replayed[string(from.Value)] {
				t.Errorf("record %s replayed twice", from.Value)
			}
			replayed[string(from.Value)] = true
		}})
	if err != nil {
		t.Fatal(err)
	}
	if rest.Replayed != n/10-5 || rest.Remaining || rest.Skipped != 0 {
		t.Fatalf("resumed replay: %+v", rest)
	}
	again, err := retry.Replay(ctx, c, retry.ReplayOptions{DLT: "orders.dlt"})
	if err != nil || again.Replayed != 0 {
		t.Fatalf("third replay: %+v, %v", again, err)
	}
	retryWaitFor(t, ctx, "the replayed records handled", func() bool { return ledger.successCount() == n })

	ledger.mu.Lock()
	for id := range n {
		if ledger.successes[id] != 1 {
			t.Errorf("id %d handled %d times", id, ledger.successes[id])
		}
		if bad(id) && (len(ledger.attempts[id]) != 2 || ledger.attempts[id][1] != 1) {
			t.Errorf("id %d: attempts %v; the replayed copy must start again at attempt 1", id, ledger.attempts[id])
		}
	}
	ledger.mu.Unlock()
	// The copies in orders: fresh attempt headers, the dead letter named.
	copies := 0
	for _, m := range retryReadAll(t, cl, "orders") {
		info, tagged, err := retry.InfoOf(m)
		if info.ReplayedFrom == "" {
			continue
		}
		copies++
		if tagged || err != nil || m.Key == nil {
			t.Fatalf("replayed copy of %s still carries retry headers (or lost its key): %+v", m.Value, info)
		}
	}
	if copies != n/10 {
		t.Fatalf("%d replayed copies in orders, want %d", copies, n/10)
	}
}

// Filters: only matching records are replayed; a replay with filters
// records its progress under its own group, so a later full replay still
// sees everything.
func TestRetryReplayFilters(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topics(2, "orders", "orders.dlt"))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	// Dead letters as a policy writes them.
	for i := range 30 {
		m := &keel.Message{Topic: "orders.dlt", Key: []byte("k" + strconv.Itoa(i%3)), Value: []byte(strconv.Itoa(i)), Headers: []keel.Header{
			{Key: retry.HeaderOriginalTopic, Value: []byte("orders")}, {Key: retry.HeaderAttempt, Value: []byte("4")},
			{Key: retry.HeaderGroup, Value: []byte([]string{"billing", "audit"}[i%2])}, {Key: "trace", Value: []byte("t")},
		}}
		if _, err := p.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	res, err := retry.Replay(ctx, c, retry.ReplayOptions{DLT: "orders.dlt", Keys: [][]byte{[]byte("k1")}, FailedBy: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	// k1 is ids 1,4,7,...; billing is even ids: 4, 10, 16, 22, 28.
	if res.Replayed != 5 || res.Skipped != 25 || res.Group == "keel-replay.orders.dlt" {
		t.Fatalf("filtered replay: %+v", res)
	}
	none, err := retry.Replay(ctx, c, retry.ReplayOptions{DLT: "orders.dlt", Until: time.Now().Add(-time.Hour)})
	if err != nil || none.Replayed != 0 || none.Skipped != 30 {
		t.Fatalf("time-filtered replay: %+v, %v", none, err)
	}
	all, err := retry.Replay(ctx, c, retry.ReplayOptions{DLT: "orders.dlt"})
	if err != nil || all.Replayed != 30 {
		t.Fatalf("full replay after filtered ones: %+v, %v", all, err)
	}
	if got := retryHWMSum(cl, "orders"); got != 35 {
		t.Fatalf("orders holds %d records, want 35", got)
	}
	for _, m := range retryReadAll(t, cl, "orders") {
		if v, _ := retryHeader(m, "trace"); v != "t" {
			t.Fatalf("replayed copy lost its own header: %+v", m.Headers)
		}
	}

	// Without an origin header and without a destination, the replay
	// stops with an error and the record stays for the next run.
	if _, err := p.Send(ctx, &keel.Message{Topic: "orders.dlt", Value: []byte("orphan")}); err != nil {
		t.Fatal(err)
	}
	if _, err := retry.Replay(ctx, c, retry.ReplayOptions{DLT: "orders.dlt"}); err == nil || !retryErrContains(err, "has no keel-original-topic header") {
		t.Fatalf("replay of an orphan: %v", err)
	}
	fixed, err := retry.Replay(ctx, c, retry.ReplayOptions{DLT: "orders.dlt", Topic: "orders", Group: "keel-replay.orders.dlt"})
	if err != nil || fixed.Replayed != 1 {
		t.Fatalf("replay with a destination: %+v, %v", fixed, err)
	}
}

func retryHeader(m *keel.Message, k string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value), true
		}
	}
	return "", false
}

func retryErrContains(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}
