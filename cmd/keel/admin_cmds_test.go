package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/keel-go/keel/keeltest"
)

// mustRun runs keel with args and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) binResult {
	t.Helper()
	r := runBinary(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("keel %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// wantFail runs keel with args and fails the test unless it exits with
// code and its stderr holds every one of wants.
func wantFail(t *testing.T, code int, args []string, wants ...string) {
	t.Helper()
	r := runBinary(t, nil, args...)
	ok := r.code == code
	for _, w := range wants {
		ok = ok && strings.Contains(r.stderr, w)
	}
	if !ok {
		t.Errorf("keel %s: exit %d, want %d and %q\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, wants, r.stdout, r.stderr)
	}
}

var kcatPartitions = regexp.MustCompile(`topic "([^"]+)" with (\d+) partitions`)

// kcatPartitionCount asks kcat -L how many partitions topic has: an
// independent look at what keel changed.
func kcatPartitionCount(t *testing.T, kcat, addr, topic string) int {
	t.Helper()
	out := runKcat(t, kcat, "", "-L", "-b", addr, "-t", topic)
	m := kcatPartitions.FindStringSubmatch(out)
	if m == nil || m[1] != topic {
		t.Fatalf("kcat -L lists no topic %s:\n%s", topic, out)
	}
	n, _ := strconv.Atoi(m[2])
	return n
}

// TestTopicsAlterPartitions: topics alter --partitions grows a topic (kcat
// -L sees 8), refuses to shrink or stay put with a clear error, and bad
// input fails with exit 2 (usage) or 1 (the cluster said no).
func TestTopicsAlterPartitions(t *testing.T) {
	kcat := kcatBinary(t)
	cl := testCluster(t, keeltest.Topic("grow", 3))
	b := cl.Addr()
	r := mustRun(t, "topics", "alter", "--bootstrap-server", b, "--topic", "grow", "--partitions", "8")
	if !strings.Contains(r.stdout, "topic grow now has 8 partitions (was 3)") {
		t.Errorf("alter output: %s", r.stdout)
	}
	if n := kcatPartitionCount(t, kcat, b, "grow"); n != 8 {
		t.Fatalf("kcat -L shows %d partitions after alter --partitions 8", n)
	}
	// The new partitions take records at once.
	mustRun(t, "produce", "-b", b, "-t", "grow", "-p", "7", "-q")
	wantFail(t, 1, []string{"topics", "alter", "-b", b, "-t", "grow", "--partitions", "4"}, "has 8 partitions", "cannot remove partitions")
	wantFail(t, 1, []string{"topics", "alter", "-b", b, "-t", "grow", "--partitions", "8"}, "already has 8 partitions")
	wantFail(t, 1, []string{"topics", "alter", "-b", b, "-t", "nosuch", "--partitions", "8"}, `topic "nosuch" does not exist`, "keel topics list")
	wantFail(t, 2, []string{"topics", "alter", "-b", b, "-t", "grow", "--partitions", "-2"}, "use at least 1 partition")
	wantFail(t, 2, []string{"topics", "alter", "-b", b, "-t", "grow"}, "--partitions N")
	wantFail(t, 2, []string{"topics", "alter", "-b", b, "-t", "grow", "--partitions", "99999999"}, "too many partitions")
	// --validate-only changes nothing.
	r = mustRun(t, "topics", "alter", "-b", b, "-t", "grow", "--partitions", "10", "--validate-only")
	if !strings.Contains(r.stdout, "validated only") || cl.Partitions("grow") != 8 {
		t.Errorf("validate-only: %s; the topic has %d partitions, want still 8", r.stdout, cl.Partitions("grow"))
	}
}

// TestTopicsCreateValidateOnlyAndLongFlags: Apache Kafka's flag names
// work, --validate-only creates nothing but reports what create would.
func TestTopicsCreateValidateOnlyAndLongFlags(t *testing.T) {
	cl := testCluster(t, keeltest.Brokers(3), keeltest.Topic("exists", 1))
	b := cl.Addr()
	r := mustRun(t, "topics", "create", "--bootstrap-server", b, "--topic", "made", "--partitions", "5", "--replication-factor", "2", "--config", "retention.ms=60000")
	if !strings.Contains(r.stdout, "created topic made (5 partitions, replication factor 2)") {
		t.Errorf("create with long flags: %s", r.stdout)
	}
	r = mustRun(t, "topics", "create", "-b", b, "--topic", "checked", "--partitions", "3", "--validate-only")
	if !strings.Contains(r.stdout, "can be created") || cl.Partitions("checked") != 0 {
		t.Errorf("validate-only: %s; topic has %d partitions, want none", r.stdout, cl.Partitions("checked"))
	}
	wantFail(t, 1, []string{"topics", "create", "-b", b, "-t", "exists", "--validate-only"}, "already exists")
	wantFail(t, 1, []string{"topics", "create", "-b", b, "-t", "wide", "--replication-factor", "9", "--validate-only"}, "replication factor 9", "3 brokers")
	wantFail(t, 2, []string{"topics", "create", "-b", b, "-t", "neg", "--partitions", "-7"}, "use at least 1 partition")
	// KEEL_BROKERS still works when no -b is given.
	r = runBinaryEnv(t, nil, []string{"KEEL_BROKERS=" + b}, "topics", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "made") {
		t.Errorf("KEEL_BROKERS: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestTopicsDescribeOffsetsAndSize: describe shows per partition start
// and end offsets (after records were deleted, the start moved) and a
// size on disk that grows with the records; --json says the same.
func TestTopicsDescribeOffsetsAndSize(t *testing.T) {
	cl := testCluster(t, keeltest.Brokers(2), keeltest.Topic("d", 2))
	sendMessages(t, cl.Addr(), numbered("d", 0, "v", 30)...)
	if err := cl.Kfake().DeleteRecords("d", 0, 10); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, "topics", "describe", "-b", cl.Addr(), "-t", "d")
	rows := tableRows(t, r.stdout, "PARTITION")
	// PARTITION LEADER EPOCH REPLICAS ISR START END SIZE
	if len(rows) != 2 || rows[0][5] != "10" || rows[0][6] != "30" || rows[1][5] != "0" || rows[1][6] != "0" {
		t.Fatalf("describe rows %v\n%s", rows, r.stdout)
	}
	if rows[0][7] == "0B" || rows[0][7] == "-" || rows[1][7] != "0B" {
		t.Errorf("sizes %q and %q: want a non-zero size for the partition with records and 0B for the empty one", rows[0][7], rows[1][7])
	}
	r = mustRun(t, "topics", "describe", "-b", cl.Addr(), "-t", "d", "--json")
	var doc topicJSON
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	p0 := doc.Partitions[0]
	if doc.Name != "d" || len(doc.Partitions) != 2 || p0.StartOffset != 10 || p0.EndOffset != 30 || p0.SizeBytes <= 0 || len(p0.Replicas) != 2 {
		t.Errorf("--json: %+v", doc)
	}
}

// TestRecordsDeleteBefore: after records delete --before 100, kcat's
// earliest offset of the partition is 100; the other partition is left
// alone; bad input fails clearly.
func TestRecordsDeleteBefore(t *testing.T) {
	kcat := kcatBinary(t)
	cl := testCluster(t, keeltest.Topic("r", 2))
	sendMessages(t, cl.Addr(), numbered("r", 0, "v", 150)...)
	sendMessages(t, cl.Addr(), numbered("r", 1, "w", 20)...)
	r := mustRun(t, "records", "delete", "-b", cl.Addr(), "--topic", "r", "--partition", "0", "--before", "100")
	if !strings.Contains(r.stdout, "r[0]: records before 100 deleted") {
		t.Errorf("records delete: %s", r.stdout)
	}
	first := runKcat(t, kcat, "", "-C", "-b", cl.Addr(), "-t", "r", "-p", "0", "-o", "beginning", "-c", "1", "-f", "%o %s\n")
	if first != "100 v100\n" {
		t.Errorf("kcat's first record of r[0] after delete --before 100: %q, want offset 100", first)
	}
	if n := len(outLines(runKcat(t, kcat, "", "-C", "-b", cl.Addr(), "-t", "r", "-p", "1", "-o", "beginning", "-e", "-q"))); n != 20 {
		t.Errorf("r[1] holds %d records after deleting from r[0], want 20", n)
	}
	wantFail(t, 1, []string{"records", "delete", "-b", cl.Addr(), "-t", "r", "-p", "0", "--before", "999"}, "past the partition's end")
	wantFail(t, 1, []string{"records", "delete", "-b", cl.Addr(), "-t", "r", "-p", "5", "--before", "1"}, "partition 5 does not exist")
	wantFail(t, 1, []string{"records", "delete", "-b", cl.Addr(), "-t", "nosuch", "--before", "1"}, `"nosuch" does not exist`)
	wantFail(t, 2, []string{"records", "delete", "-b", cl.Addr(), "-t", "r", "--before", "-3"}, "use an offset")
	wantFail(t, 2, []string{"records", "delete", "-b", cl.Addr(), "-t", "r"}, "--before OFFSET")
	// --before end empties every partition.
	mustRun(t, "records", "delete", "-b", cl.Addr(), "-t", "r", "--before", "end")
	if out := runKcat(t, kcat, "", "-C", "-b", cl.Addr(), "-t", "r", "-o", "beginning", "-e", "-q"); out != "" {
		t.Errorf("records left after --before end: %q", out)
	}
}

// TestClusterDescribe: keel cluster lists every broker, the controller and
// each broker's API versions, with the version keel uses.
func TestClusterDescribe(t *testing.T) {
	cl := testCluster(t, keeltest.Brokers(3), keeltest.ClusterID("cli-test-cluster"))
	r := mustRun(t, "cluster", "-b", cl.Addr())
	if !strings.Contains(r.stdout, "Cluster:     cli-test-cluster") || len(tableRows(t, r.stdout, "BROKER")) != 3 || !strings.Contains(r.stdout, "controller") {
		t.Errorf("keel cluster:\n%s", r.stdout)
	}
	r = mustRun(t, "cluster", "-b", cl.Addr(), "--json")
	var doc clusterJSON
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.ClusterID != "cli-test-cluster" || len(doc.Brokers) != 3 {
		t.Fatalf("--json: %+v", doc)
	}
	for _, b := range doc.Brokers {
		var produce *apiJSON
		for i := range b.APIs {
			if b.APIs[i].Name == "Produce" {
				produce = &b.APIs[i]
			}
		}
		if b.Error != "" || produce == nil || produce.Max < 3 || produce.Used < 3 || produce.Used > produce.Max {
			t.Errorf("broker %d: error %q, Produce versions %+v", b.ID, b.Error, produce)
		}
	}
	r = mustRun(t, "cluster", "-b", cl.Addr(), "--apis")
	if !strings.Contains(r.stdout, "Broker 2 API versions:") || !strings.Contains(r.stdout, "DescribeCluster") {
		t.Errorf("--apis:\n%s", r.stdout)
	}
}

// TestConfigsDescribeAlter: configs describe shows each config's source
// and whether it is the default; alter sets and deletes (back to the
// default) topic and broker configs; an unknown key, unknown topic and
// unknown broker fail clearly.
func TestConfigsDescribeAlter(t *testing.T) {
	cl := testCluster(t, keeltest.Brokers(2), keeltest.Topic("c", 1))
	b := cl.Addr()
	row := func(out, name string) []string {
		for _, r := range tableRows(t, out, "NAME") {
			if r[0] == name {
				return r
			}
		}
		return nil
	}
	r := mustRun(t, "configs", "describe", "-b", b, "--entity", "topic", "--name", "c")
	if got := row(r.stdout, "retention.ms"); len(got) != 5 || got[3] != "yes" {
		t.Fatalf("retention.ms before any change: %q\n%s", got, r.stdout)
	}
	mustRun(t, "configs", "alter", "-b", b, "--entity", "topic", "--name", "c", "--set", "retention.ms=3600000", "--add-config", "cleanup.policy=compact")
	r = mustRun(t, "configs", "describe", "-b", b, "--entity-type", "topic", "--entity-name", "c")
	// NAME VALUE SOURCE DEFAULT READ-ONLY
	if got := row(r.stdout, "retention.ms"); len(got) != 5 || got[1] != "3600000" || got[2] != "DYNAMIC_TOPIC_CONFIG" || got[3] != "no" {
		t.Errorf("retention.ms after alter: %q", got)
	}
	r = mustRun(t, "configs", "describe", "-b", b, "--entity", "topic", "--name", "c", "--only-set", "--json")
	var set []configJSON
	if err := json.Unmarshal([]byte(r.stdout), &set); err != nil || len(set) != 2 {
		t.Errorf("--only-set --json: %v %+v", err, set)
	}
	mustRun(t, "configs", "alter", "-b", b, "--entity", "topic", "--name", "c", "--delete", "retention.ms")
	r = mustRun(t, "configs", "describe", "-b", b, "--entity", "topic", "--name", "c")
	if got := row(r.stdout, "retention.ms"); len(got) != 5 || got[3] != "yes" {
		t.Errorf("retention.ms after --delete: %q, want the default again", got)
	}
	// A broker's config: set dynamically, shown with its source.
	mustRun(t, "configs", "alter", "-b", b, "--entity", "broker", "--name", "1", "--set", "log.retention.ms=7200000")
	r = mustRun(t, "configs", "describe", "-b", b, "--entity", "broker", "--name", "1")
	if got := row(r.stdout, "log.retention.ms"); len(got) != 5 || got[1] != "7200000" || got[2] != "DYNAMIC_BROKER_CONFIG" {
		t.Errorf("broker 1 log.retention.ms: %q", got)
	}
	wantFail(t, 1, []string{"configs", "alter", "-b", b, "--entity", "topic", "--name", "c", "--set", "retenton.ms=5"}, `no config "retenton.ms"`, "did you mean retention.ms")
	wantFail(t, 1, []string{"configs", "describe", "-b", b, "--entity", "topic", "--name", "nosuch"}, `"nosuch" does not exist`)
	wantFail(t, 1, []string{"configs", "describe", "-b", b, "--entity", "broker", "--name", "7"}, "no broker 7")
	wantFail(t, 1, []string{"configs", "alter", "-b", b, "--entity", "broker", "--name", "0", "--set", "broker.id=5"}, "read-only")
	wantFail(t, 2, []string{"configs", "describe", "-b", b, "--entity", "user", "--name", "x"}, "use topic or broker")
	wantFail(t, 2, []string{"configs", "alter", "-b", b, "--entity", "topic", "--name", "c"}, "--set key=value")
	wantFail(t, 2, []string{"configs", "alter", "-b", b, "--entity", "topic", "--name", "c", "--set", "novalue"}, "key=value")
}
