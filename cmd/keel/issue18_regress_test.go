package main

import (
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel/keeltest"
)

// Regression tests for the CLI bugs of issue 18 ("Bugs found"): each ran
// through before its fix, without the clear error and non-zero exit it
// asserts.

// TestConsumeEmptyGroupIsAnError (bug 5): -G ” used to drop group mode
// silently and read the topic from the beginning without a group, which
// is not what a person typing -G asked for. kcat says "Unknown group".
func TestConsumeEmptyGroupIsAnError(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("g", 1))
	sendMessages(t, cl.Addr(), numbered("g", 0, "v", 3)...)
	for _, args := range [][]string{
		{"-G", "", "-t", "g", "-e"},
		{"-G", "  ", "-t", "g", "-e"},
	} {
		res := runBinary(t, nil, append([]string{"consume", "-b", cl.Addr()}, args...)...)
		if res.code != exitUsage || res.stdout != "" || !strings.Contains(res.stderr, "group name") {
			t.Errorf("keel consume %q: exit %d, stdout %q, want exit 2 and no records\nstderr: %s", args, res.code, res.stdout, res.stderr)
		}
	}
}

// TestIllegalTopicNamesRefused (bug 9, CLI side): names Kafka refuses
// ("..", "bad/topic", 250 characters) must get the shared validator's
// clear error and a non-zero exit from every command that takes a topic,
// before anything is sent. keel consume used to exit 0 having read
// nothing, and keel produce went as far as failing each record.
func TestIllegalTopicNamesRefused(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("ok", 1), keeltest.AutoCreateTopics())
	b := cl.Addr()
	long := strings.Repeat("a", 250)
	for _, name := range []string{"..", ".", "bad/topic", long, "sp ace"} {
		for _, args := range [][]string{
			{"topics", "create", "-b", b, "-t", name},
			{"topics", "describe", "-b", b, "-t", name},
			{"topics", "delete", "-b", b, "-t", name},
			{"produce", "-b", b, "-t", name},
			{"consume", "-b", b, "-t", name, "-e"},
			{"consume", "-b", b, "-G", "g", "-t", name, "-e"},
			{"consume", "-b", b, "-G", "g", "-e", "ok", name},
			{"dlq", "replay", "-b", b, "-t", name},
			{"dlq", "replay", "-b", b, "-t", "ok", "--to", name},
		} {
			res := runBinary(t, strings.NewReader("a record\n"), args...)
			if res.code == 0 || !strings.Contains(res.stderr, "not a legal Kafka topic name") {
				t.Errorf("keel %s: exit %d, want non-zero and the topic-name error\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
			}
			if strings.Contains(res.stderr, "sent") || strings.Contains(res.stderr, "create it") {
				t.Errorf("keel %s: the name was not refused up front:\n%s", strings.Join(args, " "), res.stderr)
			}
		}
		if n := cl.Partitions(name); n != 0 {
			t.Errorf("topic %.20q exists (%d partitions) after the refusals", name, n)
		}
	}
}

// TestProduceNewlineKeyDelimiterRefused (bug 10): keel produce reads one
// record per line, so a -K delimiter holding a newline can never be found
// in a line: every record silently got a null key. It is a usage error.
func TestProduceNewlineKeyDelimiterRefused(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("k", 1))
	for _, delim := range []string{`\n`, "\n", `a\nb`, `\x0a`, `\r\n`} {
		res := runBinary(t, strings.NewReader("key\nvalue\n"), "produce", "-b", cl.Addr(), "-t", "k", "-K", delim)
		if res.code != exitUsage || !strings.Contains(res.stderr, "newline") {
			t.Errorf("produce -K %q: exit %d, want 2 and why\nstdout: %s\nstderr: %s", delim, res.code, res.stdout, res.stderr)
		}
	}
	if hw := cl.HighWatermark("k", 0); hw != 0 {
		t.Errorf("%d records were produced despite the refused delimiter", hw)
	}
}

