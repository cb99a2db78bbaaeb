package integration

import (
	"bufio"
	"context"
	"io"
	"log/slog"
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

// crashable is a group member in a child process (the test binary running
// TestGroupCrashHelperProcess), which the test kills: no Close, no
// LeaveGroup, no last commit — the only honest crash.
type crashable struct {
	cmd    *exec.Cmd
	lines  sync.WaitGroup
	joined chan struct{} // closed when the child first completed a rebalance
}

// startCrashable starts a child member of group on cl's brokers; every id
// it processes goes to seen and, marked as processed by a crashed
// member, to byCrashed; its client's log (with KEEL_CHURN_LOGS) to logs.
func startCrashable(t *testing.T, ctx context.Context, addrs []string, group string, session time.Duration, seen *processed, byCrashed *idSet, logs io.Writer) *crashable {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGroupCrashHelperProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+strings.Join(addrs, ","),
		crashGroupEnv+"="+group, crashSessionEnv+"="+session.String())
	cmd.Stderr = logs // the child's client log (KEEL_CHURN_LOGS)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &crashable{cmd: cmd, joined: make(chan struct{})}
	m.lines.Go(func() {
		sc := bufio.NewScanner(stdout)
		joined := false
		for sc.Scan() {
			if sc.Text() == "joined" && !joined {
				joined = true
				close(m.joined)
			}
			if id, ok := strings.CutPrefix(sc.Text(), "processed "); ok {
				seen.add(&keel.Message{Value: []byte(id)})
				n, _ := strconv.Atoi(id)
				byCrashed.add(n)
			}
		}
	})
	t.Cleanup(m.kill)
	return m
}

// killJoined crashes the member once it has completed a rebalance (or
// after limit). kfake gives a member no session timer between its
// first JoinGroup with a member id and a join answer it could deliver:
// a member killed there is never expired, and the group stays stable
// with partitions assigned to a dead member for good (seen: three dead
// children holding four partitions for 5 minutes). Kafka schedules the
// expiry when the join completes, delivered or not. So the test crashes
// members that are in the group, which is the crash it is about.
func (m *crashable) killJoined(limit time.Duration) {
	select {
	case <-m.joined:
	case <-time.After(limit):
	}
	m.kill()
}

// kill crashes the member and waits until everything it printed before
// dying has been read.
func (m *crashable) kill() {
	m.cmd.Process.Kill()
	m.lines.Wait()
	m.cmd.Wait()
}

type lockedW struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedW) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// idSet is a set of ids safe for concurrent use.
type idSet struct {
	mu  sync.Mutex
	ids map[int]bool
}

func (s *idSet) add(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[int]bool{}
	}
	s.ids[id] = true
}

func (s *idSet) has(id int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id]
}

