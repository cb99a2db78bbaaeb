package integration

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// What only the consumer protocol (KIP-848) has: member epochs, fencing,
// the broker's regex, static leave with epoch -2, the classic group in
// the way. The scenarios both protocols share are the group tests run
// under forEachProtocol.

// captureJoiner records the member id of the first member that joins
// (epoch 0) after it is installed.
func captureJoiner(cl *keeltest.Cluster) *atomic.Value {
	var id atomic.Value
	cl.Control(kmsg.ConsumerGroupHeartbeat, func(r kmsg.Request) (kmsg.Response, error, bool) {
		req := r.(*kmsg.ConsumerGroupHeartbeatRequest)
		if req.MemberEpoch == 0 && id.Load() == nil {
			id.Store(req.MemberID)
			cl.DropControl()
			return nil, nil, false
		}
		cl.KeepControl()
		return nil, nil, false
	})
	return &id
}

// A member that stops heartbeating (and committing: a paused process)
// for longer than the session timeout is fenced by the coordinator: its
// partitions go to the other member, and when it comes back the
// coordinator's answer (UNKNOWN_MEMBER_ID) makes it report them lost
// (OnLost, no commit), rejoin with epoch 0, get partitions again and
// process. No record is lost; the only duplicates are what it processed
// after its last commit.
func TestConsumerGroupFencedMemberRejoinsNoLoss(t *testing.T) {
	cl := groupCluster(t, 6)
	ctx := testCtx(t, 2*time.Minute)
	const n = 12_000
	seen := newProcessed()
	var victimLost atomic.Int32
	var afterLost atomic.Int64
	victimH := func(ctx context.Context, m *keel.Message) error {
		seen.add(m)
		if victimLost.Load() > 0 {
			afterLost.Add(1)
		}
		return nil
	}
	h := func(ctx context.Context, m *keel.Message) error { seen.add(m); return nil }

	joiner := captureJoiner(cl)
	victim := startMember(t, newClient(t, cl), "fenced", victimH, fastGroup(with(consumerProtocol.opts,
		keel.OnLost(func([]keel.TopicPartition) { victimLost.Add(1) }))...)...)
	waitFor(t, ctx, "the first member's partitions", func() bool { return len(victim.g.Assigned()) == 6 })
	victimID, _ := joiner.Load().(string)
	if victimID == "" {
		t.Fatal("did not see the member join")
	}
	survivor := startMember(t, newClient(t, cl), "fenced", h, fastGroup(consumerProtocol.opts...)...)
	waitFor(t, ctx, "a 3/3 split", func() bool { return len(survivor.g.Assigned()) == 3 && len(victim.g.Assigned()) == 3 })

	p := newProducer(t, newClient(t, cl))
	produced := make(chan []keel.Delivery, 1)
	go func() { produced <- produceIDsThen(t, ctx, p, "orders", n, nil, 20*time.Second, func() {}) }()

	// Silence the victim for 10s (session timeout 6s): its heartbeats
	// and commits get no answer (the connection is closed).
	time.Sleep(2 * time.Second)
	silentUntil := time.Now().Add(10 * time.Second)
	silence := func(memberID string) (kmsg.Response, error, bool) {
		if time.Now().After(silentUntil) {
			cl.DropControl()
			return nil, nil, false
		}
		cl.KeepControl()
		if memberID != victimID {
			return nil, nil, false
		}
		return nil, errors.New("silenced"), true
	}
	cl.Control(kmsg.ConsumerGroupHeartbeat, func(r kmsg.Request) (kmsg.Response, error, bool) {
		return silence(r.(*kmsg.ConsumerGroupHeartbeatRequest).MemberID)
	})
	cl.Control(kmsg.OffsetCommit, func(r kmsg.Request) (kmsg.Response, error, bool) {
		return silence(r.(*kmsg.OffsetCommitRequest).MemberID)
	})

	waitFor(t, ctx, "the survivor to take over", func() bool { return len(survivor.g.Assigned()) == 6 })
	waitFor(t, ctx, "OnLost on the silenced member", func() bool { return victimLost.Load() > 0 })
	waitFor(t, ctx, "the fenced member to rejoin and get partitions", func() bool { return len(victim.g.Assigned()) > 0 })
	if failed := <-produced; len(failed) > 0 {
		t.Fatal(failed[0].Err)
	}
	seen.waitAll(t, ctx, n)
	waitFor(t, ctx, "the rejoined member to process", func() bool { return afterLost.Load() > 0 })
	missing, dup := seen.report(n)
	t.Logf("fenced member: OnLost %d time(s), processed %d records after rejoining; missing %d, processed again %d", victimLost.Load(), afterLost.Load(), missing, dup)
	if missing != 0 {
		t.Fatalf("%d records never processed", missing)
	}
}

