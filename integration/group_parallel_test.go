package integration

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// parallelHelperEnv makes TestGroupParallelHelperProcess run a parallel
// group member in this test binary as a separate process, which the parent
// kills: the only honest way to crash without Close.
const parallelHelperEnv = "KEEL_PARALLEL_HELPER_BROKERS"

func parallelOpts(proto []keel.GroupOption, extra ...keel.GroupOption) []keel.GroupOption {
	return fastGroup(with(proto, append([]keel.GroupOption{keel.Parallel(keel.KeyOrder, 16, 0)}, extra...)...)...)
}

// randomDelay sleeps 0-20 ms, ignoring ctx: a handler at work finishes.
func randomDelay() { time.Sleep(time.Duration(rand.IntN(21)) * time.Millisecond) }

// TestGroupParallelHelperProcess is the member that gets killed; it only
// runs when started by TestGroupParallelKeyOrderChecker. It prints every
// record it handled to the end.
func TestGroupParallelHelperProcess(t *testing.T) {
	brokers := os.Getenv(parallelHelperEnv)
	if brokers == "" {
		t.Skip("helper process for TestGroupParallelKeyOrderChecker")
	}
	c, err := keel.NewClient(keel.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	g, err := keel.NewGroupConsumer(c, "parallel", []string{"orders"}, parallelOpts(protocolNamed(os.Getenv(crashProtocolEnv)))...)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	g.Run(context.Background(), keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		start := time.Now()
		randomDelay()
		mu.Lock()
		fmt.Fprintf(out, "done %d %d %s %s %d %d\n", m.Partition, m.Offset, m.Key, m.Value, start.UnixNano(), time.Now().UnixNano())
		out.Flush()
		mu.Unlock()
		return nil
	}))
}

// parseHelperLine reads one "done" line of the helper process.
func parseHelperLine(line string) (ledgerEvent, bool) {
	f := strings.Fields(line)
	if len(f) != 7 || f[0] != "done" {
		return ledgerEvent{}, false
	}
	p, _ := strconv.Atoi(f[1])
	off, _ := strconv.ParseInt(f[2], 10, 64)
	id, _ := strconv.Atoi(f[4])
	start, _ := strconv.ParseInt(f[5], 10, 64)
	end, _ := strconv.ParseInt(f[6], 10, 64)
	return ledgerEvent{member: "killed", partition: int32(p), offset: off, key: fmt.Sprintf("%d/%s", p, f[3]), id: id,
		start: time.Unix(0, start), end: time.Unix(0, end)}, true
}

