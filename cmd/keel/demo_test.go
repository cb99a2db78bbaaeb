package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The demo as a newcomer runs it: the built binary, exit 0, under the 30
// seconds it promises, showing each part of the tour in order.
func TestDemoBinary(t *testing.T) {
	start := time.Now()
	r := runBinary(t, nil, "demo")
	took := time.Since(start)
	t.Logf("keel demo took %v", took)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if took > 30*time.Second {
		t.Errorf("keel demo took %v, over its 30 s promise", took)
	}
	out := r.stdout
	if r.stderr != "" {
		t.Errorf("the demo wrote to stderr: %q", r.stderr)
	}
	for _, want := range []string{
		"broker 0 at 127.0.0.1:", "topic orders: 6 partitions", // the cluster
		"report  order-", "…and 597 more reports", "600 produced: 600 delivered, 0 failed", // delivery reports
		"event   BrokerConnected", // the Events() loop
		"errors.Is(err, keel.ErrUnknownTopic) = true, outcome: not written",
		"member-1  OnAssigned", "member-2  OnAssigned", // the first two members
		"member-3  joins the group",
		"consumed  600 unique, 0 duplicates, 0 lost",
		"committed 600 = produced 600 — every order accounted for",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}

	// The rebalance, in order: the slow handler starts, member-3 joins,
	// the slow handler finishes, then its partition is revoked (after the
	// commit) and only then assigned to member-3, which starts right after
	// the slow order.
	join := strings.Index(out, "member-3  joins the group")
	order := []*regexp.Regexp{
		regexp.MustCompile(`handler on orders/5 starts offset 10`),
		regexp.MustCompile(`member-3  joins the group`),
		regexp.MustCompile(`handler on orders/5 finished offset 10`),
		regexp.MustCompile(`OnRevoked   orders/5 — handler returned, committed offset 11, partition released`),
		regexp.MustCompile(`member-3  OnAssigned  [^\n]*orders/5`),
		regexp.MustCompile(`member-3  first order on orders/5: offset 11 \(member-\d processed up to 10\)`),
	}
	at := -1
	for _, re := range order {
		loc := re.FindStringIndex(out)
		if loc == nil {
			t.Errorf("demo output lacks %q", re)
			continue
		}
		if loc[0] < at {
			t.Errorf("%q appears out of order", re)
		}
		at = loc[0]
	}
	// Cooperative: every member that gave partitions up kept the others.
	if join >= 0 {
		revokes := regexp.MustCompile(`member-\d  OnRevoked   [^\n]*`).FindAllString(out[join:], -1)
		if len(revokes) < 2 {
			t.Errorf("want each of the first two members to give a partition up after the join, got %q", revokes)
		}
		for _, line := range revokes {
			if !strings.Contains(line, "; keeps orders/") {
				t.Errorf("a member gave up everything in a cooperative rebalance: %q", line)
			}
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out)
	}
}

// In process, the demo leaves no goroutine behind.
func TestDemoInProcessNoLeaks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"demo"}, stdio{out: &out, err: &errOut}); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
}
