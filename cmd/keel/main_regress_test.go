package main

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/keel-go/keel/keeltest"
)

// TestSecondInterruptQuits: the first Ctrl-C lets a command finish
// cleanly (a group member commits what it printed, within 15 s); when the
// cluster is gone that wait is long, and a second Ctrl-C must end the
// process at once, as in kcat and most command-line tools, instead of
// being swallowed.
func TestSecondInterruptQuits(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("f", 1))
	sendMessages(t, cl.Addr(), numbered("f", 0, "a", 2)...)
	p := startBinary(t, "consume", "-b", cl.Addr(), "-G", "g2", "-t", "f", "-o", "beginning")
	p.readLines(t, 2)
	cl.Close() // the final commit now waits for a cluster that is gone

	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		t.Skipf("the first interrupt already ended the process; nothing to test\nstderr:\n%s", p.stderr.String())
	case <-time.After(500 * time.Millisecond):
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		t.Logf("exited %v after the second interrupt: %v", time.Since(start).Round(time.Millisecond), p.waitErr)
	case <-time.After(8 * time.Second):
		t.Fatalf("still running 8s after a second SIGINT\nstderr:\n%s", p.stderr.String())
	}
	if p.waitErr == nil {
		t.Errorf("exit status 0 after a second interrupt cut the shutdown short")
	}
}

// TestDemoSummaryFailsWhenOrdersAreMissing: the demo's summary does not
// only print that orders went missing; it fails, so that keel demo exits
// non-zero (CI relies on its exit status).
func TestDemoSummaryFailsWhenOrdersAreMissing(t *testing.T) {
	cl := testCluster(t, keeltest.Topic(demoTopic, demoPartitions))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	o := &demoOut{w: &out, t0: time.Now()}
	ends := make(map[int32]int64)
	for p := range int32(demoPartitions) {
		ends[p] = 0
	}
	produced := &demoProduced{produced: 3, delivered: 3, ends: ends}
	if err := demoSummary(ctx, o, cl, produced, &demoConsumed{unique: 2}); err == nil {
		t.Errorf("summary of 3 delivered and 2 consumed did not fail:\n%s", out.String())
	}
}
