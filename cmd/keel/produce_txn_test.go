package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/keel-go/keel/keeltest"
)

// TestProduceTransactional: --transactional-id with --txn-records commits
// one transaction per N lines and the rest at end of input; Ctrl-C aborts
// the open one. consume reads read_committed by default and sees every
// committed line once and none of the aborted; --isolation
// read_uncommitted sees the aborted ones too.
func TestProduceTransactional(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("tx", 2))
	var in []string
	for i := 0; i < 1000; i++ {
		in = append(in, fmt.Sprintf("c%d", i))
	}
	res := runBinary(t, strings.NewReader(strings.Join(in, "\n")+"\n"), "produce", "-b", cl.Addr(), "-t", "tx", "-q",
		"--transactional-id", "cli", "--txn-records", "300")
	if res.code != 0 {
		t.Fatalf("produce: exit %d\n%s", res.code, res.stderr)
	}

	// An interrupted run: 50 lines delivered inside the open transaction,
	// then SIGINT.
	p := startBinary(t, "produce", "-b", cl.Addr(), "-t", "tx", "--transactional-id", "cli")
	var aborted []string
	for i := 0; i < 50; i++ {
		aborted = append(aborted, fmt.Sprintf("a%d", i))
	}
	fmt.Fprintln(p.stdin, strings.Join(aborted, "\n"))
	p.readLines(t, 50) // delivered: written, not committed
	if code := p.interrupt(t); code == 0 {
		t.Errorf("interrupted transactional produce exited 0\n%s", p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "aborted") {
		t.Errorf("stderr does not say the open transaction was aborted:\n%s", p.stderr.String())
	}

	got := runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "tx", "-e", "-q", "-f", "%s\n")
	if got.code != 0 {
		t.Fatalf("consume: exit %d\n%s", got.code, got.stderr)
	}
	sameMultiset(t, "read_committed (default)", outLines(got.stdout), in)
	all := runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "tx", "-e", "-q", "-f", "%s\n", "--isolation", "read_uncommitted")
	sameMultiset(t, "read_uncommitted", outLines(all.stdout), append(append([]string{}, in...), aborted...))
	if bad := runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "tx", "-e", "--isolation", "dirty"); bad.code == 0 {
		t.Errorf("--isolation dirty accepted")
	}
}
