package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
	"github.com/keel-go/keel/retry"
)

// deadLetters writes n dead letters (as the retry package writes them) of
// "orders" to orders.dlt, keys k0..k2 in turn.
func deadLetters(t *testing.T, cl *keeltest.Cluster, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	p, err := keel.NewProducer(c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for i := range n {
		m := &keel.Message{Topic: "orders.dlt", Key: []byte("k" + strconv.Itoa(i%3)), Value: []byte(strconv.Itoa(i)), Headers: []keel.Header{
			{Key: retry.HeaderOriginalTopic, Value: []byte("orders")}, {Key: retry.HeaderAttempt, Value: []byte("4")},
			{Key: retry.HeaderDeadLetterReason, Value: []byte(retry.ReasonExhausted)}, {Key: retry.HeaderError, Value: []byte("db down")},
		}}
		if _, err := p.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDLQReplay(t *testing.T) {
	cl := testCluster(t, keeltest.Brokers(1), keeltest.Topics(2, "orders", "orders.dlt"))
	deadLetters(t, cl, 12)
	b := strings.Join(cl.Addrs(), ",")

	// A few first: the replay stops and says how to go on.
	r := runBinary(t, nil, "dlq", "replay", "-b", b, "-t", "orders.dlt", "--max", "3")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 3 record(s) from orders.dlt") || !strings.Contains(r.stdout, "run the same command again") ||
		!strings.Contains(r.stdout, "group keel-replay.orders.dlt") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	// The rest; -v lists each copy.
	r = runBinary(t, nil, "dlq", "replay", "-b", b, "-t", "orders.dlt", "-v")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 9 record(s)") || strings.Count(r.stderr, " -> orders/") != 9 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	// Nothing left.
	r = runBinary(t, nil, "dlq", "replay", "-b", b, "-t", "orders.dlt")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 0 record(s)") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	// Filters replay under a group of their own, so they see everything.
	r = runBinary(t, nil, "dlq", "replay", "-b", b, "-t", "orders.dlt", "--key", "k1", "--since", "1h")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 4 record(s)") || !strings.Contains(r.stdout, "8 passed over by the filters") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var inOrders int64
	for p := range int32(2) {
		inOrders += cl.HighWatermark("orders", p)
	}
	if inOrders != 16 {
		t.Fatalf("orders holds %d records, want 16", inOrders)
	}
}

func TestDLQReplayErrors(t *testing.T) {
	cl := testCluster(t, keeltest.Brokers(1), keeltest.Topics(1, "orders", "orders.dlt"))
	b := strings.Join(cl.Addrs(), ",")
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"dlq", "replay", "-b", b}, exitUsage, "which dead-letter topic"},
		{[]string{"dlq", "replay", "-b", b, "-t", "orders.dlt", "--since", "yesterday"}, exitUsage, "neither a time"},
		{[]string{"dlq", "replay", "-b", b, "-t", "orders.dlt", "--since", "1h", "--until", "2h"}, exitUsage, "is not after --since"},
		{[]string{"dlq", "replay", "-b", b, "-t", "orders.dlt", "--max", "-1"}, exitUsage, "--max"},
		{[]string{"dlq", "replay", "-b", b, "-t", "orders.dlt", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"dlq", "replay", "-b", b, "-t", "no-such.dlt"}, exitFailure, "no-such.dlt"},
		{[]string{"dlq", "replay", "-b", b, "-t", "orders.dlt", "--to", "orders.dlt"}, exitUsage, "the dead-letter topic itself"},
		{[]string{"dlq", "frobnicate"}, exitUsage, "unknown subcommand"},
		{[]string{"dlq"}, exitUsage, "Usage: keel dlq replay"},
	} {
		r := runBinary(t, nil, tc.args...)
		t.Logf("keel %s -> exit %d: %s", strings.Join(tc.args[min(2, len(tc.args)):], " "), r.code, strings.TrimSpace(r.stderr))
		if r.code != tc.code || !strings.Contains(r.stderr, tc.says) || r.stdout != "" {
			t.Errorf("keel %s: exit %d, want %d with %q\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), r.code, tc.code, tc.says, r.stdout, r.stderr)
		}
	}
	// A dead letter without its origin: the error says what to do.
	deadLettersWithout(t, cl)
	r := runBinary(t, nil, "dlq", "replay", "-b", b, "-t", "orders.dlt")
	if r.code != exitFailure || !strings.Contains(r.stderr, "--to TOPIC") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = runBinary(t, nil, "dlq", "replay", "-b", b, "-t", "orders.dlt", "--to", "orders")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed 1 record(s)") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

func deadLettersWithout(t *testing.T, cl *keeltest.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	p, err := keel.NewProducer(c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if _, err := p.Send(ctx, &keel.Message{Topic: "orders.dlt", Value: []byte("orphan")}); err != nil {
		t.Fatal(err)
	}
}

func TestDLQHelp(t *testing.T) {
	r := runBinary(t, nil, "dlq", "replay", "-h")
	if r.code != 0 || !strings.Contains(r.stderr, "Examples:") || !strings.Contains(r.stderr, "-since") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	r = runBinary(t, nil, "help")
	if !strings.Contains(r.stdout, "dlq") {
		t.Fatalf("dlq not in the command list:\n%s", r.stdout)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"2024-04-30T10:00:00Z", time.Date(2024, 4, 30, 10, 0, 0, 0, time.UTC)},
		{"90m", now.Add(-90 * time.Minute)},
		{"3d", now.Add(-72 * time.Hour)},
		{"2024-04-01", time.Date(2024, 4, 1, 0, 0, 0, 0, time.Local)},
	} {
		got, err := parseWhen(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"yesterday", "-2h", "3x", "d", "-1d", "1.5d"} {
		if _, err := parseWhen(bad, now); err == nil {
			t.Errorf("parseWhen(%q) accepted", bad)
		}
	}
}
