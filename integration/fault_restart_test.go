package integration

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// TestFaultMatrixFullRestart (issue 18, "a full cluster restart from its
// data directory"): 3 brokers persisting to a data directory with a fsync
// per appended batch; an idempotent producer (acks=all) writes ids
// 0..n-1 to a 6-partition topic while 2 group members consume it; a third
// of the way through every broker stops, and after a pause a new cluster
// starts from the same directory on the same ports. Then the producer
// goes on, and the consumers with it.
//
// keel's promise: nothing acknowledged is lost, nothing is duplicated or
// reordered in the log (the producer's id and sequences are restored with
// the log, so its retries across the restart are deduplicated); records
// in flight when the cluster went away are retried, not failed (the
// delivery timeout is longer than the outage); every record is processed
// by the group, a duplicate only where at-least-once allows it (processed
// and not yet committed when the group rebalanced), counted and bounded
// at 1 %.
//
//	go test -race -count=1 -run TestFaultMatrixFullRestart -v ./integration/
//	KEEL_FAULTS=full go test -count=1 -run TestFaultMatrixFullRestart -v ./integration/
func TestFaultMatrixFullRestart(t *testing.T) {
	n, spread, down := 4_000, 3*time.Second, 500*time.Millisecond
	if os.Getenv("KEEL_FAULTS") == "full" {
		n, spread, down = 100_000, 20*time.Second, 2*time.Second
	}
	noLeaks(t)
	dir := t.TempDir()
	opts := []keeltest.Option{
		keeltest.Topic("orders", 6), keeltest.DataDir(dir), keeltest.SyncWrites(),
		keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute),
	}
	first, err := keeltest.Start(append(opts, keeltest.Brokers(3))...)
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[keeltest.Cluster]
	current.Store(first)
	t.Cleanup(func() { current.Load().Close() })
	var ports []int
	for _, a := range first.Addrs() {
		_, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		ports = append(ports, p)
	}

	c := newClient(t, first, keel.MetadataMinRefreshInterval(10*time.Millisecond))
	p := newProducer(t, c, keel.RetryBackoff(5*time.Millisecond, 100*time.Millisecond),
		keel.DeliveryTimeout(2*time.Minute), keel.ProduceRequestTimeout(2*time.Second))
	ctx := testCtx(t, 5*time.Minute)
	seen := newProcessed()
	h := func(ctx context.Context, m *keel.Message) error { seen.add(m); return nil }
	for range 2 {
		startMember(t, c, "restart", h, fastGroup()...)
	}

	restarted := make(chan error, 1)
	var stopped, started time.Time
	go func() {
		time.Sleep(spread / 3)
		stopped = time.Now()
		first.Close()
		time.Sleep(down)
		// The ports were just released; another process may take one
		// meanwhile, so try a few times.
		var second *keeltest.Cluster
		var err error
		for range 50 {
			if second, err = keeltest.Start(append(opts, keeltest.Ports(ports...))...); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err == nil {
			started = time.Now()
			current.Store(second)
		}
		restarted <- err
	}()

	start := time.Now()
	failed := produceIDsThen(t, ctx, p, "orders", n, func(i int) []byte { return []byte(strconv.Itoa(i % 1009)) }, spread, func() {
		if err := <-restarted; err != nil {
			t.Fatalf("restarting the cluster from %s: %v", dir, err)
		}
	})
	produced := time.Since(start)
	maybe := make(map[int]bool)
	for _, d := range failed {
		if !errors.Is(d.Err, keel.ErrOutcomeUnknown) {
			t.Errorf("record failed as not written across the restart: %v", d.Err)
			continue
		}
		id, _ := strconv.Atoi(string(d.Message.Value))
		maybe[id] = true
	}
	cl := current.Load()
	rep := checkExactlyOnceMaybe(readTopic(t, cl, "orders"), n, maybe)
	seen.waitAll(t, ctx, n)
	took := time.Since(start)
	missing, dup := seen.report(n)
	t.Logf("cluster down %v (stop, restore, listen); produced in %v", started.Sub(stopped).Round(10*time.Millisecond), produced.Round(100*time.Millisecond))
	t.Logf("ROW | full cluster restart | %d | %d | %d | %d | %d (%d written) | consumed: %d never processed, %d twice | %v |",
		n, rep.Lost, rep.Duplicated, rep.Reordered, rep.Unknown, rep.UnknownWritten, missing, dup, took.Round(100*time.Millisecond))
	if rep.Lost+rep.Duplicated+rep.Reordered != 0 {
		t.Fatal(rep)
	}
	if missing != 0 || dup > n/100 {
		t.Fatalf("%d records never processed, %d processed twice", missing, dup)
	}
}
