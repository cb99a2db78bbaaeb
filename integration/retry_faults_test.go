package integration

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
	"github.com/keel-go/keel/retry"
)

// When the write to the retry topic fails, the source record is not
// committed: it is handled again (and the records behind it wait) until
// the write succeeds.
func TestRetryWriteFailureKeepsSourceUncommitted(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topics(1, "orders", "orders.retry.1", "orders.dlt"),
		keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	const n, failing = 20, 5
	where := retryProduceIDs(t, ctx, p, "orders", n, nil)

	fault := cl.FailRequests(kmsg.Produce, kerr.TopicAuthorizationFailed.Code, -1, keeltest.OnTopic("orders.retry.1"))
	ledger := newRetryLedger()
	var mu sync.Mutex
	firstAttempts := 0
	h := func(ctx context.Context, m *keel.Message) error {
		id, info := ledger.saw(m)
		if id == failing && info.Attempt == 1 {
			mu.Lock()
			firstAttempts++
			mu.Unlock()
			return fmt.Errorf("id %d fails its first attempt", id)
		}
		ledger.succeeded(id)
		return nil
	}
	startRetryMember(t, c, "billing", []string{"orders"}, h,
		retry.Tiers(time.Second), retry.MaxAttempts(2), retry.ProduceBackoff(50*time.Millisecond, 200*time.Millisecond),
		retry.GroupOptions(fastGroup()...))
	retryWaitFor(t, ctx, "the failing record to be handled three times", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstAttempts >= 3
	})
	time.Sleep(time.Second) // five commit intervals: nothing past the failing record may be committed
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.GroupOffsets(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if got := committed[keel.TopicPartition{Topic: "orders", Partition: 0}]; got != where[failing].offset {
		t.Fatalf("committed offset %d while the retry write fails; want %d (the failing record's)", got, where[failing].offset)
	}
	if s := ledger.successCount(); s != failing {
		t.Fatalf("%d records handled while the partition should wait at the failing one", s)
	}
	if hits := fault.Hits(); hits < 3 {
		t.Fatalf("fault hit %d times", hits)
	}
	fault.Remove()

	retryWaitFor(t, ctx, "every record handled", func() bool { return ledger.successCount() == n })
	mu.Lock()
	t.Logf("the failing record was handled %d times at attempt 1 before its retry write succeeded", firstAttempts)
	mu.Unlock()
	ledger.mu.Lock()
	atts := ledger.attempts[failing]
	early := ledger.early
	ledger.mu.Unlock()
	if atts[len(atts)-1] != 2 || ledger.successes[failing] != 1 || len(early) > 0 {
		t.Fatalf("failing record: attempts %v, successes %d, early %v", atts, ledger.successes[failing], early)
	}
	if recs := retryReadAll(t, cl, "orders.retry.1"); len(recs) != 1 {
		t.Fatalf("retry topic holds %d records, want 1", len(recs))
	}
	retryWaitFor(t, ctx, "the source committed to the end", func() bool {
		committed, err := adm.GroupOffsets(ctx, "billing")
		return err == nil && committed[keel.TopicPartition{Topic: "orders", Partition: 0}] == n
	})
}

// retryCrashEnv makes TestRetryCrashHelperProcess run a retry consumer in
// this test binary as a separate process, which the parent kills while a
// record waits out its retry-after.
const retryCrashEnv = "KEEL_RETRY_CRASH_HELPER_BROKERS"

// crashTier is the retry delay of the crash test: long enough that the
// member dies while waiting and the survivor takes over (session timeout
// 6s) before the record is due.
const crashTier = 20 * time.Second

func crashOpts(logger *slog.Logger) []retry.Option {
	opts := []retry.Option{
		retry.Tiers(crashTier), retry.MaxAttempts(2),
		// The group resets to "latest": the retry topic must start at the
		// earliest record anyway, or the record the crashed member waited
		// on (never committed) would be skipped by the survivor.
		retry.GroupOptions(fastGroup(keel.ResetOffset(keel.ResetLatest), keel.ResetOffsetFor(keel.ResetEarliest, "orders"))...),
	}
	if logger != nil {
		opts = append(opts, retry.Logger(logger))
	}
	return opts
}

