package integration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

func newAdmin(t *testing.T, c *keel.Client) *admin.Admin {
	t.Helper()
	a, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// adminProduce writes n records with values "0".."n-1" to one partition and
// returns their offsets' timestamps (first record at base, one second
// apart).
func adminProduce(t *testing.T, ctx context.Context, c *keel.Client, topic string, partition int32, n int, base time.Time) {
	t.Helper()
	p, err := keel.NewProducer(c, keel.ManualPartitioner())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for i := range n {
		d, err := p.Send(ctx, &keel.Message{
			Topic: topic, Partition: partition,
			Value:     fmt.Appendf(nil, "%d", i),
			Timestamp: base.Add(time.Duration(i) * time.Second),
		})
		if err != nil {
			t.Fatalf("producing to %s[%d]: %v (outcome %v)", topic, partition, err, d.Outcome())
		}
	}
}

func TestAdminTopicsLifecycle(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3))
	ctx := testCtx(t, time.Minute)
	c := newClient(t, cl)
	a := newAdmin(t, c)

	err := a.CreateTopics(ctx, admin.TopicSpec{
		Name: "events", Partitions: 3, ReplicationFactor: 2,
		Configs: map[string]string{"retention.ms": "60000", "cleanup.policy": "compact"},
	}, admin.TopicSpec{Name: "defaults", Partitions: -1, ReplicationFactor: -1})
	if err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}

	descs, err := a.DescribeTopics(ctx, "events")
	if err != nil {
		t.Fatalf("DescribeTopics: %v", err)
	}
	if len(descs) != 1 || descs[0].Name != "events" || len(descs[0].Partitions) != 3 {
		t.Fatalf("DescribeTopics(events) = %+v, want one topic with 3 partitions", descs)
	}
	for i, p := range descs[0].Partitions {
		if p.Partition != int32(i) || p.Leader < 0 || len(p.Replicas) != 2 || !slices.Contains(p.Replicas, p.Leader) {
			t.Errorf("partition %d: %+v: want id %d, a leader among 2 replicas", i, p, i)
		}
	}
	if descs[0].ID == ([16]byte{}) {
		t.Errorf("topic id is zero")
	}
	set := map[string]string{}
	for _, e := range descs[0].Configs {
		if !e.Default {
			set[e.Name] = e.Value
			if e.Source != "DYNAMIC_TOPIC_CONFIG" {
				t.Errorf("config %s set on the topic has source %q", e.Name, e.Source)
			}
		}
	}
	if want := map[string]string{"retention.ms": "60000", "cleanup.policy": "compact"}; !maps.Equal(set, want) {
		t.Errorf("non-default configs = %v, want %v", set, want)
	}
	if len(descs[0].Configs) <= len(set) {
		t.Errorf("describe returned only %d configs; want the defaults too", len(descs[0].Configs))
	}

	// CreateTopics waited for leaders: producing at once must work.
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	adminProduce(t, dctx, c, "defaults", 0, 1, time.Now())
	cancel()

	// Metadata that shows a new topic without a leader for a while:
	// CreateTopics returns only after it has them.
	h := cl.FailRequests(kmsg.Metadata, 5, 3, keeltest.OnTopic("later"))
	if err := a.CreateTopics(ctx, admin.TopicSpec{Name: "later", Partitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatalf("CreateTopics(later): %v", err)
	}
	if h.Hits() != 3 {
		t.Errorf("CreateTopics returned after %d of 3 leaderless metadata answers", h.Hits())
	}

	err = a.CreateTopics(ctx, admin.TopicSpec{Name: "events", Partitions: 1, ReplicationFactor: 1})
	if !errors.Is(err, admin.ErrTopicExists) || !strings.Contains(err.Error(), `"events"`) {
		t.Errorf("creating events again: %v; want ErrTopicExists naming the topic", err)
	}
	err = a.CreateTopics(ctx, admin.TopicSpec{Name: "toowide", Partitions: 1, ReplicationFactor: 5})
	if !errors.Is(err, admin.ErrInvalidReplicationFactor) || !strings.Contains(err.Error(), "3 brokers") {
		t.Errorf("replication factor 5 on 3 brokers: %v; want ErrInvalidReplicationFactor saying there are 3 brokers", err)
	}
	// One good and one bad topic: the good one is created, the error
	// names the bad one only.
	err = a.CreateTopics(ctx, admin.TopicSpec{Name: "fresh", Partitions: 2, ReplicationFactor: 1},
		admin.TopicSpec{Name: "events", Partitions: 1, ReplicationFactor: 1})
	if !errors.Is(err, admin.ErrTopicExists) || strings.Contains(err.Error(), "fresh") {
		t.Errorf("mixed create: %v", err)
	}

	list, err := a.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, l := range list {
		got[l.Name] = l.Partitions
	}
	if got["events"] != 3 || got["fresh"] != 2 || got["defaults"] < 1 || got["toowide"] != 0 {
		t.Errorf("ListTopics = %+v", list)
	}
	if !slices.IsSortedFunc(list, func(a, b admin.TopicListing) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("ListTopics not sorted: %+v", list)
	}

	if err := a.DeleteTopics(ctx, "events"); err != nil {
		t.Fatalf("DeleteTopics: %v", err)
	}
	if _, err := a.DescribeTopics(ctx, "events"); !errors.Is(err, keel.ErrUnknownTopic) || !strings.Contains(err.Error(), `"events"`) {
		t.Errorf("describing a deleted topic: %v; want ErrUnknownTopic naming it", err)
	}
	if err := a.DeleteTopics(ctx, "events"); !errors.Is(err, keel.ErrUnknownTopic) {
		t.Errorf("deleting a deleted topic: %v; want ErrUnknownTopic", err)
	}
	list, _ = a.ListTopics(ctx)
	if slices.ContainsFunc(list, func(l admin.TopicListing) bool { return l.Name == "events" }) {
		t.Errorf("deleted topic still listed: %+v", list)
	}
	// The name is free again, and the new topic is the new one.
	if err := a.CreateTopics(ctx, admin.TopicSpec{Name: "events", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatalf("re-creating events: %v", err)
	}
	if descs, err = a.DescribeTopics(ctx, "events"); err != nil || len(descs[0].Partitions) != 1 {
		t.Fatalf("re-created events: %+v, %v", descs, err)
	}
}

func TestAdminListOffsets(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(2), keeltest.Topic("clicks", 2))
	ctx := testCtx(t, time.Minute)
	c := newClient(t, cl)
	a := newAdmin(t, c)

	base := time.UnixMilli(1_700_000_000_000)
	adminProduce(t, ctx, c, "clicks", 0, 10, base)
	adminProduce(t, ctx, c, "clicks", 1, 4, base)

	p0 := keel.TopicPartition{Topic: "clicks", Partition: 0}
	p1 := keel.TopicPartition{Topic: "clicks", Partition: 1}
	starts, err := a.StartOffsets(ctx, "clicks")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[keel.TopicPartition]int64{p0: 0, p1: 0}; !maps.Equal(starts, want) {
		t.Errorf("StartOffsets = %v, want %v", starts, want)
	}
	ends, err := a.EndOffsets(ctx, "clicks")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[keel.TopicPartition]int64{p0: cl.HighWatermark("clicks", 0), p1: cl.HighWatermark("clicks", 1)}; !maps.Equal(ends, want) || ends[p0] != 10 {
		t.Errorf("EndOffsets = %v, want %v (10 and 4)", ends, want)
	}

	at, err := a.ListOffsets(ctx, admin.AtTime(base.Add(3*time.Second)), "clicks")
	if err != nil {
		t.Fatal(err)
	}
	if at[p0].Offset != 3 || !at[p0].Timestamp.Equal(base.Add(3*time.Second)) || at[p1].Offset != 3 {
		t.Errorf("AtTime(base+3s) = %+v", at)
	}
	at, err = a.ListOffsets(ctx, admin.AtTime(base.Add(5*time.Second)), "clicks")
	if err != nil {
		t.Fatal(err)
	}
	if at[p0].Offset != 5 || at[p1].Offset != -1 {
		t.Errorf("AtTime(base+5s) = %+v; want 5 on partition 0 and -1 (no such record) on partition 1", at)
	}

	// A leader that moved answers NOT_LEADER: refresh and ask again.
	h := cl.FailRequests(kmsg.ListOffsets, 6, 2, keeltest.OnTopic("clicks"))
	ends, err = a.EndOffsets(ctx, "clicks")
	if err != nil || ends[p0] != 10 || ends[p1] != 4 {
		t.Errorf("EndOffsets after NOT_LEADER: %v, %v", ends, err)
	}
	if h.Hits() != 2 {
		t.Errorf("fault hit %d times, want 2", h.Hits())
	}

	// UNKNOWN_TOPIC_OR_PARTITION from a broker that has not caught up
	// with a topic the metadata has: looked up again, then asked again.
	h = cl.FailRequests(kmsg.ListOffsets, 3, 1, keeltest.OnTopic("clicks"))
	starts, err = a.StartOffsets(ctx, "clicks")
	if err != nil || starts[p0] != 0 || starts[p1] != 0 || h.Hits() != 1 {
		t.Errorf("StartOffsets after UNKNOWN_TOPIC_OR_PARTITION: %v, %v (fault hits %d)", starts, err, h.Hits())
	}

	_, err = a.EndOffsets(ctx, "nosuch")
	if !errors.Is(err, keel.ErrUnknownTopic) || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Errorf("EndOffsets(nosuch) = %v; want ErrUnknownTopic naming it", err)
	}
}