// Issue 14: a 3-member group in KeyOrder with 16 records in flight per
// partition and handlers taking 0-20 ms, while members leave gracefully,
// join, and one is killed without Close. The checker finds order per key
// never violated (no two records of a key at once, offsets increasing,
// across members and processes), no record lost, and duplicates only of
// records the killed member handled at or after its partition's committed
// offset at the kill — records it processed past that but committed in
// the metadata are not handled again.
func TestGroupParallelKeyOrderChecker(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, proto []keel.GroupOption) {
		n := 30_000
		if testing.Short() || len(proto) > 0 {
			n = 12_000 // the consumer protocol's run at CI size
		}
		cl := groupCluster(t, 6)
		c := newClient(t, cl)
		p := newProducer(t, c)
		ctx := testCtx(t, 4*time.Minute)
		if failed := produceIDs(t, ctx, p, "orders", n, func(i int) []byte { return []byte(fmt.Sprintf("k%d", i%300)) }); len(failed) > 0 {
			t.Fatal(failed[0].Err)
		}
		ledger := newKeyLedger()
		handler := func(who string) keel.HandlerFunc {
			return func(hctx context.Context, m *keel.Message) error {
				ev := ledger.begin(who, m)
				randomDelay()
				ledger.end(ev, true)
				return nil
			}
		}
		// The member to kill runs in its own process; start it first so
		// that it owns partitions from the beginning.
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGroupParallelHelperProcess$", "-test.v=false")
		cmd.Env = append(os.Environ(), parallelHelperEnv+"="+strings.Join(cl.Addrs(), ","), crashProtocolEnv+"="+protocolName(proto))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		var helperLines sync.WaitGroup
		helperLines.Add(1)
		var byKilled atomicCount
		go func() {
			defer helperLines.Done()
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if ev, ok := parseHelperLine(sc.Text()); ok {
					ledger.add(ev)
					byKilled.add()
				}
			}
		}()
		a := startMember(t, c, "parallel", handler("a"), parallelOpts(proto)...)
		b := startMember(t, c, "parallel", handler("b"), parallelOpts(proto)...)
		waitFor(t, ctx, "the killed member to handle records", func() bool { return byKilled.get() >= 300 })

		// A graceful leave and a join while everything runs.
		b.stop(t)
		b2 := startMember(t, c, "parallel", handler("b2"), parallelOpts(proto)...)
		waitFor(t, ctx, "progress after b left", func() bool { return int(ledger.finished.Load()) >= n/3 })

		// The kill: no Close, no LeaveGroup, no last commit.
		cmd.Process.Kill()
		cmd.Wait()
		helperLines.Wait()
		time.Sleep(300 * time.Millisecond) // a commit it sent before dying lands
		adm, err := admin.New(c)
		if err != nil {
			t.Fatal(err)
		}
		offs, err := adm.GroupOffsets(ctx, "parallel")
		if err != nil {
			t.Fatal(err)
		}
		killedAt := map[int32]int64{}
		for tp, o := range offs {
			killedAt[tp.Partition] = o
		}
		d := startMember(t, c, "parallel", handler("d"), parallelOpts(proto)...)
		waitFor(t, ctx, "progress after the kill", func() bool { return int(ledger.finished.Load()) >= 2*n/3 })

		// Another graceful leave and join.
		a.stop(t)
		a2 := startMember(t, c, "parallel", handler("a2"), parallelOpts(proto)...)
		ledger.waitDistinct(t, n, 3*time.Minute)
		for _, m := range []*member{b2, d, a2} {
			m.stop(t)
		}
		rep := ledger.check(n, "killed", killedAt)
		t.Logf("killed member handled %d records; committed at the kill %v; %s", byKilled.get(), killedAt, rep)
		if !rep.ok() {
			t.Fatalf("checker: %s", rep)
		}
	})
}

type atomicCount struct {
	mu sync.Mutex
	n  int
}

func (c *atomicCount) add() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *atomicCount) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// committedOf reads the group's committed offset of orders/partition (-1:
// none).
func committedOf(t *testing.T, ctx context.Context, adm *admin.Admin, group string, partition int32) int64 {
	t.Helper()
	offs, err := adm.GroupOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs[keel.TopicPartition{Topic: "orders", Partition: partition}]; ok {
		return o
	}
	return -1
}

// Issue 14: one record is held (5 s, and until 1,000 later records of its
// partition finished and a commit was seen) — the committed offset stays
// at the held record all along, never past it; once it finishes, the
// offset jumps past all of them. Nothing is handled twice.
func TestGroupParallelHeldRecordHoldsCommit(t *testing.T) {
	cl := groupCluster(t, 1)
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 2*time.Minute)
	const held, later = 100, 1000
	n := held + 1 + later
	if failed := produceIDs(t, ctx, p, "orders", n, func(i int) []byte { return []byte(fmt.Sprint("k", i)) }); len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	seen := newProcessed()
	release := make(chan struct{})
	heldSince := make(chan time.Time, 1)
	var laterDone atomicCount
	startMember(t, c, "held", func(hctx context.Context, m *keel.Message) error {
		switch {
		case m.Offset == held:
			heldSince <- time.Now()
			<-release
		case m.Offset > held:
			laterDone.add()
		}
		seen.add(m)
		return nil
	}, fastGroup(keel.Parallel(keel.KeyOrder, 64, 0), keel.AutoCommitInterval(100*time.Millisecond))...)
	since := <-heldSince
	waitFor(t, ctx, "the later records to finish", func() bool { return laterDone.get() == later })
	// Held: whatever finished after it, the commit stays at it.
	var observed []int64
	waitFor(t, ctx, "the commit to reach the held record", func() bool {
		o := committedOf(t, ctx, adm, "held", 0)
		observed = append(observed, o)
		return o == held
	})
	for time.Since(since) < 5*time.Second {
		observed = append(observed, committedOf(t, ctx, adm, "held", 0))
		time.Sleep(100 * time.Millisecond)
	}
	for _, o := range observed {
		if o > held {
			t.Fatalf("committed %d while record %d was still being handled (observed %v)", o, held, observed)
		}
	}
	close(release)
	waitFor(t, ctx, "the commit to jump past the later records", func() bool { return committedOf(t, ctx, adm, "held", 0) == int64(n) })
	if missing, dup := seen.report(n); missing != 0 || dup != 0 {
		t.Fatalf("missing %d, duplicated %d", missing, dup)
	}
	t.Logf("held record %d for %v while %d later records finished: committed offsets observed %d times, all at or below it; then %d", held, time.Since(since).Round(time.Millisecond), later, len(observed), n)
}

