package main

import (
	"bufio"
	"bytes"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// devProcess is a `keel dev` a test started.
type devProcess struct {
	cmd     *exec.Cmd
	brokers string // what its export line says
	stderr  lockedBuffer
	done    chan struct{} // closed when the process exited
	served  chan string   // the "keel ui: serving" line, when it prints one
	waitErr error
}

// startDev runs `keel dev args...` and waits (up to 30s) for the export
// line with its addresses. The process is killed at the end of the test
// if it is still running.
func startDev(t *testing.T, args ...string) *devProcess {
	t.Helper()
	d, brokers := startKeel(t, "export KEEL_BROKERS=", append([]string{"dev"}, args...)...)
	d.brokers = brokers
	return d
}

// startKeel runs the keel binary with args and waits (up to 30s) for a
// line of its stdout starting with prefix; it returns the rest of that
// line. Every later line starting with "keel ui: serving" is sent on
// d.served too.
func startKeel(t *testing.T, prefix string, args ...string) (*devProcess, string) {
	t.Helper()
	d := &devProcess{done: make(chan struct{}), served: make(chan string, 1)}
	d.cmd = exec.Command(keelBinary, args...)
	d.cmd.Env = filteredEnv("KEEL_BROKERS")
	d.cmd.Stderr = &d.stderr
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		// Read stdout to its end (the process exiting) before Wait,
		// which closes the pipe.
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if b, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				select {
				case found <- b:
				default:
				}
			}
			if strings.HasPrefix(sc.Text(), "keel ui: serving") {
				select {
				case d.served <- sc.Text():
				default:
				}
			}
		}
		d.waitErr = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	select {
	case line := <-found:
		return d, line
	case <-d.done:
		t.Fatalf("keel %s exited before printing %q: %v\nstderr:\n%s", args[0], prefix, d.waitErr, d.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("keel %s printed no %q line within 30s\nstderr:\n%s", args[0], prefix, d.stderr.String())
	}
	return d, ""
}

// interrupt sends SIGINT and checks keel dev exits 0 within 15s.
func (d *devProcess) interrupt(t *testing.T) {
	t.Helper()
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("keel dev still running 15s after SIGINT\nstderr:\n%s", d.stderr.String())
	}
	if d.waitErr != nil {
		t.Fatalf("keel dev after SIGINT: %v\nstderr:\n%s", d.waitErr, d.stderr.String())
	}
	t.Logf("keel dev exited 0 %v after SIGINT", time.Since(start).Round(time.Millisecond))
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDevServesUntilInterrupted: keel dev on free ports serves produce
// and consume (found through $KEEL_BROKERS, creating a topic on first
// use), exits 0 on SIGINT, and with --data-dir a restart still has the
// records.
func TestDevServesUntilInterrupted(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, "--port", "0", "--brokers", "2", "--topic", "seeded:3", "--data-dir", dir)
	if n := len(strings.Split(d.brokers, ",")); n != 2 {
		t.Fatalf("export line names %d brokers: %q", n, d.brokers)
	}
	env := []string{"KEEL_BROKERS=" + d.brokers}
	lines := keyedLines(500, "dev-")
	res := runBinaryEnv(t, joinLines(lines), env, "produce", "-t", "fresh", "-K:", "-q")
	if res.code != 0 {
		t.Fatalf("produce: exit %d\n%s", res.code, res.stderr)
	}
	res = runBinaryEnv(t, nil, env, "consume", "-t", "fresh", "-e", "-f", `%k:%s\n`)
	if res.code != 0 {
		t.Fatalf("consume: exit %d\n%s", res.code, res.stderr)
	}
	sameMultiset(t, "consumed from keel dev", outLines(res.stdout), lines)
	res = runBinaryEnv(t, nil, env, "consume", "-t", "seeded", "-e", "-f", `%p\n`)
	if res.code != 0 || res.stdout != "" {
		t.Fatalf("seeded topic: exit %d, stdout %q\n%s", res.code, res.stdout, res.stderr)
	}
	d.interrupt(t)

	d = startDev(t, "--port", "0", "--brokers", "2", "--data-dir", dir)
	res = runBinaryEnv(t, nil, []string{"KEEL_BROKERS=" + d.brokers}, "consume", "-t", "fresh", "-e", "-f", `%k:%s\n`)
	if res.code != 0 {
		t.Fatalf("consume after restart: exit %d\n%s", res.code, res.stderr)
	}
	sameMultiset(t, "consumed after a restart on the same --data-dir", outLines(res.stdout), lines)
	d.interrupt(t)
}

func TestDevPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	res := runBinary(t, nil, "dev", "--brokers", "1", "--port", strconv.Itoa(port))
	if res.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.code, res.stderr)
	}
	for _, want := range []string{"address already in use", "is taken", "--port"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
}

func TestDevUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"dev", "--brokers", "0"},
		{"dev", "--port", "65535", "--brokers", "3"},
		{"dev", "--topic", "orders:many"},
		{"dev", "extra"},
	} {
		res := runBinary(t, nil, args...)
		if res.code != 2 || res.stderr == "" {
			t.Errorf("keel %s: exit %d, want 2\n%s", strings.Join(args, " "), res.code, res.stderr)
		}
	}
	res := runBinary(t, nil, "help", "dev")
	if res.code != 0 || !strings.Contains(res.stdout, "Examples:") {
		t.Errorf("keel help dev: exit %d\n%s", res.code, res.stdout)
	}
}
