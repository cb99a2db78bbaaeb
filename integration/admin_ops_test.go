package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// TestAdminDayTwoOperations: the admin calls added for issue 16, on a
// three-broker cluster (kfake answers CreatePartitions only on the
// controller, DeleteRecords only on the leader and a broker's configs
// only on that broker, so success shows each went to the right broker),
// with the typed errors their misuse gets.
func TestAdminDayTwoOperations(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topic("ops", 2), keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	ctx := testCtx(t, 2*time.Minute)
	c := newClient(t, cl)
	a := newAdmin(t, c)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	adminProduce(t, ctx, c, "ops", 0, 20, base)

	// Partitions: grow, and the refusals before anything is sent.
	if err := a.CreatePartitions(ctx, "ops", 5, false); err != nil {
		t.Fatal(err)
	}
	if n := cl.Partitions("ops"); n != 5 {
		t.Fatalf("ops has %d partitions, want 5", n)
	}
	if err := a.CreatePartitions(ctx, "ops", 3, false); !errors.Is(err, admin.ErrInvalidPartitions) {
		t.Errorf("shrinking: %v, want ErrInvalidPartitions", err)
	}
	if err := a.CreatePartitions(ctx, "nosuch", 3, false); !errors.Is(err, keel.ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
	if err := a.ValidateCreateTopics(ctx, admin.TopicSpec{Name: "ops", Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, admin.ErrTopicExists) {
		t.Errorf("validate an existing topic: %v", err)
	}
	if err := a.ValidateCreateTopics(ctx, admin.TopicSpec{Name: "new", Partitions: 1, ReplicationFactor: 1}); err != nil || cl.Partitions("new") != 0 {
		t.Errorf("validate-only create: %v; the topic has %d partitions, want none", err, cl.Partitions("new"))
	}

	// Records: the log start moves; past the end is refused.
	low, err := a.DeleteRecords(ctx, map[keel.TopicPartition]int64{{Topic: "ops", Partition: 0}: 7})
	if err != nil || low[keel.TopicPartition{Topic: "ops", Partition: 0}] != 7 {
		t.Fatalf("DeleteRecords: %v %v", low, err)
	}
	if starts, err := a.StartOffsets(ctx, "ops"); err != nil || starts[keel.TopicPartition{Topic: "ops", Partition: 0}] != 7 {
		t.Errorf("start offsets after DeleteRecords: %v %v", starts, err)
	}
	if _, err := a.DeleteRecords(ctx, map[keel.TopicPartition]int64{{Topic: "ops", Partition: 0}: 100}); !errors.Is(err, keel.ErrOffsetOutOfRange) {
		t.Errorf("past the end: %v", err)
	}

	// Configs of a topic and of one broker.
	if err := a.AlterConfigs(ctx, admin.ConfigResource{Type: admin.TopicConfigs, Name: "ops"}, false, admin.ConfigOp{Name: "retention.ms", Value: "1234567"}); err != nil {
		t.Fatal(err)
	}
	if err := a.AlterConfigs(ctx, admin.ConfigResource{Type: admin.TopicConfigs, Name: "ops"}, false, admin.ConfigOp{Name: "no.such.config", Value: "1"}); !errors.Is(err, admin.ErrInvalidConfig) {
		t.Errorf("unknown config: %v", err)
	}
	broker2 := admin.ConfigResource{Type: admin.BrokerConfigs, Name: "2"}
	if err := a.AlterConfigs(ctx, broker2, false, admin.ConfigOp{Name: "log.retention.ms", Value: "999000"}); err != nil {
		t.Fatalf("altering broker 2: %v", err)
	}
	entries, err := a.DescribeConfigs(ctx, broker2)
	found := false
	for _, e := range entries {
		if e.Name == "log.retention.ms" {
			found = e.Value == "999000" && e.Source == "DYNAMIC_BROKER_CONFIG" && !e.Default
		}
	}
	if err != nil || !found {
		t.Errorf("broker 2 configs: %v, log.retention.ms set: %v", err, found)
	}

	// Cluster and log dirs.
	d, err := a.DescribeCluster(ctx)
	if err != nil || len(d.Brokers) != 3 || d.Controller < 0 {
		t.Fatalf("DescribeCluster: %+v %v", d, err)
	}
	for _, b := range d.Brokers {
		if b.Err != nil || len(b.APIs) == 0 {
			t.Errorf("broker %d: %v, %d APIs", b.ID, b.Err, len(b.APIs))
		}
	}
	logs, err := a.LogDirs(ctx, "ops")
	if err != nil || len(logs[keel.TopicPartition{Topic: "ops", Partition: 0}]) == 0 {
		t.Errorf("LogDirs: %v %v", logs, err)
	}

	// Group offsets: plan, apply, refuse while a member is in the group.
	tp0 := keel.TopicPartition{Topic: "ops", Partition: 0}
	if err := a.AlterGroupOffsets(ctx, "g", map[keel.TopicPartition]int64{tp0: 15}); err != nil {
		t.Fatal(err)
	}
	plan, err := a.ResetOffsetsPlan(ctx, "g", admin.ResetScope{AllTopics: true}, admin.ShiftBy(-100))
	if err != nil || len(plan) != 1 || plan[0].Current != 15 || plan[0].New != 7 {
		t.Fatalf("shift-by -100 (clamped to the log start 7): %+v %v", plan, err)
	}
	plan, err = a.ResetOffsetsPlan(ctx, "g", admin.ResetScope{Topics: map[string][]int32{"ops": {0}}}, admin.ToTime(base.Add(10*time.Second)))
	if err != nil || len(plan) != 1 || plan[0].New != 10 {
		t.Errorf("to a time 10 s after the first record (records one second apart): %+v %v", plan, err)
	}
	if _, err := a.ResetOffsetsPlan(ctx, "fresh", admin.ResetScope{Topics: map[string][]int32{"ops": nil}}, admin.ShiftBy(1)); err == nil {
		t.Error("shifting a group without commits: no error")
	}
	g, err := keel.NewGroupPoller(c, "g", []string{"ops"})
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	for len(g.Assigned()) == 0 && pctx.Err() == nil {
		g.Poll(pctx) // joins; returns when records come or the wait ends
	}
	cancel()
	err = a.AlterGroupOffsets(ctx, "g", map[keel.TopicPartition]int64{tp0: 7})
	if !errors.Is(err, admin.ErrGroupNotEmpty) {
		t.Errorf("altering an active group's offsets: %v, want ErrGroupNotEmpty", err)
	}
	if err := a.DeleteGroupOffsets(ctx, "g", "ops"); !errors.Is(err, admin.ErrGroupSubscribed) {
		t.Errorf("deleting the offsets of a subscribed topic: %v, want ErrGroupSubscribed", err)
	}
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteGroupOffsets(ctx, "g", "ops", 0); err != nil {
		t.Errorf("deleting the offsets once the group is empty: %v", err)
	}
	if got, err := a.GroupOffsets(ctx, "g"); err != nil || len(got) != 0 {
		t.Errorf("offsets after DeleteGroupOffsets: %v %v", got, err)
	}

	// nil ctx everywhere is the typed error.
	var nilCtx context.Context
	for name, err := range map[string]error{
		"CreatePartitions":     a.CreatePartitions(nilCtx, "ops", 9, false),
		"ValidateCreateTopics": a.ValidateCreateTopics(nilCtx, admin.TopicSpec{Name: "x", Partitions: 1, ReplicationFactor: 1}),
		"AlterGroupOffsets":    a.AlterGroupOffsets(nilCtx, "g", map[keel.TopicPartition]int64{tp0: 1}),
		"DeleteGroupOffsets":   a.DeleteGroupOffsets(nilCtx, "g", "ops"),
		"AlterConfigs":         a.AlterConfigs(nilCtx, broker2, false, admin.ConfigOp{Name: "a", Value: "b"}),
		"CreateACLs":           a.CreateACLs(nilCtx, admin.ACL{}),
	} {
		if !errors.Is(err, keel.ErrNilContext) {
			t.Errorf("%s(nil ctx): %v", name, err)
		}
	}
	if _, err := a.DescribeCluster(nilCtx); !errors.Is(err, keel.ErrNilContext) {
		t.Errorf("DescribeCluster(nil ctx): %v", err)
	}
}

// TestAdminACLsTyped: an ACL principal that may not manage ACLs gets
// ErrClusterAuthorization; the superuser's ACLs are listed back exactly
// and deleted by filter.
func TestAdminACLsTyped(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.EnableACLs(),
		keeltest.Superuser(keeltest.SCRAMSHA512, "root", "pw"), keeltest.SASL(keeltest.PLAIN, "bob", "bobpw"))
	ctx := testCtx(t, time.Minute)
	root := newAdmin(t, newClient(t, cl, keel.SASLScramSHA512("root", "pw")))
	bob := newAdmin(t, newClient(t, cl, keel.SASLPlain("bob", "bobpw")))
	x := admin.ACL{Principal: "User:bob", Operation: "read", Permission: "allow", ResourceType: "group", ResourceName: "bobs", PatternType: "prefixed"}
	if err := root.CreateACLs(ctx, x); err != nil {
		t.Fatal(err)
	}
	got, err := root.ListACLs(ctx, admin.ACL{Principal: "User:bob"})
	want := admin.ACL{Principal: "User:bob", Host: "*", Operation: "READ", Permission: "ALLOW", ResourceType: "GROUP", ResourceName: "bobs", PatternType: "PREFIXED"}
	if err != nil || len(got) != 1 || got[0] != want {
		t.Fatalf("ListACLs: %+v %v, want [%+v]", got, err, want)
	}
	if err := bob.CreateACLs(ctx, x); !errors.Is(err, admin.ErrClusterAuthorization) {
		t.Errorf("bob creating an ACL: %v, want ErrClusterAuthorization", err)
	}
	if err := root.CreateACLs(ctx, admin.ACL{Principal: "User:bob", Operation: "any", Permission: "allow", ResourceType: "topic", ResourceName: "t"}); err == nil {
		t.Error("an ACL with operation ANY was accepted")
	}
	deleted, err := root.DeleteACLs(ctx, admin.ACL{Principal: "User:bob", ResourceType: "group", PatternType: "any"})
	if err != nil || len(deleted) != 1 {
		t.Fatalf("DeleteACLs: %+v %v", deleted, err)
	}
	if _, err := root.DeleteACLs(ctx, admin.ACL{}); err == nil {
		t.Error("DeleteACLs with an empty filter was accepted")
	}
}