// FENCED_MEMBER_EPOCH in a heartbeat answer: OnLost, then a rejoin with
// epoch 0 under the same member id, and the partitions come back.
func TestConsumerGroupFencedEpochAnswerRejoins(t *testing.T) {
	cl := groupCluster(t, 4)
	c := newClient(t, cl)
	ctx := testCtx(t, time.Minute)
	var lost, assigned atomic.Int32
	m := startMember(t, c, "epoch", func(context.Context, *keel.Message) error { return nil }, fastGroup(with(consumerProtocol.opts,
		keel.OnLost(func([]keel.TopicPartition) { lost.Add(1) }),
		keel.OnAssigned(func([]keel.TopicPartition) { assigned.Add(1) }))...)...)
	waitFor(t, ctx, "the partitions", func() bool { return len(m.g.Assigned()) == 4 })

	var ids []string
	var rejoinEpochs []int32
	var mu sync.Mutex
	cl.Control(kmsg.ConsumerGroupHeartbeat, func(r kmsg.Request) (kmsg.Response, error, bool) {
		req := r.(*kmsg.ConsumerGroupHeartbeatRequest)
		cl.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, req.MemberID)
		if len(rejoinEpochs) > 0 || len(ids) > 1 {
			rejoinEpochs = append(rejoinEpochs, req.MemberEpoch)
		}
		return nil, nil, false
	})
	cl.FailRequests(kmsg.ConsumerGroupHeartbeat, 110 /* FENCED_MEMBER_EPOCH */, 1, keeltest.OnGroup("epoch"))
	waitFor(t, ctx, "OnLost", func() bool { return lost.Load() == 1 })
	waitFor(t, ctx, "the partitions again", func() bool { return assigned.Load() >= 2 && len(m.g.Assigned()) == 4 })
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("member ids %q: a fenced member must rejoin under its own id", ids)
		}
	}
	if !containsEpoch(rejoinEpochs, 0) {
		t.Fatalf("after the fence the member sent epochs %v; want a join with 0", rejoinEpochs)
	}
}

func containsEpoch(es []int32, e int32) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}

// The broker evaluates the regex (SubscribedTopicRegex): a topic created
// later that matches is assigned without the member listing it.
func TestConsumerGroupRegexEvaluatedByBroker(t *testing.T) {
	cl := startCluster(t, keeltest.Topic("ev-a", 2), keeltest.Topic("other", 2), keeltest.BrokerConfigs(map[string]string{
		"group.consumer.heartbeat.interval.ms": "200",
	}))
	c := newClient(t, cl)
	ctx := testCtx(t, time.Minute)
	g, err := keel.NewGroupConsumer(c, "regex", nil, fastGroup(with(consumerProtocol.opts, keel.SubscribeRegex(regexp.MustCompile(`ev-.*`)))...)...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- g.Run(context.Background(), keel.HandlerFunc(func(context.Context, *keel.Message) error { return nil }))
	}()
	defer closeAndWaitRun(t, g.Close, done)
	waitFor(t, ctx, "ev-a's partitions", func() bool { return len(g.Assigned()) == 2 })
	if err := cl.CreateTopic("ev-b", 3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "ev-b's partitions too", func() bool { return len(g.Assigned()) == 5 })
	for _, tp := range g.Assigned() {
		if !strings.HasPrefix(tp.Topic, "ev-") {
			t.Fatalf("assigned %v, which the regex does not match", tp)
		}
	}
}

// A static member leaves with epoch -2: the coordinator keeps its
// partitions for it, and a restart with the same instance id gets them
// back, with no rebalance of the other member.
func TestConsumerGroupStaticMemberRestartKeepsPartitions(t *testing.T) {
	cl := groupCluster(t, 4)
	c := newClient(t, cl)
	ctx := testCtx(t, time.Minute)
	var leaveEpochs []int32
	var mu sync.Mutex
	cl.Control(kmsg.ConsumerGroupHeartbeat, func(r kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		if req := r.(*kmsg.ConsumerGroupHeartbeatRequest); req.MemberEpoch < 0 {
			mu.Lock()
			leaveEpochs = append(leaveEpochs, req.MemberEpoch)
			mu.Unlock()
		}
		return nil, nil, false
	})
	nop := func(context.Context, *keel.Message) error { return nil }
	var otherRevoked atomic.Int32
	other := startMember(t, c, "static", nop, fastGroup(with(consumerProtocol.opts, keel.InstanceID("other"),
		keel.OnRevoked(func([]keel.TopicPartition) { otherRevoked.Add(1) }))...)...)
	waitFor(t, ctx, "all partitions", func() bool { return len(other.g.Assigned()) == 4 })
	s1 := startMember(t, c, "static", nop, fastGroup(with(consumerProtocol.opts, keel.InstanceID("s"))...)...)
	waitFor(t, ctx, "a 2/2 split", func() bool { return len(s1.g.Assigned()) == 2 && len(other.g.Assigned()) == 2 })
	before := s1.g.Assigned()
	revokedBefore := otherRevoked.Load()
	s1.stop(t)
	s2 := startMember(t, c, "static", nop, fastGroup(with(consumerProtocol.opts, keel.InstanceID("s"))...)...)
	waitFor(t, ctx, "the restarted member's partitions", func() bool { return len(s2.g.Assigned()) == 2 })
	if got := s2.g.Assigned(); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("restarted static member got %v, had %v", got, before)
	}
	if len(other.g.Assigned()) != 2 || otherRevoked.Load() != revokedBefore {
		t.Fatalf("the other member was rebalanced: has %v, revoked %d times (was %d)", other.g.Assigned(), otherRevoked.Load(), revokedBefore)
	}
	mu.Lock()
	defer mu.Unlock()
	if !containsEpoch(leaveEpochs, -2) || containsEpoch(leaveEpochs, -1) {
		t.Fatalf("leave epochs %v; a static member leaves with -2", leaveEpochs)
	}
}