// TestConsumeOffsetOutOfRangeNotice (bug 10): -o past the end (or before
// the log start) used to be reset by the consumer without a word, so the
// person saw nothing and could not tell a typo from an idle topic. kcat
// says the offset is out of range and where it reset; so does keel
// consume, on stderr, and then reads from there.
func TestConsumeOffsetOutOfRangeNotice(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("o", 2))
	sendMessages(t, cl.Addr(), numbered("o", 0, "v", 5)...)
	res := runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "o", "-p", "0", "-o", "100", "-e")
	if res.code != 0 || res.stdout != "" ||
		!strings.Contains(res.stderr, "offset 100 is out of range for o[0] (it holds offsets 0 to 4): starting at the end, offset 5") {
		t.Errorf("-o 100 past the end: exit %d, stdout %q\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	// Both partitions: the empty one says so too.
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "o", "-o", "7", "-e")
	if res.code != 0 || !strings.Contains(res.stderr, "o[0] (it holds offsets 0 to 4)") || !strings.Contains(res.stderr, "o[1] (it holds no records; its end offset is 0)") {
		t.Errorf("-o 7 on two partitions: exit %d\nstderr: %s", res.code, res.stderr)
	}
	// Not -e: the reset position is where new records are read from.
	p := startBinary(t, "consume", "-b", cl.Addr(), "-t", "o", "-p", "0", "-o", "100", "-c", "1", "-q")
	p.waitStderr(t, "starting at the end, offset 5")
	sendMessages(t, cl.Addr(), numbered("o", 0, "new", 1)...)
	if got := p.readLines(t, 1); got[0] != "new0" {
		t.Errorf("after the reset it printed %q, want the next record new0", got)
	}
	// Before the log start (retention deleted it): from the first record held.
	if err := cl.Kfake().DeleteRecords("o", 0, 3); err != nil {
		t.Fatal(err)
	}
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "o", "-p", "0", "-o", "1", "-e", "-q")
	if res.code != 0 || strings.Join(outLines(res.stdout), ",") != "v3,v4,new0" ||
		!strings.Contains(res.stderr, "offset 1 is out of range for o[0] (records before 3 were deleted): starting at the log start, offset 3") {
		t.Errorf("-o 1 below the log start: exit %d, stdout %q\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	// In range, including the end itself: no notice.
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "o", "-p", "0", "-o", "6", "-e")
	if res.code != 0 || strings.Contains(res.stderr, "out of range") {
		t.Errorf("-o 6 (the end): exit %d\nstderr: %s", res.code, res.stderr)
	}
}

// waitStderr waits up to 30s for the process's stderr to contain want.
func (p *binProcess) waitStderr(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stderr.String(), want) {
		select {
		case <-p.done:
			if strings.Contains(p.stderr.String(), want) {
				return
			}
			t.Fatalf("exited without printing %q\nstderr:\n%s", want, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("stderr lacks %q after 30s:\n%s", want, p.stderr.String())
		}
	}
}

// TestTopicsCreateTooManyPartitions (bug 10): -p 99999999 was answered
// "use at least 1 partition", which is wrong and no help; the message
// must say the upper bound. The same for -r.
func TestTopicsCreateTooManyPartitions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-p", "99999999"}, "-p 99999999: too many partitions; use at most 1048576"},
		{[]string{"-p", "0"}, "-p 0: use at least 1 partition"},
		{[]string{"-p", "-5"}, "-p -5: use at least 1 partition"},
		{[]string{"-r", "40000"}, "-r 40000: too high; use at most 32767"},
		{[]string{"-r", "0"}, "-r 0: use a replication factor of at least 1"},
	} {
		res := runBinary(t, nil, append([]string{"topics", "create", "-b", "127.0.0.1:1", "-t", "x"}, tc.args...)...)
		if res.code != exitUsage || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("topics create %q: exit %d, want 2 and %q\nstderr: %s", tc.args, res.code, tc.want, res.stderr)
		}
	}
}

// TestDLQReplayHintNamesTheMissingDestination (bug 10): with --to naming
// a topic that does not exist, the hint asked whether the dead-letter
// topic existed, which it does; it must name the destination.
func TestDLQReplayHintNamesTheMissingDestination(t *testing.T) {
	cl := testCluster(t, keeltest.Brokers(1), keeltest.Topics(1, "orders", "orders.dlt"))
	deadLetters(t, cl, 2)
	res := runBinary(t, nil, "dlq", "replay", "-b", cl.Addr(), "-t", "orders.dlt", "--to", "nosuch")
	if res.code != 1 || !strings.Contains(res.stderr, `"nosuch"`) || !strings.Contains(res.stderr, "create it with 'keel topics create -t nosuch'") ||
		strings.Contains(res.stderr, "does orders.dlt exist") {
		t.Errorf("replay --to nosuch: exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	// A missing dead-letter topic is still named as such.
	res = runBinary(t, nil, "dlq", "replay", "-b", cl.Addr(), "-t", "gone.dlt", "--to", "orders")
	if res.code != 1 || !strings.Contains(res.stderr, "does gone.dlt exist") {
		t.Errorf("replay -t gone.dlt: exit %d\nstderr: %s", res.code, res.stderr)
	}
}