func TestAdminRetriesNotController(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3))
	ctx := testCtx(t, time.Minute)
	a := newAdmin(t, newClient(t, cl))

	h := cl.FailRequests(kmsg.CreateTopics, 41, 2)
	if err := a.CreateTopics(ctx, admin.TopicSpec{Name: "moved", Partitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatalf("CreateTopics with NOT_CONTROLLER twice: %v", err)
	}
	if h.Hits() != 2 || cl.Partitions("moved") != 2 {
		t.Errorf("fault hits %d (want 2), partitions %d (want 2)", h.Hits(), cl.Partitions("moved"))
	}
	h = cl.FailRequests(kmsg.DeleteTopics, 41, 1)
	if err := a.DeleteTopics(ctx, "moved"); err != nil {
		t.Fatalf("DeleteTopics with NOT_CONTROLLER: %v", err)
	}
	if h.Hits() != 1 || cl.Partitions("moved") != 0 {
		t.Errorf("fault hits %d (want 1), partitions %d after delete", h.Hits(), cl.Partitions("moved"))
	}

	// A create that timed out on the broker happened anyway: the retry's
	// TOPIC_ALREADY_EXISTS is our own topic, not a clash.
	h = cl.FailRequests(kmsg.CreateTopics, 7, 1)
	if err := a.CreateTopics(ctx, admin.TopicSpec{Name: "slow", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Errorf("CreateTopics after REQUEST_TIMED_OUT: %v", err)
	}
	if h.Hits() != 1 {
		t.Errorf("timeout fault hits %d", h.Hits())
	}

	// Retries are bounded by ctx.
	cl.FailRequests(kmsg.CreateTopics, 41, -1)
	sctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := a.CreateTopics(sctx, admin.TopicSpec{Name: "never", Partitions: 1, ReplicationFactor: 1})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "NOT_CONTROLLER") {
		t.Errorf("CreateTopics against a cluster that always says NOT_CONTROLLER: %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("CreateTopics took %v past its 1.5s ctx", time.Since(start))
	}
}

// groupsUntil describes group until ok accepts the description.
func groupsUntil(t *testing.T, ctx context.Context, a *admin.Admin, group string, ok func(admin.GroupDescription) bool) admin.GroupDescription {
	t.Helper()
	var last admin.GroupDescription
	var lastErr error
	for ctx.Err() == nil {
		ds, err := a.DescribeGroups(ctx, group)
		if err == nil && len(ds) == 1 {
			last = ds[0]
			if ok(last) {
				return last
			}
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group %s never reached the expected state; last %+v, %v", group, last, lastErr)
	return last
}

func TestAdminGroups(t *testing.T) {
	cl := groupCluster(t, 6)
	ctx := testCtx(t, 2*time.Minute)
	c := newClient(t, cl, keel.ClientID("admin-test"))
	a := newAdmin(t, c)

	handler := func(context.Context, *keel.Message) error { return nil }
	m1 := startMember(t, c, "billing", handler, fastGroup()...)
	m2 := startMember(t, c, "billing", handler, fastGroup()...)

	// Both members hold partitions, the six partitions are split between
	// them without overlap, and each member's set is what its consumer
	// says it has.
	d := groupsUntil(t, ctx, a, "billing", func(d admin.GroupDescription) bool {
		if d.State != "Stable" || len(d.Members) != 2 {
			return false
		}
		var all []keel.TopicPartition
		for _, m := range d.Members {
			if len(m.Assigned) == 0 {
				return false
			}
			all = append(all, m.Assigned...)
		}
		slices.SortFunc(all, func(a, b keel.TopicPartition) int { return int(a.Partition - b.Partition) })
		if len(all) != 6 {
			return false
		}
		for i, tp := range all {
			if tp != (keel.TopicPartition{Topic: "orders", Partition: int32(i)}) {
				return false
			}
		}
		mine := [][]keel.TopicPartition{sortedTPs(m1.g.Assigned()), sortedTPs(m2.g.Assigned())}
		return slices.ContainsFunc(mine, func(s []keel.TopicPartition) bool { return slices.Equal(s, d.Members[0].Assigned) }) &&
			slices.ContainsFunc(mine, func(s []keel.TopicPartition) bool { return slices.Equal(s, d.Members[1].Assigned) })
	})
	if d.ProtocolType != "consumer" || d.Protocol == "" || d.Coordinator != cl.CoordinatorFor("billing") {
		t.Errorf("description %+v: want consumer protocol, an assignor and coordinator %d", d, cl.CoordinatorFor("billing"))
	}
	for _, m := range d.Members {
		if m.MemberID == "" || m.ClientID != "admin-test" || m.Host == "" {
			t.Errorf("member %+v: want an id, client id admin-test and a host", m)
		}
	}

	// A broker still loading its groups answers COORDINATOR_LOAD_IN_PROGRESS:
	// asked again, not skipped.
	hl := cl.FailRequests(kmsg.ListGroups, 14, 1, keeltest.OnNodes(cl.CoordinatorFor("billing")))
	list, err := a.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hl.Hits() != 1 {
		t.Errorf("ListGroups fault hits %d, want 1", hl.Hits())
	}
	if !slices.Contains(list, admin.GroupListing{Group: "billing", ProtocolType: "consumer", State: "Stable"}) {
		t.Errorf("ListGroups = %+v; want billing, consumer, Stable", list)
	}

	err = a.DeleteGroups(ctx, "billing")
	if !errors.Is(err, admin.ErrGroupNotEmpty) || !strings.Contains(err.Error(), `"billing"`) {
		t.Errorf("deleting a group with members: %v; want ErrGroupNotEmpty naming it", err)
	}

	m1.stop(t)
	m2.stop(t)
	groupsUntil(t, ctx, a, "billing", func(d admin.GroupDescription) bool { return d.State == "Empty" })
	// The coordinator moving, or loading, on the delete is retried.
	h1 := cl.FailRequests(kmsg.DeleteGroups, 16, 1, keeltest.OnGroup("billing"))
	h2 := cl.FailRequests(kmsg.DeleteGroups, 14, 1, keeltest.OnGroup("billing"))
	if err := a.DeleteGroups(ctx, "billing"); err != nil {
		t.Fatalf("deleting the emptied group: %v", err)
	}
	if h1.Hits() != 1 || h2.Hits() != 1 {
		t.Errorf("DeleteGroups fault hits %d, %d; want 1 each", h1.Hits(), h2.Hits())
	}
	if _, err := a.DescribeGroups(ctx, "billing"); !errors.Is(err, admin.ErrGroupNotFound) || !strings.Contains(err.Error(), `"billing"`) {
		t.Errorf("describing a deleted group: %v; want ErrGroupNotFound naming it", err)
	}
	if err := a.DeleteGroups(ctx, "billing"); !errors.Is(err, admin.ErrGroupNotFound) {
		t.Errorf("deleting a deleted group: %v; want ErrGroupNotFound", err)
	}
	if _, err := a.Lag(ctx, "nobody"); !errors.Is(err, admin.ErrGroupNotFound) {
		t.Errorf("lag of a missing group: %v; want ErrGroupNotFound", err)
	}
}

func sortedTPs(tps []keel.TopicPartition) []keel.TopicPartition {
	tps = slices.Clone(tps)
	slices.SortFunc(tps, func(a, b keel.TopicPartition) int {
		return strings.Compare(a.Topic, b.Topic)*1000 + int(a.Partition-b.Partition)
	})
	return tps
}

func TestAdminLag(t *testing.T) {
	cl := groupCluster(t, 3)
	ctx := testCtx(t, 2*time.Minute)
	c := newClient(t, cl, keel.ClientID("lagger"))
	a := newAdmin(t, c)

	for p := range int32(3) {
		adminProduce(t, ctx, c, "orders", p, 10+int(p), time.Now())
	}
	// The handler processes offsets 0-5 of each partition and holds at 6
	// until released: the committed offsets settle at 6 while the member
	// still owns every partition.
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	m := startMember(t, c, "lagging", func(ctx context.Context, msg *keel.Message) error {
		if msg.Offset >= 6 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	}, fastGroup()...)

	want := map[keel.TopicPartition]int64{{Topic: "orders", Partition: 0}: 6, {Topic: "orders", Partition: 1}: 6, {Topic: "orders", Partition: 2}: 6}
	deadline := time.Now().Add(45 * time.Second)
	var got map[keel.TopicPartition]int64
	for time.Now().Before(deadline) {
		var err error
		got, err = a.GroupOffsets(ctx, "lagging")
		if err == nil && maps.Equal(got, want) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("committed offsets = %v, want %v", got, want)
	}

	rows, err := a.Lag(ctx, "lagging")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("Lag rows = %+v, want 3", rows)
	}
	var total int64
	for i, r := range rows {
		end := int64(10 + i)
		if r.Topic != "orders" || r.Partition != int32(i) || r.Committed != 6 || r.End != end || r.Lag != end-6 {
			t.Errorf("row %d = %+v; want orders[%d] committed 6, end %d, lag %d", i, r, i, end, end-6)
		}
		if r.MemberID == "" || r.ClientID != "lagger" {
			t.Errorf("row %d has no member: %+v", i, r)
		}
		total += r.Lag
	}
	if total != 4+5+6 {
		t.Errorf("total lag %d, want 15", total)
	}

	// NOT_COORDINATOR and a loading coordinator are retried.
	h1 := cl.FailRequests(kmsg.OffsetFetch, 16, 1, keeltest.OnGroup("lagging"))
	h2 := cl.FailRequests(kmsg.DescribeGroups, 14, 1, keeltest.OnGroup("lagging"))
	h3 := cl.FailRequests(kmsg.DescribeGroups, 16, 1, keeltest.OnGroup("lagging"))
	if rows, err = a.Lag(ctx, "lagging"); err != nil || len(rows) != 3 {
		t.Errorf("Lag with coordinator errors: %+v, %v", rows, err)
	}
	if h1.Hits() != 1 || h2.Hits() != 1 || h3.Hits() != 1 {
		t.Errorf("fault hits %d %d %d, want 1 each", h1.Hits(), h2.Hits(), h3.Hits())
	}

	// Released, the member catches up and commits the rest; once it has
	// left, the report shows no lag and no member.
	once.Do(func() { close(release) })
	want = map[keel.TopicPartition]int64{{Topic: "orders", Partition: 0}: 10, {Topic: "orders", Partition: 1}: 11, {Topic: "orders", Partition: 2}: 12}
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, err = a.GroupOffsets(ctx, "lagging"); err == nil && maps.Equal(got, want) {
			break
		}
	}
	if !maps.Equal(got, want) {
		t.Fatalf("committed offsets after release = %v, want %v", got, want)
	}
	m.stop(t)
	rows, err = a.Lag(ctx, "lagging")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if r.Lag != 0 || r.Committed != r.End || r.MemberID != "" {
			t.Errorf("after close, row %d = %+v; want no lag and no member", i, r)
		}
	}
}

