package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// sortedLines returns the non-empty lines of s, sorted (a share group has no
// order).
func sortedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// TestConsumeShareGroup runs keel consume --share-group: -o beginning
// makes a new group start at the log's start, -e exits once the group is
// done with what was there, every printed record is accepted (a second
// run prints nothing), and with -c the records fetched but not printed
// are released to the next run.
func TestConsumeShareGroup(t *testing.T) {
	cl := testCluster(t, keeltest.Brokers(1), keeltest.Topic("jobs", 1))
	sendMessages(t, cl.Addr(), numbered("jobs", 0, "j", 10)...)

	res := runBinary(t, nil, "consume", "-b", cl.Addr(), "--share-group", "workers", "-t", "jobs", "-o", "beginning", "-e")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	if got := sortedLines(res.stdout); !slices.Equal(got, sortedNumbered("j", 0, 10)) {
		t.Errorf("printed %v, want j0..j9", got)
	}
	if !strings.Contains(res.stderr, "starts partitions it never read at the beginning") || !strings.Contains(res.stderr, "keel consume: 10 records") {
		t.Errorf("stderr does not say where the group starts and how many records:\n%s", res.stderr)
	}

	res = runBinary(t, nil, "consume", "--bootstrap-server", cl.Addr(), "--share-group", "workers", "--topic", "jobs", "-e", "-q")
	if res.code != 0 || res.stdout != "" {
		t.Errorf("a second run printed %q (exit %d): the first one's records were not accepted\n%s", res.stdout, res.code, res.stderr)
	}

	sendMessages(t, cl.Addr(), numbered("jobs", 0, "k", 5)...)
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "--share-group=workers", "jobs", "-c", "2", "-q")
	if res.code != 0 || len(sortedLines(res.stdout)) != 2 {
		t.Fatalf("-c 2 printed %q (exit %d)\n%s", res.stdout, res.code, res.stderr)
	}
	first := sortedLines(res.stdout)
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "--share-group", "workers", "-t", "jobs", "-e", "-q")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	if got := append(first, sortedLines(res.stdout)...); !slices.Equal(sortedCopy(got), sortedNumbered("k", 0, 5)) {
		t.Errorf("the two runs printed %v, want k0..k4 once each (the records -c left were released)", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := keel.NewClient(keel.SeedBrokers(cl.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(ctx)
	adm, _ := admin.New(client)
	offs, err := adm.ShareGroupOffsets(ctx, "workers", "jobs")
	if o := offs[keel.TopicPartition{Topic: "jobs", Partition: 0}]; err != nil || o.StartOffset != 15 {
		t.Errorf("share group offsets %+v (%v), want start 15", offs, err)
	}
	ds, err := adm.DescribeShareGroups(ctx, "workers")
	if err != nil || ds[0].State != "Empty" {
		t.Errorf("after the runs the group is %+v (%v), want Empty: keel consume must leave", ds, err)
	}
}

func sortedNumbered(prefix string, from, to int) []string {
	var out []string
	for _, m := range numbered("", 0, prefix, to)[from:] {
		out = append(out, string(m.Value))
	}
	slices.Sort(out)
	return out
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestConsumeShareGroupUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--share-group", "", "-t", "jobs"},
		{"--share-group", "g"},
		{"--share-group", "g", "-t", "jobs", "-o", "5"},
		{"--share-group", "g", "-t", "bad name!"},
		{"--share-group", "-t", "jobs"},
	} {
		res := runBinary(t, nil, append([]string{"consume", "-b", "127.0.0.1:1"}, args...)...)
		if res.code != exitUsage || !strings.Contains(res.stderr, "keel consume") {
			t.Errorf("keel consume %v: exit %d, stderr %q; want a usage error", args, res.code, res.stderr)
		}
	}
	res := runBinary(t, nil, "consume", "--share-group", "-h")
	if res.code != 0 || !strings.Contains(res.stderr, "share group") {
		t.Errorf("--share-group -h: exit %d\n%s", res.code, res.stderr)
	}
}

// TestConsumeShareGroupClosedStdout: keel consume --share-group ... |
// head -1 exits 0, accepts exactly the records that reached the pipe and
// releases the rest, so that the next run prints every other record once.
func TestConsumeShareGroupClosedStdout(t *testing.T) {
	cl := testCluster(t, keeltest.Brokers(1), keeltest.Topic("many", 1))
	const n = 5000
	sendMessages(t, cl.Addr(), numbered("many", 0, "r", n)...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, keelBinary, "consume", "-b", cl.Addr(), "--share-group", "piped", "-t", "many", "--from-beginning")
	cmd.Env = filteredEnv("KEEL_BROKERS")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first, err := bufio.NewReader(out).ReadString('\n') // head -1
	if err != nil {
		t.Fatal(err)
	}
	out.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after stdout closed: %v\nstderr: %s", err, stderr.String())
	}
	var wrote int
	for _, line := range strings.Split(stderr.String(), "\n") {
		fmt.Sscanf(line, "keel consume: %d records written before stdout was closed", &wrote)
	}
	if wrote < 1 || wrote >= n {
		t.Fatalf("wrote %d of %d", wrote, n)
	}
	res := runBinary(t, nil, "consume", "-b", cl.Addr(), "--share-group", "piped", "-t", "many", "-e", "-q")
	if res.code != 0 {
		t.Fatalf("second run: exit %d\n%s", res.code, res.stderr)
	}
	rest := sortedLines(res.stdout)
	if len(rest) != n-wrote || slices.Contains(rest, strings.TrimSuffix(first, "\n")) {
		t.Errorf("second run printed %d records (want %d, without %q): the records that reached the pipe must be accepted, the others released", len(rest), n-wrote, first)
	}
}
