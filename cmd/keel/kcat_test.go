package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel/keeltest"
)

// kcatBinary returns kcat's path, or skips the test when kcat is not
// installed (CI installs it: apt-get install kcat).
func kcatBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Skipf("kcat not installed (%v): apt-get install kcat to run the interop tests", err)
	}
	return path
}

// runKcat runs kcat within 30s and returns its stdout; a failure fails
// the test with kcat's stderr.
func runKcat(t *testing.T, kcat string, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstderr:\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// TestKcatInterop: what keel produce writes kcat -C reads, and what
// kcat -P writes keel consume reads: the same keys and values both ways,
// with null keys, empty keys and values holding the delimiter.
func TestKcatInterop(t *testing.T) {
	kcat := kcatBinary(t)
	cl := testCluster(t, keeltest.Topic("from-keel", 3), keeltest.Topic("from-kcat", 3))
	lines := keyedLines(2000, "")
	// Edge cases: an empty key, a value holding the delimiter, non-ASCII.
	lines = append(lines, ":empty-key", "k:v:with:colons", "clé:välue ✓")

	res := runBinary(t, joinLines(lines), "produce", "-b", cl.Addr(), "-t", "from-keel", "-K:", "-q")
	if res.code != 0 {
		t.Fatalf("keel produce: exit %d\n%s", res.code, res.stderr)
	}
	got := runKcat(t, kcat, "", "-C", "-b", cl.Addr(), "-t", "from-keel", "-o", "beginning", "-e", "-q", "-f", `%k:%s\n`)
	sameMultiset(t, "keel produce -> kcat -C", outLines(got), lines)

	// kcat -P: a line without the delimiter is a null key; keel's -f
	// shows it as %K -1.
	in := append(lines, "no-key-line")
	runKcat(t, kcat, strings.Join(in, "\n")+"\n", "-P", "-b", cl.Addr(), "-t", "from-kcat", "-K:", "-X", "linger.ms=20")
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "from-kcat", "-e", "-q", "-f", `%k:%s\n`)
	if res.code != 0 {
		t.Fatalf("keel consume: exit %d\n%s", res.code, res.stderr)
	}
	want := append(lines, ":no-key-line")
	sameMultiset(t, "kcat -P -> keel consume", outLines(res.stdout), want)
	res = runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "from-kcat", "-e", "-q", "-f", `%K %s\n`)
	if !strings.Contains(res.stdout, "-1 no-key-line\n") || !strings.Contains(res.stdout, "0 empty-key\n") {
		t.Errorf("null and empty keys not told apart:\n%s", grepLines(res.stdout, "key"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
