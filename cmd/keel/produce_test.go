package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keel-go/keel/keeltest"
)

// keyedLines returns n lines "key-K:value-I" with 50 distinct keys, so
// they spread over every partition and each partition gets many lines
// whose input order can be checked.
func keyedLines(n int, prefix string) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("%skey-%d:value-%d", prefix, i%50, i)
	}
	return lines
}

func joinLines(lines []string) *strings.Reader {
	return strings.NewReader(strings.Join(lines, "\n") + "\n")
}

// outLines splits output into lines, dropping the final newline.
func outLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// sameMultiset fails the test unless got and want hold the same lines.
func sameMultiset(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if slices.Equal(g, w) {
		return
	}
	t.Errorf("%s: %d lines, want %d", what, len(g), len(w))
	for i := range max(len(g), len(w)) {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			t.Errorf("  first difference at sorted line %d: got %.80q, want %.80q", i, a, b)
			return
		}
	}
}

var deliveredRE = regexp.MustCompile(`^delivered (\S+)/(\d+)@(\d+) line (\d+)$`)

// TestProduceConsumeRoundTrip10k: 10,000 keyed lines produced with -K:
// come back identical, and in input order within each partition.
func TestProduceConsumeRoundTrip10k(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("rt", 4))
	lines := keyedLines(10_000, "")

	res := runBinary(t, joinLines(lines), "produce", "-b", cl.Addr(), "-t", "rt", "-K:")
	if res.code != 0 {
		t.Fatalf("produce: exit %d\n%s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "10000 sent, 10000 delivered, 0 failed") {
		t.Errorf("produce summary: %q", res.stderr)
	}
	// One delivery report per line, each line once, offsets unique per
	// partition.
	seenLine := make(map[int]bool)
	seenOffset := make(map[string]bool)
	partitions := make(map[string]bool)
	for _, l := range outLines(res.stdout) {
		m := deliveredRE.FindStringSubmatch(l)
		if m == nil || m[1] != "rt" {
			t.Fatalf("delivery report %q does not match %v", l, deliveredRE)
		}
		n, _ := strconv.Atoi(m[4])
		if n < 1 || n > len(lines) || seenLine[n] {
			t.Fatalf("report for line %d: out of range or repeated", n)
		}
		seenLine[n] = true
		if seenOffset[m[2]+"@"+m[3]] {
			t.Fatalf("offset %s@%s reported twice", m[2], m[3])
		}
		seenOffset[m[2]+"@"+m[3]] = true
		partitions[m[2]] = true
	}
	if len(seenLine) != len(lines) {
		t.Fatalf("%d delivery reports for %d lines", len(seenLine), len(lines))
	}
	if len(partitions) != 4 {
		t.Errorf("records went to %d partitions, want all 4", len(partitions))
	}

	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "rt", "-o", "beginning", "-e", "-f", `%k:%s\n`)
	if res.code != 0 {
		t.Fatalf("consume: exit %d\n%s", res.code, res.stderr)
	}
	sameMultiset(t, "consume -f '%k:%s\\n'", outLines(res.stdout), lines)

	// Per partition: offsets consecutive from 0, input order kept.
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "rt", "-o", "beginning", "-e", "-f", `%p %o %k %s\n`)
	if res.code != 0 {
		t.Fatalf("consume: exit %d\n%s", res.code, res.stderr)
	}
	type pos struct{ offset, index int }
	last := make(map[string]pos)
	n := 0
	for _, l := range outLines(res.stdout) {
		f := strings.Fields(l)
		if len(f) != 4 {
			t.Fatalf("line %q: want 4 fields", l)
		}
		off, _ := strconv.Atoi(f[1])
		idx, err := strconv.Atoi(strings.TrimPrefix(f[3], "value-"))
		if err != nil || lines[idx] != f[2]+":"+f[3] {
			t.Fatalf("line %q is not an input line", l)
		}
		if p, ok := last[f[0]]; ok {
			if off != p.offset+1 || idx <= p.index {
				t.Fatalf("partition %s: offset %d (line %d) after offset %d (line %d): order not kept", f[0], off, idx, p.offset, p.index)
			}
		} else if off != 0 {
			t.Fatalf("partition %s starts at offset %d", f[0], off)
		}
		last[f[0]] = pos{off, idx}
		n++
	}
	if n != len(lines) {
		t.Fatalf("consumed %d records, want %d", n, len(lines))
	}
}

func TestProduceUnknownTopic(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("orders", 2))
	res := runBinary(t, strings.NewReader("a\nb\n"), "produce", "-b", cl.Addr(), "-t", "ordres")
	if res.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.code, res.stderr)
	}
	for _, want := range []string{`topic "ordres" does not exist`, "keel topics create -t ordres"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	if res.stdout != "" {
		t.Errorf("stdout: %q", res.stdout)
	}
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestProduceUnreachableBroker(t *testing.T) {
	addr := closedPort(t)
	res := runBinary(t, strings.NewReader("a\n"), "produce", "-b", addr, "-t", "orders")
	if res.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.code, res.stderr)
	}
	for _, want := range []string{"cannot reach the cluster at " + addr, "keel dev"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
}

func TestProduceUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"produce", "--no-such-flag"},
		{"produce"}, // no -t
		{"produce", "-t", "x", "-z", "brotli"},
		{"produce", "-t", "x", "--acks", "2"},
		{"produce", "-t", "x", "-K", `\q`},
		{"produce", "-t", "x", "file.txt"},
		{"produce", "-t", "x", "-p", "-5"},
	} {
		res := runBinary(t, nil, args...)
		if res.code != 2 {
			t.Errorf("keel %s: exit %d, want 2\n%s", strings.Join(args, " "), res.code, res.stderr)
		}
		if res.stderr == "" {
			t.Errorf("keel %s: nothing on stderr", strings.Join(args, " "))
		}
	}
	res := runBinary(t, nil, "produce", "-h")
	if res.code != 0 || !strings.Contains(res.stderr, "Examples:") || !strings.Contains(res.stderr, "-K:") {
		t.Errorf("produce -h: exit %d\n%s", res.code, res.stderr)
	}
}

// TestProduceTooLargeFailsAlone: a record over the broker's
// message.max.bytes fails with its line number and cause; the others are
// delivered and counted.
func TestProduceTooLargeFailsAlone(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("big", 3), keeltest.BrokerConfigs(map[string]string{"message.max.bytes": "20000"}))
	lines := keyedLines(60, "")
	lines[29] = "huge:" + strings.Repeat("x", 50_000) // line 30
	res := runBinary(t, joinLines(lines), "produce", "-b", cl.Addr(), "-t", "big", "-K:")
	if res.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.code, res.stderr)
	}
	for _, want := range []string{"line 30: ", "MESSAGE_TOO_LARGE", "60 sent, 59 delivered, 1 failed"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	if n := len(outLines(res.stdout)); n != 59 {
		t.Errorf("%d delivery reports, want 59", n)
	}
	if strings.Contains(res.stdout, "line 30\n") {
		t.Errorf("line 30 reported delivered")
	}
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "big", "-e", "-f", `%k:%s\n`)
	want := append(slices.Clone(lines[:29]), lines[30:]...)
	sameMultiset(t, "consumed", outLines(res.stdout), want)
}

// TestProduceLongLineFailsAlone: a line over --max-line-bytes is not sent
// and fails alone.
func TestProduceLongLineFailsAlone(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("t", 1))
	in := "short1\n" + strings.Repeat("y", 100) + "\nshort2\n\nshort3" // an empty line (skipped) and no final newline
	res := runBinary(t, strings.NewReader(in), "produce", "-b", cl.Addr(), "-t", "t", "--max-line-bytes", "50")
	if res.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.code, res.stderr)
	}
	for _, want := range []string{"line 2: line is 100 bytes", "3 sent, 3 delivered, 1 failed", "1 lines never sent"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "t", "-e")
	if got := outLines(res.stdout); !slices.Equal(got, []string{"short1", "short2", "short3"}) {
		t.Errorf("consumed %q", got)
	}
}

func TestProduceMissingPartition(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("t", 2))
	res := runBinary(t, strings.NewReader("a\n"), "produce", "-b", cl.Addr(), "-t", "t", "-p", "5")
	if res.code != 1 || !strings.Contains(res.stderr, "partition 5 does not exist") {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	// -p 1 sends everything to partition 1, with headers and a fixed key
	// for lines without one; -q keeps stdout empty.
	res = runBinary(t, strings.NewReader("a\nk:b\n"), "produce", "-b", cl.Addr(), "-t", "t", "-p1", "-K:", "-k", "fixed", "-H", "h=1", "-Hn", "-q")
	if res.code != 0 || res.stdout != "" {
		t.Fatalf("exit %d, stdout %q\n%s", res.code, res.stdout, res.stderr)
	}
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "t", "-e", "-f", `%p %k %s %h\n`)
	if got := outLines(res.stdout); !slices.Equal(got, []string{"1 fixed a h=1,n=NULL", "1 k b h=1,n=NULL"}) {
		t.Errorf("consumed %q", got)
	}
}

func TestProduceShortFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("K", "", "")
	fs.String("t", "", "")
	fs.Int("p", 0, "")
	fs.Bool("e", false, "")
	fs.Bool("q", false, "")
	fs.String("acks", "", "")
	for _, tc := range []struct{ in, want []string }{
		{[]string{"-K:"}, []string{"-K", ":"}},
		{[]string{"-K", "-q"}, []string{"-K", "-q"}}, // a value, whatever it looks like
		{[]string{"-p0", "-o-10"}, []string{"-p", "0", "-o-10"}},
		{[]string{"-eq"}, []string{"-e", "-q"}},
		{[]string{"-t=orders"}, []string{"-t=orders"}},
		{[]string{"-K="}, []string{"-K", "="}},
		{[]string{"--acks", "1", "topic", "-e"}, []string{"--acks", "1", "topic", "-e"}},
		{[]string{"--", "-K:"}, []string{"--", "-K:"}},
		{[]string{"-ex"}, []string{"-ex"}},
	} {
		if got := expandShortFlags(fs, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("expandShortFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	e := fs.Bool("e", false, "")
	g := fs.String("G", "", "")
	pos, _, ok := parseArgs(fs, []string{"-G", "grp", "t1", "-e", "t2", "--", "-t3"})
	if !ok || !*e || *g != "grp" || !slices.Equal(pos, []string{"t1", "t2", "-t3"}) {
		t.Errorf("parseArgs: ok %v, e %v, G %q, positional %q", ok, *e, *g, pos)
	}
}

// binProcess is the keel binary running in the background, its stdin a
// pipe the test writes to and its stdout read line by line.
type binProcess struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string // stdout, closed at its end
	stderr  lockedBuffer
	done    chan struct{}
	waitErr error
}

func startBinary(t *testing.T, args ...string) *binProcess {
	t.Helper()
	p := &binProcess{lines: make(chan string, 1024), done: make(chan struct{})}
	p.cmd = exec.Command(keelBinary, args...)
	p.cmd.Env = filteredEnv("KEEL_BROKERS")
	p.cmd.Stderr = &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// readLines returns the next n stdout lines, failing after 30s.
func (p *binProcess) readLines(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	deadline := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("stdout ended after %q, want %d lines\nstderr:\n%s", got, n, p.stderr.String())
			}
			got = append(got, l)
		case <-deadline:
			t.Fatalf("%d of %d lines within 30s: %q\nstderr:\n%s", len(got), n, got, p.stderr.String())
		}
	}
	return got
}

// interrupt sends SIGINT and returns the exit code, failing after 15s.
func (p *binProcess) interrupt(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15s after SIGINT\nstderr:\n%s", p.stderr.String())
	}
	for range p.lines {
	}
	var exit *exec.ExitError
	if errors.As(p.waitErr, &exit) {
		return exit.ExitCode()
	}
	if p.waitErr != nil {
		t.Fatal(p.waitErr)
	}
	return 0
}

// TestProduceInterrupted: typed lines are delivered and reported while
// stdin stays open (nothing waits for a full buffer); Ctrl-C stops reading
// and the summary still counts them.
func TestProduceInterrupted(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("t", 2))
	p := startBinary(t, "produce", "-b", cl.Addr(), "-t", "t")
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(p.stdin, "line %d\n", i)
		got := p.readLines(t, 1)
		if m := deliveredRE.FindStringSubmatch(got[0]); m == nil || m[4] != strconv.Itoa(i) {
			t.Fatalf("report %q, want one for line %d", got[0], i)
		}
	}
	if code := p.interrupt(t); code != 0 {
		t.Fatalf("exit %d after SIGINT\n%s", code, p.stderr.String())
	}
	for _, want := range []string{"interrupted: stopped reading after line 3", "3 sent, 3 delivered, 0 failed"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, p.stderr.String())
		}
	}
}

// TestProduceCodecsAndAcks: every -z codec and --acks level round-trips.
func TestProduceCodecsAndAcks(t *testing.T) {
	cl := testCluster(t, keeltest.Topics(2, "none", "gzip", "snappy", "lz4", "zstd", "acks1", "acks0"))
	for _, tc := range [][]string{
		{"none", "-z", "none"}, {"gzip", "-z", "gzip"}, {"snappy", "-z", "snappy"}, {"lz4", "-z", "lz4"}, {"zstd", "-z", "zstd"},
		{"acks1", "--acks", "1"}, {"acks0", "--acks", "0"},
	} {
		topic := tc[0]
		lines := keyedLines(200, topic+"-")
		res := runBinary(t, joinLines(lines), append([]string{"produce", "-b", cl.Addr(), "-t", topic, "-K:"}, tc[1:]...)...)
		if res.code != 0 || !strings.Contains(res.stderr, "200 sent, 200 delivered, 0 failed") {
			t.Fatalf("produce %q: exit %d\n%s", tc, res.code, res.stderr)
		}
		if topic == "acks0" && !strings.Contains(res.stdout, "@-1 line 1\n") {
			t.Errorf("--acks 0 reports should have no offset:\n%.200s", res.stdout)
		}
		res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", topic, "-e", "-K:")
		sameMultiset(t, "produce "+strings.Join(tc, " "), outLines(res.stdout), lines)
	}
}
