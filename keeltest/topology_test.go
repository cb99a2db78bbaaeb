package keeltest

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// partitionLeader returns the leader and epoch Metadata reports.
func partitionLeader(t *testing.T, addr, topic string, partition int32) (leader, epoch int32) {
	t.Helper()
	for _, tp := range metadata(t, addr, topic).Topics {
		for _, p := range tp.Partitions {
			if p.Partition == partition {
				return p.Leader, p.LeaderEpoch
			}
		}
	}
	t.Fatalf("%s/%d not in metadata", topic, partition)
	return -1, -1
}

// TestMoveLeader checks MoveLeader changes the leader and epoch Metadata
// reports, that a client follows, and that bad targets are errors.
func TestMoveLeader(t *testing.T) {
	c := NewCluster(t, Topic("t", 1))
	cl := newClient(t, c)
	produce(t, cl, "t")

	old := c.Leader("t", 0)
	_, oldEpoch := partitionLeader(t, c.Addr(), "t", 0)
	to := (old + 1) % 3
	if err := c.MoveLeader("t", 0, to); err != nil {
		t.Fatal(err)
	}
	if got := c.Leader("t", 0); got != to {
		t.Errorf("Leader() = %d, want %d", got, to)
	}
	leader, epoch := partitionLeader(t, c.Addr(), "t", 0)
	if leader != to || epoch <= oldEpoch {
		t.Errorf("metadata leader %d epoch %d, want %d and > %d", leader, epoch, to, oldEpoch)
	}
	produce(t, cl, "t") // the client finds the new leader
	if hw := c.HighWatermark("t", 0); hw != 2 {
		t.Errorf("high watermark %d, want 2", hw)
	}

	if err := c.MoveLeader("t", 0, 42); err == nil {
		t.Error("MoveLeader to a missing node succeeded")
	}
	if err := c.MoveLeader("missing", 0, 0); err == nil {
		t.Error("MoveLeader of a missing topic succeeded")
	}
	if l := c.Leader("missing", 0); l != -1 {
		t.Errorf("Leader of a missing topic = %d", l)
	}
}

// TestShuffleLeaders checks every partition's epoch is bumped.
func TestShuffleLeaders(t *testing.T) {
	c := NewCluster(t, Topic("t", 6))
	before := make([]int32, 6)
	for p := range int32(6) {
		before[p] = c.PartitionInfo("t", p).Epoch
	}
	c.ShuffleLeaders()
	for p := range int32(6) {
		pi := c.PartitionInfo("t", p)
		if pi.Epoch <= before[p] {
			t.Errorf("partition %d epoch %d, was %d", p, pi.Epoch, before[p])
		}
		if !slices.Contains(c.NodeIDs(), pi.Leader) {
			t.Errorf("partition %d led by unknown node %d", p, pi.Leader)
		}
	}
}

