package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel/keeltest"
)

// keelBinary is the path of the keel binary built once for the CLI tests:
// they run the real binary, as a user would, not run() in-process.
var keelBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keel-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	keelBinary = filepath.Join(dir, "keel")
	args := []string{"build", "-o", keelBinary}
	if raceEnabled {
		// A race in the binary then ends it with exit status 66 and a
		// report on stderr, which the tests' exit-code checks catch.
		args = append(args, "-race")
		// The race runtime waits a second before a successful exit to
		// catch late reports; a few tens of ms do for these short runs.
		os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=50"))
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building keel for the CLI tests:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binResult is what one run of the binary did.
type binResult struct {
	stdout, stderr string
	code           int
}

// runBinary runs the keel binary with args, stdin as its input and
// $KEEL_BROKERS unset (tests pass -b), bounded by a minute.
func runBinary(t *testing.T, stdin io.Reader, args ...string) binResult {
	t.Helper()
	return runBinaryEnv(t, stdin, nil, args...)
}

// runBinaryEnv is runBinary with extra environment variables ("K=V").
func runBinaryEnv(t *testing.T, stdin io.Reader, env []string, args ...string) binResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, keelBinary, args...)
	cmd.Env = append(filteredEnv("KEEL_BROKERS"), env...)
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	cmd.Stdin = stdin
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("keel %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("keel %s did not finish within a minute\nstderr:\n%s", strings.Join(args, " "), errOut.String())
	}
	return binResult{stdout: out.String(), stderr: errOut.String(), code: code}
}

func filteredEnv(drop ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, d := range drop {
			if strings.HasPrefix(kv, d+"=") {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

// testCluster starts a keeltest cluster for one test, closed at its end.
func testCluster(t *testing.T, opts ...keeltest.Option) *keeltest.Cluster {
	t.Helper()
	return keeltest.NewCluster(t, opts...)
}