// A controller that cannot apply broker defaults (CreateTopics before v4)
// is told so before anything is sent; explicit counts still work.
func TestAdminCreateDefaultsNeedNewController(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1))
	ctx := testCtx(t, time.Minute)
	a := newAdmin(t, newClient(t, cl, keel.MaxAPIVersion(int16(kmsg.CreateTopics), 3)))
	err := a.CreateTopics(ctx, admin.TopicSpec{Name: "old", Partitions: -1, ReplicationFactor: 1})
	if err == nil || !strings.Contains(err.Error(), "CreateTopics v3") || cl.Partitions("old") != 0 {
		t.Errorf("defaults with CreateTopics v3: %v (partitions %d)", err, cl.Partitions("old"))
	}
	if err := a.CreateTopics(ctx, admin.TopicSpec{Name: "old", Partitions: 2, ReplicationFactor: 1}); err != nil || cl.Partitions("old") != 2 {
		t.Errorf("explicit counts with CreateTopics v3: %v (partitions %d)", err, cl.Partitions("old"))
	}
}

func TestAdminListGroupsNamesFailingBroker(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3))
	ctx := testCtx(t, time.Minute)
	a := newAdmin(t, newClient(t, cl))
	bad := cl.NodeIDs()[1]
	// CLUSTER_AUTHORIZATION_FAILED (31) is not retriable: one broker
	// refusing must fail the listing, naming that broker.
	cl.FailRequests(kmsg.ListGroups, 31, -1, keeltest.OnNodes(bad))
	_, err := a.ListGroups(ctx)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("broker %d", bad)) || !strings.Contains(err.Error(), cl.AddrOf(bad)) {
		t.Fatalf("ListGroups with broker %d refusing: %v; want an error naming it", bad, err)
	}
}
