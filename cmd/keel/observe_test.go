package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keel-go/keel/keeltest"
)

// bgBinary is a keel run in the background whose output lines are
// collected as they come.
type bgBinary struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  []string
	err  []string
	done chan struct{}
}

func startBgBinary(t *testing.T, args ...string) *bgBinary {
	t.Helper()
	b := &bgBinary{cmd: exec.Command(keelBinary, args...), done: make(chan struct{})}
	b.cmd.Env = filteredEnv("KEEL_BROKERS")
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := b.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	read := func(r io.Reader, into *[]string) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			b.mu.Lock()
			*into = append(*into, sc.Text())
			b.mu.Unlock()
		}
	}
	wg.Add(2)
	go read(stdout, &b.out)
	go read(stderr, &b.err)
	go func() { wg.Wait(); close(b.done) }()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		<-b.done
		b.cmd.Wait()
	})
	return b
}

func (b *bgBinary) lines(stderr bool) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if stderr {
		return append([]string(nil), b.err...)
	}
	return append([]string(nil), b.out...)
}

// interrupt sends SIGINT and returns the exit code (bounded by 30s).
func (b *bgBinary) interrupt(t *testing.T) int {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit within 30s of SIGINT; stderr:\n%s", strings.Join(b.lines(true), "\n"))
	}
	err := b.cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// waitFor polls cond every 50ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// TestGroupsLagWatch: --watch prints refresh after refresh, each with the
// lag admin computes (the fixture's group holds at offset 6), a rate
// column, and ends cleanly on Ctrl-C.
func TestGroupsLagWatch(t *testing.T) {
	f := startLagFixture(t)
	b := startBgBinary(t, "groups", "lag", "-b", f.cl.Addr(), "-G", "billing", "--watch", "--interval", "300ms")
	refreshes := func() int {
		n := 0
		for _, l := range b.lines(false) {
			if strings.HasPrefix(l, "--- group billing at ") {
				n++
			}
		}
		return n
	}
	if !waitFor(60*time.Second, func() bool { return refreshes() >= 3 }) {
		t.Fatalf("%d refreshes; stdout:\n%s\nstderr:\n%s", refreshes(), strings.Join(b.lines(false), "\n"), strings.Join(b.lines(true), "\n"))
	}
	if code := b.interrupt(t); code != 0 {
		t.Errorf("exit %d after SIGINT, want 0; stderr:\n%s", code, strings.Join(b.lines(true), "\n"))
	}
	out := b.lines(false)
	// Every refresh's rows: TOPIC PARTITION COMMITTED END LAG RATE/S MEMBER.
	var rows [][]string
	totals := 0
	for _, l := range out {
		fields := strings.Fields(l)
		if len(fields) == 7 && fields[0] == "orders" {
			rows = append(rows, fields)
		}
		if l == "TOTAL LAG: 15" {
			totals++
		}
	}
	if totals < 2 || len(rows) < 6 {
		t.Fatalf("want at least two refreshes with 3 rows and TOTAL LAG: 15; got:\n%s", strings.Join(out, "\n"))
	}
	for i, row := range rows {
		p := i % 3
		want := []string{"orders", fmt.Sprint(p), "6", fmt.Sprint(10 + p), fmt.Sprint(4 + p)}
		if strings.Join(row[:5], " ") != strings.Join(want, " ") {
			t.Errorf("row %v, want %v", row, want)
		}
		// The group holds: nothing is committed between refreshes.
		if i >= 3 && row[5] != "0.0" {
			t.Errorf("rate of a held partition = %s, want 0.0 (row %v)", row[5], row)
		}
		if i < 3 && row[5] != "-" {
			t.Errorf("rate on the first refresh = %s, want - (row %v)", row[5], row)
		}
	}
}

// TestConsumeMetricsAddr: keel consume --metrics-addr serves keel_
// metrics, among them the records it consumed.
func TestConsumeMetricsAddr(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("metered", 1))
	r := runBinary(t, strings.NewReader("a\nb\nc\n"), "produce", "-b", cl.Addr(), "-t", "metered")
	if r.code != 0 {
		t.Fatalf("produce: exit %d: %s", r.code, r.stderr)
	}
	b := startBgBinary(t, "consume", "-b", cl.Addr(), "-t", "metered", "--metrics-addr", "127.0.0.1:0")
	var url string
	if !waitFor(30*time.Second, func() bool {
		for _, l := range b.lines(true) {
			if a, ok := strings.CutPrefix(l, "serving metrics on "); ok {
				url = a
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no metrics address on stderr:\n%s", strings.Join(b.lines(true), "\n"))
	}
	var body string
	ok := waitFor(30*time.Second, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		bb, _ := io.ReadAll(resp.Body)
		body = string(bb)
		return strings.Contains(body, `keel_consumer_records_total{partition="0",topic="metered"} 3`)
	})
	if !ok {
		t.Fatalf("scrape of %s lacks the 3 consumed records:\n%s", url, body)
	}
	for _, name := range []string{"keel_broker_connects_total", "keel_broker_request_duration_seconds_bucket", "go_goroutines"} {
		if !strings.Contains(body, name) {
			t.Errorf("scrape lacks %s", name)
		}
	}
	if code := b.interrupt(t); code != 0 {
		t.Errorf("exit %d after SIGINT; stderr:\n%s", code, strings.Join(b.lines(true), "\n"))
	}
}
