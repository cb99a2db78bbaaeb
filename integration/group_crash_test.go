package integration

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
)

// crashHelperEnv makes TestGroupCrashHelperProcess run a group member in
// this test binary as a separate process, which the parent then kills:
// the only honest way to crash without Close.
const crashHelperEnv = "KEEL_CRASH_HELPER_BROKERS"

// crashProtocolEnv names the group protocol the helper runs under.
const crashProtocolEnv = "KEEL_CRASH_HELPER_PROTOCOL"

// crashGroupEnv and crashSessionEnv, when set, name the helper's group
// and session timeout (defaults "crashy" and fastGroup's).
const (
	crashGroupEnv   = "KEEL_CRASH_HELPER_GROUP"
	crashSessionEnv = "KEEL_CRASH_HELPER_SESSION"
)

// TestGroupCrashHelperProcess is the member that crashes; it only runs when
// started by TestGroupMemberCrashWithoutClose.
func TestGroupCrashHelperProcess(t *testing.T) {
	brokers := os.Getenv(crashHelperEnv)
	if brokers == "" {
		t.Skip("helper process for TestGroupMemberCrashWithoutClose")
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format, args...)
		out.Flush()
		mu.Unlock()
	}
	// "joined" once a rebalance completed: the parent of
	// TestFaultMatrixChurnWithCrashes kills a child only after that (see
	// crashable.killJoined).
	copts := []keel.ClientOption{keel.SeedBrokers(strings.Split(brokers, ",")...), keel.WithHooks(joinedHook(func() { say("joined\n") }))}
	if lv := os.Getenv("KEEL_CHURN_LOGS"); lv != "" {
		// To the parent's log of TestFaultMatrixChurnWithCrashes.
		level := slog.LevelInfo
		if lv == "debug" {
			level = slog.LevelDebug
		}
		copts = append(copts, keel.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("child", os.Getpid())))
	}
	c, err := keel.NewClient(copts...)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	group := "crashy"
	if g := os.Getenv(crashGroupEnv); g != "" {
		group = g // TestFaultMatrixChurnWithCrashes
	}
	opts := protocolNamed(os.Getenv(crashProtocolEnv))
	if d, err := time.ParseDuration(os.Getenv(crashSessionEnv)); err == nil {
		opts = append(opts, keel.SessionTimeout(d), keel.RebalanceTimeout(max(5*time.Second, 2*d)))
	}
	g, err := keel.NewGroupConsumer(c, group, []string{"orders"}, fastGroup(opts...)...)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	g.Run(context.Background(), keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		time.Sleep(time.Millisecond)
		say("processed %s\n", m.Value)
		return nil
	}))
}

// joinedHook calls joined after every rebalance that completed.
type joinedHook func()

func (joinedHook) OnRebalanceStart(keel.RebalanceStart) {}
func (h joinedHook) OnRebalance(r keel.Rebalance) {
	if r.Err == nil {
		h()
	}
}

// A member that dies without Close: its partitions go to the others after
// the session timeout, and they resume from its last committed offsets.
// Records it processed after its last commit are processed again — the
// only duplicates allowed, and they are counted.
func TestGroupMemberCrashWithoutClose(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, proto []keel.GroupOption) {
		cl := groupCluster(t, 4)
		c := newClient(t, cl)
		p := newProducer(t, c)
		ctx := testCtx(t, 2*time.Minute)
		const n = 5000
		if failed := produceIDs(t, ctx, p, "orders", n, nil); len(failed) > 0 {
			t.Fatal(failed[0].Err)
		}

		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGroupCrashHelperProcess$", "-test.v=false")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+strings.Join(cl.Addrs(), ","), crashProtocolEnv+"="+protocolName(proto))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		seen := newProcessed()
		byCrashed := 0
		lines := bufio.NewScanner(stdout)
		for byCrashed < 1500 && lines.Scan() {
			if id, ok := strings.CutPrefix(lines.Text(), "processed "); ok {
				seen.add(&keel.Message{Value: []byte(id)})
				byCrashed++
			}
		}
		if byCrashed < 1500 {
			t.Fatalf("helper stopped after %d records", byCrashed)
		}
		time.Sleep(300 * time.Millisecond) // let an interval commit or two happen
		cmd.Process.Kill()                 // no Close, no LeaveGroup
		for lines.Scan() {                 // what it printed before dying
			if id, ok := strings.CutPrefix(lines.Text(), "processed "); ok {
				seen.add(&keel.Message{Value: []byte(id)})
				byCrashed++
			}
		}
		cmd.Wait()
		killed := time.Now()

		var firstAssign time.Time
		var once sync.Once
		var firstMu sync.Mutex
		first := map[int32]int64{}
		m := startMember(t, c, "crashy", func(ctx context.Context, msg *keel.Message) error {
			firstMu.Lock()
			if _, ok := first[msg.Partition]; !ok {
				first[msg.Partition] = msg.Offset
			}
			firstMu.Unlock()
			seen.add(msg)
			return nil
		},
			fastGroup(with(proto, keel.OnAssigned(func([]keel.TopicPartition) {
				once.Do(func() { firstMu.Lock(); firstAssign = time.Now(); firstMu.Unlock() })
			}))...)...)
		seen.waitAll(t, ctx, n)
		if len(m.g.Assigned()) != 4 {
			t.Fatalf("survivor has %v", m.g.Assigned())
		}
		firstMu.Lock()
		waited := firstAssign.Sub(killed)
		firstMu.Unlock()
		missing, dup := seen.report(n)
		t.Logf("crashed member processed %d records; survivor got the partitions %v after the kill (session timeout 6s); reprocessed after the crash: %d", byCrashed, waited.Round(time.Millisecond), dup)
		if missing != 0 {
			t.Fatalf("%d records never processed", missing)
		}
		if waited < 4*time.Second {
			t.Errorf("partitions were reassigned %v after the crash, before the session timeout could expire", waited)
		}
		// The survivor resumed from the last commit, not from the start: at
		// most the records the crashed member processed in its last commit
		// interval (plus the 300ms we waited) come twice.
		if dup >= byCrashed {
			t.Fatalf("%d of %d records processed again: the survivor did not resume from committed offsets", dup, byCrashed)
		}
	})
}
