package main

import (
	"strings"
	"testing"

	"github.com/keel-go/keel/keeltest"
)

// TestPerfConsumeDurationEndsFirst: with --records and --duration,
// whichever comes first ends the run. The duration running out first is
// not a failure, and is not blamed on --idle-timeout.
func TestPerfConsumeDurationEndsFirst(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("few", 1))
	sendMessages(t, cl.Addr(), numbered("few", 0, "v", 10)...)
	r := runBinary(t, nil, "perf", "consume", "-b", cl.Addr(), "-t", "few",
		"--records", "1000", "--duration", "2s", "--idle-timeout", "50s")
	if r.code != 0 || strings.Contains(r.stderr, "idle-timeout") || !strings.Contains(r.stdout, "records       10 ") {
		t.Errorf("exit %d, want 0 (the duration ended the run)\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}
