package integration

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// noLeaks registers, before anything else a test starts, a cleanup that
// fails the test if goroutines outlive it. Cleanups run last-in first-out,
// so the cluster and the clients are closed before this check runs.
func noLeaks(t *testing.T) {
	t.Helper()
	before := kfakeGoroutines()
	// Only goroutines this test started count: one that an earlier,
	// failed test left running (its cleanup cut short by t.Fatal) must
	// not fail every test after it (seen in CI: one stuck test turned
	// into twenty failures).
	earlier := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		waitForKfakeExit(before, 5*time.Second)
		// kfake's own goroutines are the fake broker's, not keel's: a
		// cluster that is slow to wind down must not fail keel's check.
		goleak.VerifyNone(t, earlier,
			goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*Cluster).run"),
			goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*broker).listen"),
		)
	})
}

// waitForKfakeExit waits until no goroutine runs kfake code but those in
// before (running when the test began): kfake's Close returns before its
// goroutines have finished. Tests here do not run in parallel, so after a
// test's cluster is closed none of its own should remain. A kfake
// goroutine an earlier test left stuck for good (seen once: a cluster's
// run loop blocked in continueSleptControl) is not waited for again: it
// made every later test wait its full limit, and the package overran
// its timeout.
func waitForKfakeExit(before map[string]bool, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		left := false
		for id := range kfakeGoroutines() {
			if !before[id] {
				left = true
				break
			}
		}
		if !left {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kfakeGoroutines returns the ids of the goroutines running kfake code.
func kfakeGoroutines() map[string]bool {
	buf := make([]byte, 4<<20)
	n := runtime.Stack(buf, true)
	ids := map[string]bool{}
	for _, g := range bytes.Split(buf[:n], []byte("\n\n")) {
		if !bytes.Contains(g, []byte("pkg/kfake.")) {
			continue
		}
		if f := bytes.Fields(g); len(f) > 1 && string(f[0]) == "goroutine" {
			ids[string(f[1])] = true
		}
	}
	return ids
}

// startCluster starts a keeltest cluster after registering the leak check.
func startCluster(t *testing.T, opts ...keeltest.Option) *keeltest.Cluster {
	t.Helper()
	noLeaks(t)
	return keeltest.NewCluster(t, opts...)
}

// newClient makes a client for cl and closes it when the test ends.
func newClient(t *testing.T, cl *keeltest.Cluster, opts ...keel.ClientOption) *keel.Client {
	t.Helper()
	c, err := keel.NewClient(append([]keel.ClientOption{keel.SeedBrokers(cl.Addrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Client.Close: %v", err)
		}
	})
	return c
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
