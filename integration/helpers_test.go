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
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		waitForKfakeExit(5 * time.Second)
		// kfake's own goroutines are the fake broker's, not keel's: a
		// cluster that is slow to wind down must not fail keel's check.
		goleak.VerifyNone(t,
			goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*Cluster).run"),
			goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*broker).listen"),
		)
	})
}

// waitForKfakeExit waits until no goroutine runs kfake code: kfake's Close
// returns before its goroutines have finished. Tests here do not run in
// parallel, so after a test's cluster is closed none should remain.
func waitForKfakeExit(limit time.Duration) {
	deadline := time.Now().Add(limit)
	buf := make([]byte, 4<<20)
	for time.Now().Before(deadline) {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("pkg/kfake.")) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
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
