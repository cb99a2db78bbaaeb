package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/keel-go/keel/keeltest"
)

// tableRows returns the rows of the aligned table in out that starts with
// header (its first column name), split into fields, header excluded.
func tableRows(t *testing.T, out, header string) [][]string {
	t.Helper()
	var rows [][]string
	in := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == header:
			in = true
		case in && len(f) == 0:
			return rows
		case in:
			rows = append(rows, f)
		}
	}
	if !in {
		t.Fatalf("no table with column %s in:\n%s", header, out)
	}
	return rows
}

func TestTopicsRoundTrip(t *testing.T) {
	cl := testCluster(t, keeltest.Brokers(3))
	b := cl.Addr()

	r := runBinary(t, nil, "topics", "create", "-b", b, "-t", "orders", "-p", "4", "-r", "2", "--config", "retention.ms=60000", "--config", "cleanup.policy=compact")
	if r.code != 0 || !strings.Contains(r.stdout, "created topic orders (4 partitions, replication factor 2)") {
		t.Fatalf("create: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if n := cl.Partitions("orders"); n != 4 {
		t.Fatalf("the cluster has %d partitions of orders, want 4", n)
	}

	r = runBinary(t, nil, "topics", "create", "-b", b, "-t", "orders", "-p", "1")
	if r.code != 1 || !strings.Contains(r.stderr, `topic "orders": it already exists`) || !strings.Contains(r.stderr, "keel topics describe") {
		t.Errorf("creating an existing topic: exit %d, stderr: %s", r.code, r.stderr)
	}
	r = runBinary(t, nil, "topics", "create", "-b", b, "-t", "wide", "-r", "7")
	if r.code != 1 || !strings.Contains(r.stderr, "replication factor 7") || !strings.Contains(r.stderr, "3 brokers") {
		t.Errorf("replication factor above the broker count: exit %d, stderr: %s", r.code, r.stderr)
	}

	r = runBinary(t, nil, "topics", "list", "-b", b)
	rows := tableRows(t, r.stdout, "TOPIC")
	if r.code != 0 || len(rows) != 1 || rows[0][0] != "orders" || rows[0][1] != "4" {
		t.Errorf("list: exit %d, rows %v\n%s%s", r.code, rows, r.stdout, r.stderr)
	}

	// kcat style: -torders is -t orders; one-dash long flags still work.
	r = runBinary(t, nil, "topics", "describe", "-b", b, "-torders", "-timeout", "20s")
	if r.code != 0 {
		t.Fatalf("describe: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"Topic:       orders", "Partitions:  4", "  cleanup.policy=compact\n", "  retention.ms=60000\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("describe output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "max.message.bytes") {
		t.Errorf("describe printed a default config:\n%s", r.stdout)
	}
	rows = tableRows(t, r.stdout, "PARTITION")
	if len(rows) != 4 {
		t.Fatalf("describe: %d partition rows, want 4:\n%s", len(rows), r.stdout)
	}
	for i, row := range rows {
		// PARTITION LEADER EPOCH REPLICAS ISR
		leader, _ := strconv.Atoi(row[1])
		if row[0] != strconv.Itoa(i) || int32(leader) != cl.Leader("orders", int32(i)) || len(strings.Split(row[3], ",")) != 2 || !strings.Contains(row[3], row[1]) {
			t.Errorf("partition row %v: want partition %d led by %d among 2 replicas", row, i, cl.Leader("orders", int32(i)))
		}
	}

	r = runBinary(t, nil, "topics", "describe", "-b", b, "-t", "nosuch")
	if r.code != 1 || !strings.Contains(r.stderr, `topic "nosuch" does not exist`) || !strings.Contains(r.stderr, "keel topics list") || r.stdout != "" {
		t.Errorf("describing an unknown topic: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	r = runBinary(t, nil, "topics", "delete", "-b", b, "-t", "orders")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted topic orders") || cl.Partitions("orders") != 0 {
		t.Fatalf("delete: exit %d, %d partitions left\nstdout: %s\nstderr: %s", r.code, cl.Partitions("orders"), r.stdout, r.stderr)
	}
	r = runBinary(t, nil, "topics", "delete", "-b", b, "-t", "orders")
	if r.code != 1 || !strings.Contains(r.stderr, `topic "orders": it does not exist`) {
		t.Errorf("deleting a deleted topic: exit %d, stderr: %s", r.code, r.stderr)
	}
	r = runBinary(t, nil, "topics", "list", "-b", b)
	if r.code != 0 || len(tableRows(t, r.stdout, "TOPIC")) != 0 {
		t.Errorf("list after delete: exit %d\n%s", r.code, r.stdout)
	}
}

func TestTopicsUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{"topics"}, 2, "Subcommands:"},
		{[]string{"topics", "frob"}, 2, `unknown subcommand "frob"`},
		{[]string{"topics", "create", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"topics", "create", "-p", "3"}, 2, "pass -t NAME"},
		{[]string{"topics", "create", "-t", "x", "-p", "0"}, 2, "-p 0"},
		{[]string{"topics", "create", "-t", "x", "-p", "lots"}, 2, `invalid value "lots" for flag -p`},
		{[]string{"topics", "create", "-t", "x", "--config", "retention.ms"}, 2, "want key=value"},
		{[]string{"topics", "describe"}, 2, "pass -t NAME"},
		{[]string{"topics", "describe", "-t", "x", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"topics", "delete"}, 2, "pass -t NAME"},
		{[]string{"topics", "-h"}, 0, "Examples:"},
		{[]string{"topics", "create", "-h"}, 0, "keel topics create -t orders -p 6 -r 3"},
		{[]string{"topics", "describe", "--help"}, 0, "Examples:"},
		{[]string{"topics", "list", "-h"}, 0, "Examples:"},
		{[]string{"topics", "delete", "-h"}, 0, "cannot be undone"},
	} {
		r := runBinary(t, nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("keel %s: exit %d (want %d), stderr lacks %q:\n%s", strings.Join(tc.args, " "), r.code, tc.code, tc.want, r.stderr)
		}
	}
	r := runBinary(t, nil, "help", "topics")
	if r.code != 0 || !strings.Contains(r.stdout, "keel topics <create|list|describe|alter|delete>") {
		t.Errorf("keel help topics: exit %d\n%s", r.code, r.stdout)
	}
	r = runBinary(t, nil, "--help")
	if !strings.Contains(r.stdout, "topics") || !strings.Contains(r.stdout, "groups") {
		t.Errorf("keel --help does not list topics and groups:\n%s", r.stdout)
	}
}

func TestTopicsUnreachableBroker(t *testing.T) {
	r := runBinary(t, nil, "topics", "list", "-b", "127.0.0.1:1", "--timeout", "20s")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the cluster at 127.0.0.1:1") || !strings.Contains(r.stderr, "keel dev") {
		t.Errorf("unreachable broker: exit %d\nstderr: %s", r.code, r.stderr)
	}
}
