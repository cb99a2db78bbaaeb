package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel/keeltest"
)

// groupLag returns the group's lag rows from keel groups lag --json.
func groupLag(t *testing.T, addr, group string) lagJSONDoc {
	t.Helper()
	r := mustRun(t, "groups", "lag", "-b", addr, "-G", group, "--json")
	var doc lagJSONDoc
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("groups lag --json: %v\n%s", err, r.stdout)
	}
	return doc
}

// committedOf maps "topic/partition" to the committed offset (-1: none).
func committedOf(doc lagJSONDoc) map[string]int64 {
	out := make(map[string]int64)
	for _, r := range doc.Rows {
		c := int64(-1)
		if r.Committed != nil {
			c = *r.Committed
		}
		out[r.Topic+"/"+string(rune('0'+r.Partition))] = c
	}
	return out
}

// groupReads runs keel consume as a member of group until the end and
// returns what it printed, sorted.
func groupReads(t *testing.T, addr, group, topic string) []string {
	t.Helper()
	r := mustRun(t, "consume", "-b", addr, "-G", group, "-t", topic, "-o", "beginning", "-e", "-q")
	lines := outLines(r.stdout)
	slices.Sort(lines)
	return lines
}

// TestGroupsResetOffsets: the plan of reset-offsets shows current and new
// offsets; --dry-run (the default) changes nothing (the group reads
// nothing more); --execute moves the group, and a member — keel's and
// kcat's -G — then reads again from the beginning; every target works;
// a group with a running member is refused; bad input fails clearly.
func TestGroupsResetOffsets(t *testing.T) {
	kcat := kcatBinary(t)
	cl := testCluster(t, keeltest.Topic("rs", 2), keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	b := cl.Addr()
	sendMessages(t, b, numbered("rs", 0, "a", 5)...)
	sendMessages(t, b, numbered("rs", 1, "b", 3)...)
	all := groupReads(t, b, "g", "rs")
	if len(all) != 8 {
		t.Fatalf("first read: %q", all)
	}
	want := map[string]int64{"rs/0": 5, "rs/1": 3}

	// Dry run, the default: a plan, and nothing changed.
	r := mustRun(t, "groups", "reset-offsets", "-b", b, "-G", "g", "-t", "rs", "--to-earliest")
	rows := tableRows(t, r.stdout, "TOPIC")
	// TOPIC PARTITION CURRENT NEW CHANGE LOG
	if len(rows) != 2 || rows[0][2] != "5" || rows[0][3] != "0" || rows[0][4] != "-5" || rows[1][2] != "3" || rows[1][3] != "0" || !strings.Contains(r.stdout, "dry run: nothing was changed") {
		t.Fatalf("dry-run plan:\n%s", r.stdout)
	}
	mustRun(t, "groups", "reset-offsets", "-b", b, "-G", "g", "-t", "rs", "--to-earliest", "--dry-run")
	if got := committedOf(groupLag(t, b, "g")); !mapsEqual(got, want) {
		t.Fatalf("after --dry-run the group committed %v, want %v unchanged", got, want)
	}
	if again := groupReads(t, b, "g", "rs"); len(again) != 0 {
		t.Fatalf("after --dry-run the group read %q again", again)
	}

	// --execute: keel's group member reads everything again.
	r = mustRun(t, "groups", "reset-offsets", "-b", b, "--group", "g", "--topic", "rs", "--to-earliest", "--execute")
	if !strings.Contains(r.stdout, "committed: group g now starts at the NEW offsets") {
		t.Errorf("execute output:\n%s", r.stdout)
	}
	if again := groupReads(t, b, "g", "rs"); !slices.Equal(again, all) {
		t.Fatalf("after --to-earliest --execute keel re-read %q, want %q", again, all)
	}
	// ... and so does kcat's.
	mustRun(t, "groups", "reset-offsets", "-b", b, "-G", "g", "--all-topics", "--to-earliest", "--execute")
	kout := outLines(runKcat(t, kcat, "", "-b", b, "-G", "g", "-e", "-q", "-f", "%s\n", "-X", "auto.offset.reset=latest", "rs"))
	slices.Sort(kout)
	if !slices.Equal(kout, all) {
		t.Fatalf("after reset --execute kcat -G read %q, want %q", kout, all)
	}

	// The other targets, as plans (NEW column, partitions 0 and 1).
	plan := func(args ...string) []string {
		t.Helper()
		r := mustRun(t, append([]string{"groups", "reset-offsets", "-b", b, "-G", "g", "-t", "rs"}, args...)...)
		var news []string
		for _, row := range tableRows(t, r.stdout, "TOPIC") {
			news = append(news, row[3])
		}
		return news
	}
	mustRun(t, "groups", "reset-offsets", "-b", b, "-G", "g", "-t", "rs", "--to-offset", "2", "--execute")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--to-latest"}, []string{"5", "3"}},
		{[]string{"--to-offset", "4"}, []string{"4", "3"}}, // clamped to the end of rs[1]
		{[]string{"--shift-by", "-1"}, []string{"1", "1"}},
		{[]string{"--shift-by", "10"}, []string{"5", "3"}},
		{[]string{"--by-duration", "1h"}, []string{"0", "0"}},
		{[]string{"--by-duration", "PT2H"}, []string{"0", "0"}},
		{[]string{"--to-datetime", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, []string{"5", "3"}},
		{[]string{"--to-datetime", time.Now().Add(-time.Hour).Format("2006-01-02T15:04:05.000")}, []string{"0", "0"}},
	} {
		if got := plan(tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("reset-offsets %q: NEW %q, want %q", tc.args, got, tc.want)
		}
	}
	r = mustRun(t, "groups", "reset-offsets", "-b", b, "-G", "g", "-t", "rs:1", "--to-earliest", "--json")
	var doc resetResultJSON
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.Executed || len(doc.Plan) != 1 || doc.Plan[0].Partition != 1 || *doc.Plan[0].Current != 2 {
		t.Errorf("--json plan of rs:1: %v %+v", err, doc)
	}

	// A running member: refused, dry run or not, and nothing changes.
	p := startBinary(t, "consume", "-b", b, "-G", "g", "-t", "rs", "-q")
	p.readLines(t, 1) // it reads from offset 2: it holds partitions
	for _, extra := range [][]string{nil, {"--execute"}} {
		wantFail(t, 1, append([]string{"groups", "reset-offsets", "-b", b, "-G", "g", "-t", "rs", "--to-earliest"}, extra...),
			`group "g" is Stable with 1 active member(s)`, "only be reset while the group is inactive")
	}
	if code := p.interrupt(t); code != 0 {
		t.Fatalf("member exit %d\n%s", code, p.stderr.String())
	}

	// Bad input.
	for _, tc := range []struct {
		code  int
		args  []string
		wants []string
	}{
		{2, []string{"--to-datetime", "yesterday"}, []string{"is not a date and time"}},
		{2, []string{"--by-duration", "soon"}, []string{"is not a duration"}},
		{2, []string{"--to-offset", "-4"}, []string{"is not an offset"}},
		{2, []string{"--to-earliest", "--to-latest"}, []string{"give one target"}},
		{2, nil, []string{"where to?"}},
		{2, []string{"--to-earliest", "--all-topics"}, []string{"do not go together"}},
		{2, []string{"--to-earliest", "--dry-run", "--execute"}, []string{"do not go together"}},
	} {
		wantFail(t, tc.code, append([]string{"groups", "reset-offsets", "-b", b, "-G", "g", "-t", "rs"}, tc.args...), tc.wants...)
	}
	wantFail(t, 1, []string{"groups", "reset-offsets", "-b", b, "-G", "g", "-t", "nosuch", "--to-earliest"}, `topic "nosuch" does not exist`)
	wantFail(t, 1, []string{"groups", "reset-offsets", "-b", b, "-G", "g", "-t", "rs:7", "--to-earliest"}, "partition 7 does not exist")
	wantFail(t, 2, []string{"groups", "reset-offsets", "-b", b, "-G", "g", "-t", "bad/name", "--to-earliest"}, "not a legal Kafka topic name")
	wantFail(t, 1, []string{"groups", "reset-offsets", "-b", b, "-G", "fresh", "-t", "rs", "--shift-by", "1"}, "no committed offset there to shift from")
	wantFail(t, 2, []string{"groups", "reset-offsets", "-b", b, "-t", "rs", "--to-earliest"}, "which group?")
}

// TestGroupsDeleteOffsetsAndLagMarker: delete-offsets removes a group's
// commit on one partition; lag then shows that partition's whole backlog
// (end - log start) marked as having no commit, in the table and --json.
func TestGroupsDeleteOffsetsAndLagMarker(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("do", 2))
	b := cl.Addr()
	sendMessages(t, b, numbered("do", 0, "a", 4)...)
	sendMessages(t, b, numbered("do", 1, "b", 6)...)
	groupReads(t, b, "dg", "do")
	if err := cl.Kfake().DeleteRecords("do", 1, 2); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, "groups", "delete-offsets", "-b", b, "--group", "dg", "--topic", "do:1")
	if !strings.Contains(r.stdout, "deleted the committed offsets of group dg on topic do (partitions 1)") {
		t.Errorf("delete-offsets: %s", r.stdout)
	}
	r = mustRun(t, "groups", "lag", "-b", b, "-G", "dg")
	rows := tableRows(t, r.stdout, "TOPIC")
	// TOPIC PARTITION COMMITTED END LAG MEMBER. do[1] holds offsets 2..5
	// now: without its commit, its backlog is 4.
	if len(rows) != 2 || rows[0][2] != "4" || rows[0][4] != "0" || rows[1][2] != "-" || rows[1][4] != "4*" ||
		!strings.Contains(r.stdout, "TOTAL LAG: 4") || !strings.Contains(r.stdout, "* no committed offset: the lag is the partition's whole backlog") {
		t.Errorf("lag after delete-offsets:\n%s", r.stdout)
	}
	doc := groupLag(t, b, "dg")
	if len(doc.Rows) != 2 || doc.TotalLag != 4 {
		t.Fatalf("lag --json: %+v", doc)
	}
	if r1 := doc.Rows[1]; !r1.NoCommit || r1.Committed != nil || r1.Lag != 4 || r1.Start != 2 || r1.End != 6 {
		t.Errorf("do[1] without a commit in --json: %+v, want no_commit, lag 4 (end 6 - start 2)", r1)
	}
	if r0 := doc.Rows[0]; r0.NoCommit || r0.Committed == nil || *r0.Committed != 4 {
		t.Errorf("do[0] in --json: %+v", r0)
	}
	wantFail(t, 1, []string{"groups", "delete-offsets", "-b", b, "-G", "dg", "-t", "nosuch"}, `"nosuch" does not exist`)
	wantFail(t, 2, []string{"groups", "delete-offsets", "-b", b, "-G", "dg"}, "name one topic")
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