// A group in use by classic members cannot take a consumer-protocol
// member on a broker without online migration (kfake): Run fails with
// an error that says what to do, instead of retrying forever.
func TestConsumerGroupRefusedWhileClassicMembersActive(t *testing.T) {
	cl := groupCluster(t, 2)
	c := newClient(t, cl)
	ctx := testCtx(t, time.Minute)
	nop := func(context.Context, *keel.Message) error { return nil }
	classic := startMember(t, c, "mixed", nop, fastGroup()...)
	waitFor(t, ctx, "the classic member's partitions", func() bool { return len(classic.g.Assigned()) == 2 })
	g, err := keel.NewGroupConsumer(c, "mixed", []string{"orders"}, fastGroup(consumerProtocol.opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = g.Run(rctx, keel.HandlerFunc(nop))
	if err == nil || rctx.Err() != nil || !strings.Contains(err.Error(), "classic") || !strings.Contains(err.Error(), "stop the classic members") {
		t.Fatalf("Run: %v; want an error naming the classic members and what to do", err)
	}
	t.Logf("Run: %v", err)
}

// admin.DescribeConsumerGroups: member epochs, assignments and target
// assignments of a settled group; a classic group is not one.
func TestAdminDescribeConsumerGroups(t *testing.T) {
	cl := groupCluster(t, 6)
	c := newClient(t, cl)
	ctx := testCtx(t, time.Minute)
	nop := func(context.Context, *keel.Message) error { return nil }
	a := startMember(t, c, "described", nop, fastGroup(with(consumerProtocol.opts, keel.ServerAssignor("uniform"), keel.InstanceID("a"))...)...)
	// Both members name the assignor: kfake takes the group's assignor
	// from whichever member joined last, so a member without one could
	// blank it depending on who joined first.
	b := startMember(t, c, "described", nop, fastGroup(with(consumerProtocol.opts, keel.ServerAssignor("uniform"))...)...)
	classic := startMember(t, c, "classic-one", nop, fastGroup()...)
	waitFor(t, ctx, "a 3/3 split", func() bool {
		return len(a.g.Assigned()) == 3 && len(b.g.Assigned()) == 3 && len(classic.g.Assigned()) == 6
	})
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	var d admin.ConsumerGroupDescription
	waitFor(t, ctx, "a Stable description", func() bool {
		ds, err := adm.DescribeConsumerGroups(ctx, "described")
		if err != nil {
			t.Fatal(err)
		}
		d = ds[0]
		return d.State == "Stable"
	})
	if d.Assignor != "uniform" || len(d.Members) != 2 || d.GroupEpoch <= 0 || d.AssignmentEpoch != d.GroupEpoch {
		t.Fatalf("description %+v", d)
	}
	owners := map[keel.TopicPartition]string{}
	static := 0
	for _, m := range d.Members {
		if m.MemberEpoch != d.GroupEpoch || fmt.Sprint(m.Assigned) != fmt.Sprint(m.Target) || len(m.Assigned) != 3 || fmt.Sprint(m.Subscribed) != "[orders]" {
			t.Fatalf("member %+v of a settled group (epoch %d)", m, d.GroupEpoch)
		}
		if m.InstanceID == "a" {
			static++
		}
		for _, tp := range m.Assigned {
			if owners[tp] != "" {
				t.Fatalf("%v owned by two members", tp)
			}
			owners[tp] = m.MemberID
		}
	}
	if len(owners) != 6 || static != 1 {
		t.Fatalf("owners %v, static members %d", owners, static)
	}
	if _, err := adm.DescribeConsumerGroups(ctx, "classic-one"); !errors.Is(err, admin.ErrGroupNotFound) {
		t.Fatalf("describing a classic group: %v; want ErrGroupNotFound", err)
	}
}
