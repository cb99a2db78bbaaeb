package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// sendMessages produces msgs to the cluster at addr with the library, to
// a partition each names (manual partitioner), and fails the test if any
// is not delivered.
func sendMessages(t *testing.T, addr string, msgs ...*keel.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := keel.NewClient(keel.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	p, err := keel.NewProducer(client, keel.ManualPartitioner())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if _, err := p.SendAll(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// numbered returns n messages for topic/partition with values prefix0..
func numbered(topic string, partition int32, prefix string, n int) []*keel.Message {
	out := make([]*keel.Message, n)
	for i := range out {
		out[i] = &keel.Message{Topic: topic, Partition: partition, Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint(prefix, i))}
	}
	return out
}

// TestConsumeFormatEachVerb prints a known record (headers, null key,
// fixed timestamp) with each -f verb through the built binary.
func TestConsumeFormatEachVerb(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("fmt", 2))
	ts := time.UnixMilli(1700000000123)
	sendMessages(t, cl.Addr(),
		&keel.Message{Topic: "fmt", Partition: 1, Value: []byte("v0"), Timestamp: ts,
			Headers: []keel.Header{{Key: "trace", Value: []byte("abc")}, {Key: "empty", Value: []byte{}}, {Key: "null"}}},
		&keel.Message{Topic: "fmt", Partition: 1, Key: []byte("key1"), Timestamp: ts.Add(time.Second)}, // null value
	)
	for _, tc := range []struct{ format, want string }{
		{`%t\n`, "fmt\nfmt\n"},
		{`%p\n`, "1\n1\n"},
		{`%o\n`, "0\n1\n"},
		{`[%k]\n`, "[]\n[key1]\n"},
		{`[%s]\n`, "[v0]\n[]\n"},
		{`%h\n`, "trace=abc,empty=,null=NULL\n\n"},
		{`%T\n`, "1700000000123\n1700000001123\n"},
		{`%S\n`, "2\n-1\n"},
		{`%K\n`, "-1\n4\n"},
		{`%%\t%o\\\n`, "%\t0\\\n%\t1\\\n"},
		{`%t/%p@%o %k=%s (%K/%S) [%h] %T\n`, "fmt/1@0 =v0 (-1/2) [trace=abc,empty=,null=NULL] 1700000000123\nfmt/1@1 key1= (4/-1) [] 1700000001123\n"},
	} {
		res := runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "fmt", "-e", "-q", "-f", tc.format)
		if res.code != 0 {
			t.Fatalf("-f %q: exit %d\n%s", tc.format, res.code, res.stderr)
		}
		if res.stdout != tc.want {
			t.Errorf("-f %q: got %q, want %q", tc.format, res.stdout, tc.want)
		}
	}
	// Without -f: the value per line (kcat's default); with -K the key too.
	res := runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "fmt", "-e", "-q")
	if res.stdout != "v0\n\n" {
		t.Errorf("default output %q", res.stdout)
	}
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "fmt", "-e", "-q", "-K", `\t`)
	if res.stdout != "\tv0\nkey1\t\n" {
		t.Errorf("-K output %q", res.stdout)
	}
}

