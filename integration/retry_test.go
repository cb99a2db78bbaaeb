package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
	"github.com/keel-go/keel/retry"
)

// retryClass is how the handler treats record id, deterministically:
// 10% fail once, 2% fail three times, 1% never succeed (half of them
// with a permanent error, half with plain errors until the attempts run
// out), the rest succeed at once.
func retryClass(id int) string {
	switch r := id % 200; {
	case r%100 < 10:
		return "once"
	case r%100 < 12:
		return "thrice"
	case r == 12:
		return "permanent"
	case r == 112:
		return "exhausted"
	}
	return "ok"
}

// expectedAttempts is the attempts a record of each class goes through
// with MaxAttempts(4).
var expectedAttempts = map[string][]int{
	"ok": {1}, "once": {1, 2}, "thrice": {1, 2, 3, 4}, "permanent": {1}, "exhausted": {1, 2, 3, 4},
}

// 50k records through retry topics with 1s and 5s tiers while members
// join and leave: every record ends exactly once as handled or as a dead
// letter, with the right attempts, never before its retry-after; the
// retry and dead-letter topics hold exactly the records they should, with
// the right headers.
func TestRetryTopicsUnderChurn(t *testing.T) {
	n := 50_000
	if testing.Short() {
		n = 10_000
	}
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topic("orders", 8), keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 3*time.Minute)
	began := time.Now()
	where := retryProduceIDs(t, ctx, p, "orders", n, func(i int) []byte { return []byte(strconv.Itoa(i % 1000)) })
	t.Logf("produced %d records in %v", n, time.Since(began).Round(time.Millisecond))

	want := map[string]int{}
	for id := range n {
		want[retryClass(id)]++
	}
	ledger := newRetryLedger()
	h := func(ctx context.Context, m *keel.Message) error {
		id, info := ledger.saw(m)
		switch retryClass(id) {
		case "once":
			if info.Attempt < 2 {
				return fmt.Errorf("id %d: fails once", id)
			}
		case "thrice":
			if info.Attempt < 4 {
				return fmt.Errorf("id %d: fails three times (attempt %d)", id, info.Attempt)
			}
		case "permanent":
			return retry.Permanent(fmt.Errorf("id %d: cannot be handled", id))
		case "exhausted":
			return fmt.Errorf("id %d: always fails (attempt %d)", id, info.Attempt)
		}
		ledger.succeeded(id)
		return nil
	}
	opts := []retry.Option{
		retry.Tiers(time.Second, 5*time.Second), retry.MaxAttempts(4), retry.CreateMissingTopics(-1, nil),
		retry.GroupOptions(fastGroup()...),
	}
	start := time.Now()
	var members []*retryMember
	for range 3 {
		members = append(members, startRetryMember(t, c, "billing", []string{"orders"}, h, opts...))
	}
	// Churn while the source is consumed and retries wait.
	rng := rand.New(rand.NewPCG(11, 11))
	joins, leaves := 0, 0
	for ev := 0; ev < 12; ev++ {
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		if (rng.IntN(2) == 0 && len(members) < 5) || len(members) <= 2 {
			members = append(members, startRetryMember(t, c, "billing", []string{"orders"}, h, opts...))
			joins++
		} else {
			i := rng.IntN(len(members))
			members[i].stop(t)
			members = append(members[:i], members[i+1:]...)
			leaves++
		}
	}
	wantHandled := n - want["permanent"] - want["exhausted"]
	wantDead := int64(want["permanent"] + want["exhausted"])
	t.Logf("churn: %d joins, %d graceful leaves in %v; handled %d of %d so far", joins, leaves, time.Since(start).Round(time.Millisecond), ledger.successCount(), wantHandled)
	retryWaitFor(t, ctx, "every record handled or dead-lettered", func() bool {
		return ledger.successCount() >= wantHandled && retryHWMSum(cl, "orders.dlt") >= wantDead
	})
	t.Logf("all records ended %v after the consumers started", time.Since(start).Round(time.Millisecond))
	// Let in-flight work settle, then stop: nothing more may happen.
	time.Sleep(500 * time.Millisecond)
	for _, m := range members {
		m.stop(t)
	}

	// The handlers' view: outcomes, attempts, timing.
	ledger.mu.Lock()
	var problems []string
	dupSuccess, repeated := 0, 0
	for id := range n {
		class := retryClass(id)
		got := ledger.attempts[id]
		distinct := slices.Compact(slices.Clone(got))
		if len(distinct) != len(got) {
			repeated += len(got) - len(distinct)
		}
		if !slices.Equal(distinct, expectedAttempts[class]) && len(problems) < 20 {
			problems = append(problems, fmt.Sprintf("id %d (%s): attempts %v, want %v", id, class, got, expectedAttempts[class]))
		}
		s := ledger.successes[id]
		switch {
		case (class == "permanent" || class == "exhausted") && s != 0:
			problems = append(problems, fmt.Sprintf("id %d (%s) handled successfully", id, class))
		case class != "permanent" && class != "exhausted" && s == 0:
			problems = append(problems, fmt.Sprintf("id %d (%s) never handled", id, class))
		case s > 1:
			dupSuccess++
		}
	}
	early, malformed := ledger.early, ledger.malformed
	ledger.mu.Unlock()
	t.Log(ledger.latenessSummary())
	t.Logf("attempts handled again at the same number (revoked mid-attempt): %d; records handled successfully twice: %d", repeated, dupSuccess)
	if len(early) > 0 {
		t.Errorf("%d attempts handled before their retry-after, e.g. %v", len(early), early[:min(5, len(early))])
	}
	if len(malformed) > 0 {
		t.Errorf("malformed headers: %v", malformed[:min(5, len(malformed))])
	}
	if dupSuccess > 0 {
		t.Errorf("%d records handled successfully more than once", dupSuccess)
	}
	if len(problems) > 0 {
		t.Fatalf("%d problems, e.g.:\n%v", len(problems), problems[:min(20, len(problems))])
	}

	// The topics' view: every retry and dead letter exactly once, with
	// the right headers.
	checkRetryTopic(t, cl, "orders.retry.1", time.Second, where, map[string]int{"once": 1, "thrice": 1, "exhausted": 1}, want, []int{2})
	checkRetryTopic(t, cl, "orders.retry.2", 5*time.Second, where, map[string]int{"thrice": 2, "exhausted": 2}, want, []int{3, 4})
	dead := retryReadAll(t, cl, "orders.dlt")
	seen := map[int]int{}
	for _, m := range dead {
		id, _ := strconv.Atoi(string(m.Value))
		seen[id]++
		info, ok, err := retry.InfoOf(m)
		class := retryClass(id)
		wantAttempt, wantReason := 1, retry.ReasonPermanent
		if class == "exhausted" {
			wantAttempt, wantReason = 4, retry.ReasonExhausted
		}
		switch {
		case !ok || err != nil:
			t.Fatalf("dead letter %d without proper headers: %v", id, err)
		case class != "permanent" && class != "exhausted":
			t.Fatalf("id %d (%s) dead-lettered wrongly: %+v", id, class, info)
		case info.Attempt != wantAttempt || info.DeadLetterReason != wantReason:
			t.Fatalf("dead letter %d: attempt %d reason %q, want %d %q", id, info.Attempt, info.DeadLetterReason, wantAttempt, wantReason)
		case info.OriginalTopic != "orders" || info.OriginalPartition != where[id].partition || info.OriginalOffset != where[id].offset:
			t.Fatalf("dead letter %d: origin %s/%d@%d, produced at %+v", id, info.OriginalTopic, info.OriginalPartition, info.OriginalOffset, where[id])
		case info.Group != "billing" || info.LastError == "" || info.FirstFailure.IsZero():
			t.Fatalf("dead letter %d: %+v", id, info)
		case string(m.Key) != strconv.Itoa(id%1000):
			t.Fatalf("dead letter %d has key %q", id, m.Key)
		}
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("id %d dead-lettered %d times", id, k)
		}
	}
	if int64(len(seen)) != wantDead {
		t.Fatalf("%d records dead-lettered, want %d", len(seen), wantDead)
	}
	t.Logf("checked: %d handled, %d dead-lettered (%d permanent, %d exhausted), %d once, %d thrice; nothing lost, nothing doubled",
		wantHandled, wantDead, want["permanent"], want["exhausted"], want["once"], want["thrice"])
}