// TestRetryCrashHelperProcess is the member that crashes; it runs only when
// started by TestRetryMemberCrashWhileWaiting.
func TestRetryCrashHelperProcess(t *testing.T) {
	brokers := os.Getenv(retryCrashEnv)
	if brokers == "" {
		t.Skip("helper process for TestRetryMemberCrashWhileWaiting")
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, a ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
		mu.Unlock()
	}
	c, err := keel.NewClient(keel.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		say("error %v", err)
		os.Exit(1)
	}
	// The policy's debug log says when a record starts waiting.
	logger := slog.New(slog.NewTextHandler(retryLineWriter{say}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rc, err := retry.NewGroupConsumer(c, "crashy-retry", []string{"orders"}, crashOpts(logger)...)
	if err != nil {
		say("error %v", err)
		os.Exit(1)
	}
	rc.Run(context.Background(), keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		say("handled %s attempt %d", m.Value, retry.Attempt(m))
		if retry.Attempt(m) == 1 {
			return fmt.Errorf("first attempt of %s fails", m.Value)
		}
		return nil
	}))
}

type retryLineWriter struct{ say func(string, ...any) }

func (w retryLineWriter) Write(b []byte) (int, error) {
	w.say("log %s", strings.TrimSpace(string(b)))
	return len(b), nil
}

// A member that dies (no Close) while a record waits out its retry-after:
// another member gets the partition after the session timeout, waits the
// rest of the time, and handles the record — not before its retry-after,
// and not lost.
func TestRetryMemberCrashWhileWaiting(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topics(1, "orders", "orders.retry.1", "orders.dlt"),
		keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 90*time.Second)
	const n = 3
	retryProduceIDs(t, ctx, p, "orders", n, nil)

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRetryCrashHelperProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), retryCrashEnv+"="+strings.Join(cl.Addrs(), ","))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	firstTries, waiting := 0, false
	for (!waiting || firstTries < n) && lines.Scan() {
		l := lines.Text()
		switch {
		case strings.HasPrefix(l, "handled ") && strings.HasSuffix(l, " attempt 1"):
			firstTries++
		case strings.HasPrefix(l, "handled "):
			t.Fatalf("the helper handled a retry before being killed: %s", l)
		case strings.HasPrefix(l, "error "):
			t.Fatalf("helper: %s", l)
		case strings.Contains(l, "waits until its retry-after") && strings.Contains(l, "orders.retry.1"):
			waiting = true
		}
	}
	if !waiting || firstTries < n {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper stopped before waiting (%d first attempts seen); its stderr:\n%s", firstTries, stderr.String())
	}
	// The source offsets must be committed before the kill (the survivor
	// must see only the retries). Wait for the commit itself rather than
	// for a few commit intervals, which a loaded machine can stretch; the
	// retries are due 20s after they failed, so there is time.
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	retryWaitFor(t, ctx, "the helper to commit the source records", func() bool {
		committed, err := adm.GroupOffsets(ctx, "crashy-retry")
		return err == nil && committed[keel.TopicPartition{Topic: "orders", Partition: 0}] == n
	})
	cmd.Process.Kill() // no Close, no LeaveGroup: the wait dies with it
	for lines.Scan() {
		if l := lines.Text(); strings.HasPrefix(l, "handled ") && !strings.HasSuffix(l, " attempt 1") {
			t.Fatalf("the helper handled a retry before dying: %s", l)
		}
	}
	cmd.Wait()
	killed := time.Now()

	retries := retryReadAll(t, cl, "orders.retry.1")
	if len(retries) != n {
		t.Fatalf("retry topic holds %d records, want %d", len(retries), n)
	}
	due := map[string]time.Time{}
	for _, m := range retries {
		info, _, _ := retry.InfoOf(m)
		due[string(m.Value)] = info.RetryAfter
		if !info.RetryAfter.After(killed) {
			t.Fatalf("record %s was due at %v, before the kill at %v: the crash was not during its wait", m.Value, info.RetryAfter, killed)
		}
	}

	ledger := newRetryLedger()
	startRetryMember(t, c, "crashy-retry", []string{"orders"}, func(ctx context.Context, m *keel.Message) error {
		id, info := ledger.saw(m)
		if info.Attempt == 1 {
			return fmt.Errorf("first attempt of %d fails", id)
		}
		ledger.succeeded(id)
		return nil
	}, crashOpts(nil)...)
	retryWaitFor(t, ctx, "the survivor to handle every retry", func() bool { return ledger.successCount() == n })
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	if len(ledger.early) > 0 {
		t.Fatalf("handled before the retry-after: %v", ledger.early)
	}
	for id := range n {
		if ledger.successes[id] != 1 {
			t.Fatalf("id %d handled %d times", id, ledger.successes[id])
		}
		if atts := ledger.attempts[id]; len(atts) != 1 || atts[0] != 2 {
			t.Fatalf("survivor saw attempts %v of id %d; want only the retry (the source was committed)", atts, id)
		}
	}
	t.Logf("member killed %v before the retries were due; the survivor handled them %s", due["0"].Sub(killed).Round(time.Millisecond), ledger.latenessSummaryLocked())
}
