package main

import (
	"strings"
	"testing"

	"github.com/keel-go/keel/keeltest"
)

// "Run the same command again after an interruption and it goes on where
// it stopped" must hold for a relative --since too: "1h" is another time
// at every run, and a group named after that time made the second run
// start afresh and replay again what the first had replayed.
func TestDLQReplayRelativeSinceResumes(t *testing.T) {
	cl := testCluster(t, keeltest.Brokers(1), keeltest.Topics(2, "orders", "orders.dlt"))
	deadLetters(t, cl, 12)
	b := strings.Join(cl.Addrs(), ",")
	r := runBinary(t, nil, "dlq", "replay", "-b", b, "-t", "orders.dlt", "--since", "1h", "--max", "3")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 3 record(s)") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	first := r.stdout
	r = runBinary(t, nil, "dlq", "replay", "-b", b, "-t", "orders.dlt", "--since", "1h")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 9 record(s)") {
		t.Fatalf("the same command again did not resume (first run: %q)\nexit %d\nstdout: %s\nstderr: %s", first, r.code, r.stdout, r.stderr)
	}
	var inOrders int64
	for p := range int32(2) {
		inOrders += cl.HighWatermark("orders", p)
	}
	if inOrders != 12 {
		t.Fatalf("orders holds %d records, want 12 (each dead letter once)", inOrders)
	}
	// Another window is another replay: it sees everything.
	r = runBinary(t, nil, "dlq", "replay", "-b", b, "-t", "orders.dlt", "--since", "2h")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 12 record(s)") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}
