package main

import (
	"strings"
	"testing"

	"github.com/keel-go/keel/keeltest"
)

// Regression tests for the CLI bugs of issue 18 ("Bugs found"): each ran
// through before its fix, without the clear error and non-zero exit it
// asserts.

// TestConsumeEmptyGroupIsAnError (bug 5): -G '' used to drop group mode
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