// TestAddRemoveBroker checks brokers join and leave Metadata, that a
// removed broker refuses new connections and closes old ones on their next
// request, that IDs are not reused, and that the last broker stays.
func TestAddRemoveBroker(t *testing.T) {
	c := NewCluster(t, Topic("t", 8))

	node, addr, err := c.AddBroker()
	if err != nil {
		t.Fatal(err)
	}
	if node != 3 || c.AddrOf(3) != addr || len(c.Addrs()) != 4 || c.Addrs()[3] != addr {
		t.Fatalf("AddBroker() = %d, %s; Addrs() = %v", node, addr, c.Addrs())
	}
	resp := metadata(t, addr) // the new broker answers
	if len(resp.Brokers) != 4 {
		t.Errorf("metadata lists %d brokers, want 4", len(resp.Brokers))
	}

	victim := int32(1)
	victimAddr := c.AddrOf(victim)
	old := dialRaw(t, victimAddr)
	av := kmsg.NewPtrApiVersionsRequest()
	old.mustDo(av) // open and working before the removal

	if err := c.RemoveBroker(victim); err != nil {
		t.Fatal(err)
	}
	if ids := c.NodeIDs(); !slices.Equal(ids, []int32{0, 2, 3}) {
		t.Errorf("NodeIDs() = %v", ids)
	}
	if slices.Contains(c.Addrs(), victimAddr) {
		t.Error("Addrs() still lists the removed broker")
	}
	resp = metadata(t, c.Addr())
	for _, b := range resp.Brokers {
		if b.NodeID == victim {
			t.Error("metadata still lists the removed broker")
		}
	}
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if p.Leader == victim {
				t.Errorf("partition %d still led by the removed broker", p.Partition)
			}
		}
	}
	if conn, err := net.DialTimeout("tcp", victimAddr, time.Second); err == nil {
		conn.Close()
		t.Error("removed broker still accepts connections")
	}
	if _, err := old.do(av); !isClosed(err) {
		t.Errorf("old connection to the removed broker: %v, want closed", err)
	}
	// Other brokers are unaffected by the removed-broker control.
	if _, err := dialRaw(t, c.AddrOf(2)).do(av); err != nil {
		t.Errorf("node 2: %v", err)
	}

	if err := c.RemoveBroker(victim); err == nil {
		t.Error("removing a removed broker succeeded")
	}
	// The highest ID is not reused.
	if err := c.RemoveBroker(3); err != nil {
		t.Fatal(err)
	}
	if node, _, err := c.AddBroker(); err != nil || node != 4 {
		t.Errorf("AddBroker() after removing 3 = %d, %v; want 4", node, err)
	}
	if err := c.RemoveBroker(0); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveBroker(2); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveBroker(4); err == nil {
		t.Error("removing the last broker succeeded")
	}
	if _, err := dialRaw(t, c.Addr()).do(metadataReq()); err != nil {
		t.Errorf("last broker: %v", err)
	}
}

// TestCreateDeleteTopic checks the admin topic helpers.
func TestCreateDeleteTopic(t *testing.T) {
	c := NewCluster(t, DefaultPartitions(2))
	if err := c.CreateTopic("n", 4); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic("d", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopicWithConfigs("compacted", 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	if v := c.Kfake().TopicInfo("compacted").Configs["cleanup.policy"]; v == nil || *v != "compact" {
		t.Errorf("cleanup.policy = %v", v)
	}
	resp := metadata(t, c.Addr(), "n", "d")
	if len(resp.Topics[0].Partitions) != 4 || len(resp.Topics[1].Partitions) != 2 {
		t.Errorf("partitions %d and %d, want 4 and 2", len(resp.Topics[0].Partitions), len(resp.Topics[1].Partitions))
	}
	if err := c.CreateTopic("n", 1); err == nil {
		t.Error("creating an existing topic succeeded")
	}
	if err := c.CreateTopic("neg", -1); err == nil {
		t.Error("negative partitions accepted")
	}
	if err := c.DeleteTopic("n"); err != nil {
		t.Fatal(err)
	}
	if c.Partitions("n") != 0 || c.HighWatermark("n", 0) != -1 {
		t.Error("deleted topic still there")
	}
	if err := c.DeleteTopic("n"); err == nil {
		t.Error("deleting a missing topic succeeded")
	}
}

// TestCoordinatorFor checks CoordinatorFor agrees with FindCoordinator,
// also after MoveCoordinators.
func TestCoordinatorFor(t *testing.T) {
	c := NewCluster(t)
	find := func(group string) int32 {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.SetVersion(2)
		req.CoordinatorKey = group
		resp := dialRaw(t, c.Addrs()[2]).mustDo(req).(*kmsg.FindCoordinatorResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("FindCoordinator: %d", resp.ErrorCode)
		}
		return resp.NodeID
	}
	for range 3 {
		for _, g := range []string{"a", "b", "c", "d"} {
			if got, want := find(g), c.CoordinatorFor(g); got != want {
				t.Errorf("group %s: FindCoordinator %d, CoordinatorFor %d", g, got, want)
			}
		}
		c.MoveCoordinators()
	}
}
