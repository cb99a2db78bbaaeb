package main

import (
	"strings"
	"testing"

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