// TestConsumeOffsets: -o beginning/end/N/-N/s@ms, -p and -c.
func TestConsumeOffsets(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("o", 2))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var msgs []*keel.Message
	for i := range 10 {
		msgs = append(msgs, &keel.Message{Topic: "o", Partition: 0, Value: []byte(fmt.Sprint("a", i)), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	msgs = append(msgs, numbered("o", 1, "b", 4)...)
	sendMessages(t, cl.Addr(), msgs...)

	consume := func(args ...string) []string {
		t.Helper()
		res := runBinary(t, nil, append([]string{"consume", "-b", cl.Addr(), "-t", "o", "-q", "-f", `%p:%s\n`}, args...)...)
		if res.code != 0 {
			t.Fatalf("consume %q: exit %d\n%s", args, res.code, res.stderr)
		}
		got := outLines(res.stdout)
		slices.Sort(got)
		return got
	}
	all := []string{"0:a0", "0:a1", "0:a2", "0:a3", "0:a4", "0:a5", "0:a6", "0:a7", "0:a8", "0:a9", "1:b0", "1:b1", "1:b2", "1:b3"}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-e"}, all}, // default: beginning
		{[]string{"-o", "beginning", "-e"}, all},
		{[]string{"-o", "end", "-e"}, nil},
		{[]string{"-o", "-2", "-e"}, []string{"0:a8", "0:a9", "1:b2", "1:b3"}},
		{[]string{"-o-5", "-e"}, []string{"0:a5", "0:a6", "0:a7", "0:a8", "0:a9", "1:b0", "1:b1", "1:b2", "1:b3"}},
		{[]string{"-o", "3", "-p", "1", "-e"}, []string{"1:b3"}},
		{[]string{"-o", "7", "-p", "0", "-e"}, []string{"0:a7", "0:a8", "0:a9"}},
		{[]string{"-o", "4", "-p", "0", "-c", "2"}, []string{"0:a4", "0:a5"}}, // -c without -e
		{[]string{"-o", "s@" + strconv.FormatInt(base.Add(6*time.Second).UnixMilli(), 10), "-p", "0", "-e"}, []string{"0:a6", "0:a7", "0:a8", "0:a9"}},
		{[]string{"-o", "100", "-e"}, nil}, // past the end
	} {
		if got := consume(tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("consume %q: got %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestConsumeEmptyAndMissing: -e on empty partitions exits at once; a
// missing topic or partition is exit 1 with a message.
func TestConsumeEmptyAndMissing(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("empty", 3))
	res := runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "empty", "-e")
	if res.code != 0 || res.stdout != "" || !strings.Contains(res.stderr, "0 records") {
		t.Errorf("empty topic: exit %d, stdout %q\n%s", res.code, res.stdout, res.stderr)
	}
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "nope", "-e")
	if res.code != 1 || !strings.Contains(res.stderr, "nope") || !strings.Contains(res.stderr, "keel topics list") {
		t.Errorf("unknown topic: exit %d\n%s", res.code, res.stderr)
	}
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "empty", "-p", "3", "-e")
	if res.code != 1 || !strings.Contains(res.stderr, "partition 3 does not exist") {
		t.Errorf("missing partition: exit %d\n%s", res.code, res.stderr)
	}
	res = runBinary(t, nil, "consume", "-b", closedPort(t), "-t", "empty", "-e")
	if res.code != 1 || !strings.Contains(res.stderr, "cannot reach the cluster") {
		t.Errorf("unreachable: exit %d\n%s", res.code, res.stderr)
	}
}

func TestConsumeUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"consume", "--bogus"},
		{"consume"},
		{"consume", "-t", "x", "-f", "%x"},
		{"consume", "-t", "x", "-o", "yesterday"},
		{"consume", "-t", "x", "-G", "g", "-o", "5"},
		{"consume", "-t", "x", "-G", "g", "-p", "1"},
		{"consume", "-t", "x", "extra"},
		{"consume", "-t", "x", "-c", "-1"},
	} {
		res := runBinary(t, nil, args...)
		if res.code != 2 || res.stderr == "" {
			t.Errorf("keel %s: exit %d, want 2\n%s", strings.Join(args, " "), res.code, res.stderr)
		}
	}
	res := runBinary(t, nil, "consume", "--help")
	if res.code != 0 || !strings.Contains(res.stderr, "Examples:") || !strings.Contains(res.stderr, "%h") {
		t.Errorf("consume --help: exit %d\n%s", res.code, res.stderr)
	}
}

// TestConsumeGroupCommits: a group run reads everything and commits what
// it printed; a second run of the same group prints nothing; new records
// are all a third run prints. -c stops early and commits only what it
// printed.
func TestConsumeGroupCommits(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("g", 3), keeltest.Topic("h", 1))
	var msgs []*keel.Message
	for p := range int32(3) {
		msgs = append(msgs, numbered("g", p, fmt.Sprintf("g%d-", p), 20)...)
	}
	msgs = append(msgs, numbered("h", 0, "h-", 5)...)
	sendMessages(t, cl.Addr(), msgs...)
	want := func(ms []*keel.Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, string(m.Value))
		}
		return out
	}
	group := func(args ...string) binResult {
		t.Helper()
		res := runBinary(t, nil, append([]string{"consume", "-b", cl.Addr(), "-G", "billing"}, args...)...)
		if res.code != 0 {
			t.Fatalf("consume -G %q: exit %d\n%s", args, res.code, res.stderr)
		}
		return res
	}

	res := group("-t", "g", "-o", "beginning", "-e")
	sameMultiset(t, "first run", outLines(res.stdout), want(msgs[:60]))
	res = group("-t", "g", "-o", "beginning", "-e")
	if res.stdout != "" {
		t.Errorf("second run printed %d records, want none:\n%s", len(outLines(res.stdout)), res.stdout)
	}
	more := numbered("g", 2, "new-", 3)
	sendMessages(t, cl.Addr(), more...)
	res = group("-t", "g", "-e")
	sameMultiset(t, "third run", outLines(res.stdout), want(more))

	// -c: 3 of h's 5 records, committed; the next run prints the other 2.
	// Topics as arguments after the flags, as with kcat -G.
	res = group("-o", "beginning", "-c", "3", "-e", "h")
	first := outLines(res.stdout)
	if len(first) != 3 {
		t.Fatalf("-c 3 printed %q", first)
	}
	res = group("-o", "beginning", "-e", "h")
	sameMultiset(t, "-c then the rest", append(first, outLines(res.stdout)...), want(msgs[60:]))
}

func TestOffsetParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want offsetSpec
		str  string // String(): back in -o syntax
	}{
		{"beginning", offsetSpec{kind: offsetBeginning}, "beginning"},
		{"earliest", offsetSpec{kind: offsetBeginning}, "beginning"},
		{"end", offsetSpec{kind: offsetEnd}, "end"},
		{" Latest ", offsetSpec{kind: offsetEnd}, "end"},
		{"0", offsetSpec{kind: offsetExact, n: 0}, "0"},
		{"1207", offsetSpec{kind: offsetExact, n: 1207}, "1207"},
		{"-10", offsetSpec{kind: offsetFromEnd, n: 10}, "-10"},
		{"-0", offsetSpec{kind: offsetFromEnd, n: 0}, "-0"},
		{"s@1700000000123", offsetSpec{kind: offsetTime, at: time.UnixMilli(1700000000123)}, "s@1700000000123"},
	} {
		got, err := parseOffset(tc.in)
		if err != nil || got.kind != tc.want.kind || got.n != tc.want.n || !got.at.Equal(tc.want.at) || got.String() != tc.str {
			t.Errorf("parseOffset(%q) = %+v (%q), %v; want %+v (%q)", tc.in, got, got.String(), err, tc.want, tc.str)
		}
	}
	for _, bad := range []string{"", "yesterday", "1.5", "s@", "s@-5", "s@x", "--3", "12abc"} {
		if _, err := parseOffset(bad); err == nil {
			t.Errorf("parseOffset(%q) accepted", bad)
		}
	}
	// -N is clamped to the log start; group mode takes only beginning and end.
	if got := (offsetSpec{kind: offsetFromEnd, n: 10}).start(5, 8); got != keel.AtOffset(5) {
		t.Errorf("-10 on [5,8) starts at %+v, want offset 5", got)
	}
	if got := (offsetSpec{kind: offsetFromEnd, n: 2}).start(0, 8); got != keel.AtOffset(6) {
		t.Errorf("-2 on [0,8) starts at %+v, want offset 6", got)
	}
	if r, err := (offsetSpec{kind: offsetBeginning}).reset(); err != nil || r != keel.ResetEarliest {
		t.Errorf("beginning as a reset: %v, %v", r, err)
	}
	if _, err := (offsetSpec{kind: offsetExact, n: 3}).reset(); err == nil {
		t.Errorf("an exact offset accepted as a group reset")
	}
}

// TestConsumeGroupInterrupted: a group member following a topic (no -e)
// commits what it printed when stopped with Ctrl-C.
func TestConsumeGroupInterrupted(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("f", 2))
	sendMessages(t, cl.Addr(), numbered("f", 0, "a", 5)...)
	p := startBinary(t, "consume", "-b", cl.Addr(), "-G", "follow", "-t", "f", "-o", "beginning")
	first := p.readLines(t, 5)
	sendMessages(t, cl.Addr(), numbered("f", 1, "b", 3)...) // while it follows
	first = append(first, p.readLines(t, 3)...)
	if code := p.interrupt(t); code != 0 {
		t.Fatalf("exit %d after SIGINT\n%s", code, p.stderr.String())
	}
	sameMultiset(t, "followed", first, []string{"a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2"})
	res := runBinary(t, nil, "consume", "-b", cl.Addr(), "-G", "follow", "-t", "f", "-o", "beginning", "-e")
	if res.code != 0 || res.stdout != "" {
		t.Fatalf("after Ctrl-C the group reads again: exit %d, stdout %q\n%s", res.code, res.stdout, res.stderr)
	}
}
