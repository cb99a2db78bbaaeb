package integration

// kcat -> keel transactions (issue 13 interop): librdkafka's transactional
// producer, driven by kcat -X transactional.id (one transaction per run,
// committed when stdin ends), writes a committed, an aborted and another
// committed transaction. kcat cannot abort by itself: interrupted, it exits
// with its transaction open ("Program terminated while producing", kcat
// 1.7.1, librdkafka 2.0.2), and the coordinator aborts that transaction
// when the same transactional.id starts again, the third run. keel reading
// read_committed gets exactly the committed records and reaches every
// partition's end, read_uncommitted those and what kcat wrote of the
// aborted one, and a read_committed group commits the ends past
// librdkafka's markers. (keel -> kcat is TestTxnCommitAndAbortVisibility.)

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// kcatTxnInput renders vals as kcat -K : input lines ("key:value"), the key
// being the value's prefix before '-'.
func kcatTxnInput(vals []string) []byte {
	var b bytes.Buffer
	for _, v := range vals {
		fmt.Fprintf(&b, "%s:%s\n", v[:strings.IndexByte(v, '-')], v)
	}
	return b.Bytes()
}

// kcatAbortedTxn runs kcat transactionally with vals on a stdin it keeps
// open, waits until keel reading read_uncommitted sees some of them
// written (kcat sends what it has read of stdin so far; the rest waits),
// so that the abort has records to abort, then interrupts kcat, which
// exits leaving its transaction open (see the top of the file).
func kcatAbortedTxn(t *testing.T, ctx context.Context, kcat, addr, topic, txnID string, c *keel.Client, partitions int32, before int, vals []string) {
	t.Helper()
	kctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(kctx, kcat, "-P", "-b", addr, "-t", topic, "-K", ":", "-X", "transactional.id="+txnID, "-X", "linger.ms=5")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if _, err := stdin.Write(kcatTxnInput(vals)); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, kctx, c, topic, partitions, before+1, false); len(got) <= before {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("kcat's open transaction: nothing of it visible read_uncommitted; kcat stderr:\n%s", stderr.Bytes())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	// kcat's read of stdin resumes after the signal (SA_RESTART): the
	// end of input lets it see the interrupt, and abort rather than
	// commit (it then exits, the transaction left open).
	time.Sleep(200 * time.Millisecond)
	stdin.Close()
	// kcat exits non-zero after an interrupted transaction; what counts
	// is that it is aborted in the end, which the readers check.
	werr := cmd.Wait()
	if ee, ok := werr.(*exec.ExitError); ok && ee.Sys().(syscall.WaitStatus).Signaled() || kctx.Err() != nil {
		t.Fatalf("kcat did not end by itself after SIGINT: %v\nstderr:\n%s", werr, stderr.Bytes())
	}
	t.Logf("aborted kcat transaction (exit %v): stderr:\n%s", werr, stderr.Bytes())
}

// checkSomeAborted: got holds every committed value once, in order per
// key, and otherwise only values of aborted, each at most once, at least
// one of them (read_uncommitted sees what kcat wrote before its abort).
func checkSomeAborted(t *testing.T, who string, got, committed, aborted []string) {
	t.Helper()
	isAborted := map[string]bool{}
	for _, v := range aborted {
		isAborted[v] = true
	}
	var rest []string
	seen := map[string]int{}
	for _, v := range got {
		if isAborted[v] {
			seen[v]++
			continue
		}
		rest = append(rest, v)
	}
	checkExactly(t, who+" (committed part)", rest, committed)
	dup := 0
	for _, n := range seen {
		if n > 1 {
			dup++
		}
	}
	if len(seen) == 0 || dup > 0 {
		t.Errorf("%s: %d of the aborted transaction's records, %d duplicated; want some, none twice", who, len(seen), dup)
	}
}

func TestKcatTransactionsReadByKeel(t *testing.T) {
	kcat := kcatPath(t)
	const topic, partitions = "kcat-txn", 3
	cl := startCluster(t, keeltest.Brokers(2), keeltest.Topic(topic, partitions))
	c := newClient(t, cl)
	ctx := testCtx(t, 120*time.Second)

	first, aborted, last := txnValues("kc1", 200), txnValues("kab", 150), txnValues("kc2", 200)
	runKcat(t, ctx, kcat, kcatTxnInput(first), "-P", "-b", cl.Addr(), "-t", topic, "-K", ":", "-X", "transactional.id=kcat-src")
	kcatAbortedTxn(t, ctx, kcat, cl.Addr(), topic, "kcat-src", c, partitions, len(first), aborted)
	runKcat(t, ctx, kcat, kcatTxnInput(last), "-P", "-b", cl.Addr(), "-t", topic, "-K", ":", "-X", "transactional.id=kcat-src")

	committed := append(append([]string{}, first...), last...)
	checkExactly(t, "keel read_committed", messageValues(readAll(t, ctx, c, topic, partitions, len(committed), true)), committed)
	// Every transaction ended with its marker (the interrupted one's
	// written when the id started again): read_committed positions reach
	// the ends.
	checkExactly(t, "keel read_committed to the end", readToEnd(t, ctx, c, topic), committed)
	checkSomeAborted(t, "keel read_uncommitted", messageValues(readAll(t, ctx, c, topic, partitions, len(committed)+1, false)), committed, aborted)
	// The judge from outside agrees.
	checkExactly(t, "kcat read_committed", kcatValues(t, ctx, kcat, cl.Addr(), topic, "read_committed"), committed)

	// A read_committed group commits every partition's end, past the
	// markers librdkafka's transactions left.
	got := &collector{}
	g, err := keel.NewGroupConsumer(c, "kcat-txn-group", []string{topic}, fastGroup(keel.ReadCommitted())...)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- g.Run(rctx, keel.HandlerFunc(func(_ context.Context, m *keel.Message) error {
			got.add(string(m.Value))
			return nil
		}))
	}()
	got.waitCount(t, ctx, len(committed))
	waitCommitted(t, ctx, c, "kcat-txn-group", topic)
	checkNoLag(t, ctx, c, "kcat-txn-group", topic, partitions)
	if err := g.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	stop()
	<-done
	checkExactly(t, "keel group read_committed", got.snapshot(), committed)
}
