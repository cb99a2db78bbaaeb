package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel/keeltest"
)

// TestCLIBadInputs is the CLI half of issue 18's bad-inputs table (the
// library half is integration's TestBadInputs): each bad command line
// exits non-zero (2 for usage, 1 for a failure at the broker) within its
// bound, says what is wrong on stderr, and never shows a Go panic or
// stack. The good topic is read afterwards to show nothing was written
// to it by the bad runs.
func TestCLIBadInputs(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("ok", 2))
	b := cl.Addr()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		says  string
		bound time.Duration
	}{
		{"unknown command", "", []string{"nosuchcmd"}, exitUsage, "unknown command", 5 * time.Second},
		{"unknown flag", "", []string{"produce", "-b", b, "-t", "ok", "--nosuchflag"}, exitUsage, "nosuchflag", 5 * time.Second},
		{"no cluster at the default address", "", []string{"topics", "list", "-b", "127.0.0.1:1"}, exitFailure, "cannot reach the cluster", 20 * time.Second},
		{"unreachable broker", "", []string{"topics", "list", "-b", closed}, exitFailure, "connect", 20 * time.Second},
		{"broker with a bad port", "", []string{"topics", "list", "-b", "127.0.0.1:notaport"}, exitFailure, "port", 5 * time.Second},
		{"produce without a topic", "a\n", []string{"produce", "-b", b}, exitUsage, "topic", 5 * time.Second},
		{"produce to an illegal topic name", "a\n", []string{"produce", "-b", b, "-t", "bad/topic"}, exitUsage, "not a legal Kafka topic name", 5 * time.Second},
		{"produce with a newline key delimiter", "a\n", []string{"produce", "-b", b, "-t", "ok", "-K", "\n"}, exitUsage, "newline", 5 * time.Second},
		{"produce to a partition that does not exist", "a\n", []string{"produce", "-b", b, "-t", "ok", "-p", "9"}, exitFailure, "partition", 20 * time.Second},
		{"consume with an empty group", "", []string{"consume", "-b", b, "-G", "", "-t", "ok", "-e"}, exitUsage, "group name", 5 * time.Second},
		{"consume at a garbage offset", "", []string{"consume", "-b", b, "-t", "ok", "-o", "soon", "-e"}, exitUsage, "offset", 5 * time.Second},
		{"consume a partition that does not exist", "", []string{"consume", "-b", b, "-t", "ok", "-p", "7", "-e"}, exitFailure, "partition", 20 * time.Second},
		{"create a topic with 0 partitions", "", []string{"topics", "create", "-b", b, "-t", "zero", "-p", "0"}, exitUsage, "use at least 1 partition", 5 * time.Second},
		{"create a topic with 99999999 partitions", "", []string{"topics", "create", "-b", b, "-t", "many", "-p", "99999999"}, exitUsage, "partitions", 20 * time.Second},
		{"create a topic named ..", "", []string{"topics", "create", "-b", b, "-t", ".."}, exitUsage, "not a legal Kafka topic name", 5 * time.Second},
		{"delete a topic that does not exist", "", []string{"topics", "delete", "-b", b, "-t", "nosuch"}, exitFailure, "does not exist", 20 * time.Second},
		{"describe a group with an empty name", "", []string{"groups", "describe", "-b", b, "-g", ""}, exitUsage, "group", 5 * time.Second},
		{"produce with an unknown codec", "a\n", []string{"produce", "-b", b, "-t", "ok", "-z", "brotli"}, exitUsage, "brotli", 5 * time.Second},
		{"dlq replay to an illegal topic name", "", []string{"dlq", "replay", "-b", b, "-t", "ok", "--to", "a b"}, exitUsage, "not a legal Kafka topic name", 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			start := time.Now()
			res := runBinary(t, strings.NewReader(tc.stdin), tc.args...)
			took := time.Since(start)
			if res.code != tc.code {
				t.Errorf("exit %d, want %d\nstderr: %s", res.code, tc.code, res.stderr)
			}
			if !strings.Contains(strings.ToLower(res.stderr), strings.ToLower(tc.says)) {
				t.Errorf("stderr does not say %q:\n%s", tc.says, res.stderr)
			}
			if strings.Contains(res.stderr, "panic:") || strings.Contains(res.stderr, "goroutine ") {
				t.Errorf("a Go panic or stack on stderr:\n%s", res.stderr)
			}
			if took > tc.bound {
				t.Errorf("took %v, bound %v", took, tc.bound)
			}
			t.Logf("exit %d in %v: %s", res.code, took.Round(time.Millisecond), strings.TrimSpace(res.stderr))
		})
	}
	if n := cl.HighWatermark("ok", 0) + cl.HighWatermark("ok", 1); n != 0 {
		t.Fatalf("%d records in the good topic after the bad runs", n)
	}
}