// Issue 14: a partition revoked while records of it are being handled in
// parallel is released only after those handlers returned — the new
// owner is assigned it after the last one ended — and the new owner starts
// exactly at the committed prefix: the first record the old owner did not
// finish. Records the old owner finished past it (handlers that gave up on
// the revoke leave gaps) are not handled again.
func TestGroupParallelRevokeWaitsForInFlight(t *testing.T) {
	cl := groupCluster(t, 2)
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 2*time.Minute)
	const n = 600
	if failed := produceIDs(t, ctx, p, "orders", n, func(i int) []byte { return []byte(fmt.Sprint("k", i)) }); len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	type handling struct {
		offset int64
		end    time.Time
	}
	var mu sync.Mutex
	finishedByA := map[int32][]handling{}
	firstByB := map[int32]int64{}
	assignedToB := map[int32]time.Time{}
	seen := newProcessed()
	var started atomicCount
	a := startMember(t, c, "revoke", func(hctx context.Context, m *keel.Message) error {
		started.add()
		select {
		case <-time.After(time.Duration(50+rand.IntN(400)) * time.Millisecond):
		case <-hctx.Done():
			if m.Offset%2 == 0 {
				return hctx.Err() // gives up: a gap in what A finished
			}
			time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond) // finishes anyway
		}
		seen.add(m)
		mu.Lock()
		finishedByA[m.Partition] = append(finishedByA[m.Partition], handling{m.Offset, time.Now()})
		mu.Unlock()
		return nil
	}, fastGroup(keel.Parallel(keel.KeyOrder, 8, 0))...)
	waitFor(t, ctx, "A to own both partitions with records in flight", func() bool { return len(a.g.Assigned()) == 2 && started.get() >= 40 })
	b := startMember(t, c, "revoke", func(hctx context.Context, m *keel.Message) error {
		mu.Lock()
		if _, ok := firstByB[m.Partition]; !ok {
			firstByB[m.Partition] = m.Offset
		}
		mu.Unlock()
		seen.add(m)
		return nil
	}, fastGroup(keel.OnAssigned(func(tps []keel.TopicPartition) {
		mu.Lock()
		for _, tp := range tps {
			assignedToB[tp.Partition] = time.Now()
		}
		mu.Unlock()
	}))...)
	seen.waitAll(t, ctx, n)
	mu.Lock()
	moves := maps.Clone(assignedToB) // before A's leave hands B the other one
	mu.Unlock()
	a.stop(t)
	b.stop(t)
	mu.Lock()
	defer mu.Unlock()
	if len(moves) != 1 {
		t.Fatalf("B was assigned %v, want one partition", moves)
	}
	for moved, at := range moves {
		done := map[int64]bool{}
		var lastEnd time.Time
		for _, h := range finishedByA[moved] {
			done[h.offset] = true
			if h.end.After(lastEnd) {
				lastEnd = h.end
			}
			if h.end.After(at) {
				t.Errorf("partition %d: A finished offset %d %v after B was assigned the partition", moved, h.offset, h.end.Sub(at))
			}
		}
		// The prefix: the partition's first offset A did not finish (a
		// fresh topic without transactions: its records are at 0, 1, ...).
		var prefix int64
		for done[prefix] {
			prefix++
		}
		if first, ok := firstByB[moved]; !ok || first != prefix {
			t.Errorf("partition %d: B started at %d, want the committed prefix %d (A finished %d records of it)", moved, first, prefix, len(done))
		}
		t.Logf("partition %d moved to B %v after A's last handler returned; A finished %d records, prefix %d, B started at %d", moved, at.Sub(lastEnd).Round(time.Millisecond), len(done), prefix, firstByB[moved])
	}
	if missing, dup := seen.report(n); missing != 0 || dup != 0 {
		t.Fatalf("missing %d, duplicated %d: records A finished past the prefix were handled again", missing, dup)
	}
}