// TestFaultMatrixChurnWithCrashes (issue 18, "group churn with ≥ 20
// membership changes including crashes"): a producer writes ids 0..n-1
// to an 8-partition topic over the run while the group changes 24 times,
// every 250 ms in turn: a member in a child process joins, an in-process
// member joins, the oldest in-process member leaves gracefully (Close),
// the oldest child member is killed (SIGKILL: no leave, no last commit).
// The child members' session timeout is 2 s, so a crashed member's
// partitions move after it expires; the rebalance timeout is 5 s. The
// in-process members, which never crash, keep fastGroup's 6 s: kfake
// expels a member waiting in JoinGroup once its session timeout passes
// and never answers that JoinGroup (Kafka keeps members awaiting a join
// alive and answers a removed one at once), so with 2 s a rebalance
// waiting up to 5 s for a slow or dead member left the live members
// parked for keel's whole JoinGroup timeout (35 s) several times a run.
//
// keel's promise: every record processed; a record processed twice only
// where at-least-once allows it — processed by a member that crashed
// before committing it, or on a partition a member lost (OnLost: its
// session expired or it was fenced, so it could not commit) — so the
// checker requires every duplicated id to have been processed by a killed
// member or to be on a lost partition, and counts each kind. Graceful
// leaves commit on revoke and add no duplicate.
//
//	go test -race -count=1 -run TestFaultMatrixChurnWithCrashes -v ./integration/
func TestFaultMatrixChurnWithCrashes(t *testing.T) {
	n, spread := 20_000, 6*time.Second
	if os.Getenv("KEEL_FAULTS") == "full" {
		n, spread = 200_000, 30*time.Second
	}
	const group, session = "churn-crash", 2 * time.Second
	cl := groupCluster(t, 8)
	// The client's log is printed when the test fails (or with
	// KEEL_CHURN_LOGS=1, =debug for debug level), to tell a crash's duplicates from others.
	var logs strings.Builder
	var logsMu sync.Mutex
	level := slog.LevelInfo
	if os.Getenv("KEEL_CHURN_LOGS") == "debug" {
		level = slog.LevelDebug
	}
	c := newClient(t, cl, keel.Logger(slog.New(slog.NewTextHandler(lockedW{&logsMu, &logs}, &slog.HandlerOptions{Level: level}))))
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("KEEL_CHURN_LOGS") != "" {
			logsMu.Lock()
			t.Log(logs.String())
			logsMu.Unlock()
		}
	})
	ctx := testCtx(t, 5*time.Minute)
	p := newProducer(t, c)
	seen := newProcessed()
	var byCrashed idSet
	var partOf sync.Map // id -> partition, for duplicates on lost partitions
	h := keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		seen.add(m)
		id, _ := strconv.Atoi(string(m.Value))
		partOf.Store(id, m.Partition)
		return nil
	})
	// An in-process member can lose its membership too (its session
	// expiring on a loaded machine, a JoinGroup timed out): its
	// partitions move without a commit, which at-least-once allows; such
	// duplicates are counted apart from the crashes'.
	var lostMu sync.Mutex
	lost := map[int32]bool{}
	onLost := keel.OnLost(func(tps []keel.TopicPartition) {
		lostMu.Lock()
		for _, tp := range tps {
			lost[tp.Partition] = true
		}
		lostMu.Unlock()
	})
	// The children's rebalance timeout is the same (group_crash_test.go):
	// a rebalance waiting for a member that just died lasts at most that.
	opts := fastGroup(keel.RebalanceTimeout(5*time.Second), onLost)
	inproc := []*member{startMember(t, c, group, h, opts...), startMember(t, c, group, h, opts...)}
	var children []*crashable

	produced := make(chan []keel.Delivery, 1)
	go func() {
		produced <- produceIDsThen(t, ctx, p, "orders", n, func(i int) []byte { return []byte(strconv.Itoa(i % 1009)) }, spread, func() {})
	}()
	start := time.Now()
	changes, crashes, leaves := 0, 0, 0
	for tick := range 24 {
		time.Sleep(250 * time.Millisecond)
		switch tick % 4 {
		case 0:
			children = append(children, startCrashable(t, ctx, cl.Addrs(), group, session, seen, &byCrashed, lockedW{&logsMu, &logs}))
		case 1:
			inproc = append(inproc, startMember(t, c, group, h, opts...))
		case 2:
			inproc[0].stop(t)
			inproc = inproc[1:]
			leaves++
		case 3:
			children[0].killJoined(20 * time.Second)
			children = children[1:]
			crashes++
		}
		changes++
	}
	if failed := <-produced; len(failed) > 0 {
		t.Fatalf("%d records not produced, first: %v", len(failed), failed[0].Err)
	}
	// A timeline of the progress, for the row's explanation. Stopped by a
	// cleanup too: waitAll failing must not leave it running into the
	// next tests' leak checks.
	stopProgress := make(chan struct{})
	var progress sync.WaitGroup
	var stopOnce sync.Once
	endProgress := func() { stopOnce.Do(func() { close(stopProgress) }); progress.Wait() }
	t.Cleanup(endProgress)
	// What to read when records go missing: who the coordinator thinks
	// owns what, and what the in-process members think they process.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if a, err := admin.New(c); err == nil {
			d, err := a.DescribeGroups(dctx, group)
			t.Logf("coordinator's view: %+v (err %v)", d, err)
		}
		for _, m := range inproc {
			st := m.g.Stats()
			t.Logf("in-process member %s generation %d assigned %v", st.MemberID, st.Generation, m.g.Assigned())
			for _, ps := range st.Partitions {
				t.Logf("  %+v", ps)
			}
		}
	})
	progress.Go(func() {
		var line []string
		defer func() { t.Logf("processed by second after the churn: %s", strings.Join(line, " ")) }()
		for {
			select {
			case <-stopProgress:
				return
			case <-time.After(time.Second):
				line = append(line, strconv.FormatInt(seen.total.Load(), 10))
			}
		}
	})
	seen.waitAll(t, ctx, n)
	endProgress()
	took := time.Since(start)
	for _, ch := range children { // still running: stop them the hard way too
		ch.kill()
	}

	missing, dup := seen.report(n)
	seen.mu.Lock()
	lostMu.Lock()
	unexplained, onLostPartitions := 0, 0
	var example []int
	for id, count := range seen.counts {
		if count <= 1 || byCrashed.has(id) {
			continue
		}
		if part, ok := partOf.Load(id); ok && lost[part.(int32)] {
			onLostPartitions += count - 1
			continue
		}
		unexplained += count - 1
		if len(example) < 10 {
			example = append(example, id)
		}
	}
	lostParts := len(lost)
	lostMu.Unlock()
	seen.mu.Unlock()
	byCrashed.mu.Lock()
	crashedProcessed := len(byCrashed.ids)
	byCrashed.mu.Unlock()
	t.Logf("ROW | group churn with crashes (%d changes: %d crashes, %d graceful leaves) | %d | %d never processed | %d twice: %d of ids a killed member processed (it processed %d), %d on %d partitions an in-process member lost, %d unexplained %v | %v |",
		changes, crashes, leaves, n, missing, dup, dup-onLostPartitions-unexplained, crashedProcessed, onLostPartitions, lostParts, unexplained, example, took.Round(100*time.Millisecond))
	if missing != 0 {
		t.Fatalf("%d records never processed", missing)
	}
	if unexplained != 0 {
		t.Fatalf("%d duplicates not processed by a crashed member (e.g. ids %v): a graceful change duplicated records", unexplained, example)
	}
	if dup > n/10 {
		t.Fatalf("%d duplicates of %d records: more than 10 %%; members did not resume from committed offsets", dup, n)
	}
	if crashedProcessed == 0 {
		t.Fatal("the crashing members processed nothing: the scenario did not happen")
	}
}