// checkRetryTopic checks that topic holds, for each class, `copies`
// records per id of that class (no more, no fewer), each with the
// attempt numbers allowed, a retry-after one delay after it failed, and
// the origin it was produced at.
func checkRetryTopic(t *testing.T, cl *keeltest.Cluster, topic string, delay time.Duration, where []retrySrcPos, copies map[string]int, classes map[string]int, attempts []int) {
	t.Helper()
	recs := retryReadAll(t, cl, topic)
	perID := map[int][]int{}
	for _, m := range recs {
		id, err := strconv.Atoi(string(m.Value))
		if err != nil {
			t.Fatalf("%s: value %q", topic, m.Value)
		}
		info, ok, herr := retry.InfoOf(m)
		if !ok || herr != nil {
			t.Fatalf("%s: record %d without proper headers: %v", topic, id, herr)
		}
		if !slices.Contains(attempts, info.Attempt) {
			t.Fatalf("%s: id %d has attempt %d, want one of %v", topic, id, info.Attempt, attempts)
		}
		if info.OriginalTopic != "orders" || info.OriginalPartition != where[id].partition || info.OriginalOffset != where[id].offset {
			t.Fatalf("%s: id %d origin %s/%d@%d, produced at %+v", topic, id, info.OriginalTopic, info.OriginalPartition, info.OriginalOffset, where[id])
		}
		// The record was produced after the failure, so its timestamp
		// is at or after failure time = retry-after - delay.
		if d := info.RetryAfter.Sub(m.Timestamp); d > delay || d < delay-5*time.Second {
			t.Fatalf("%s: id %d retry-after %v after its timestamp, want about %v", topic, id, d, delay)
		}
		if info.FirstFailure.After(info.RetryAfter) || info.Group != "billing" || info.LastError == "" {
			t.Fatalf("%s: id %d: %+v", topic, id, info)
		}
		perID[id] = append(perID[id], info.Attempt)
	}
	total := 0
	for class, k := range copies {
		total += k * classes[class]
	}
	for id, atts := range perID {
		if k := copies[retryClass(id)]; len(atts) != k {
			t.Fatalf("%s: id %d (%s) appears %d times (attempts %v), want %d", topic, id, retryClass(id), len(atts), atts, k)
		}
	}
	if len(recs) != total {
		t.Fatalf("%s holds %d records, want %d", topic, len(recs), total)
	}
}
