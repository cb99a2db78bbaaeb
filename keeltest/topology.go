package keeltest

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errRemovedNode is what a removed broker's leftover connections fail with.
var errRemovedNode = errors.New("keeltest: broker removed")

// MoveLeader makes node the leader of the partition and bumps its leader
// epoch, as a leader election would. Clients learn of it through
// NOT_LEADER_OR_FOLLOWER from the old leader and a Metadata refresh.
func (c *Cluster) MoveLeader(topic string, partition, node int32) error {
	var err error
	if lerr := c.withLoop(func() { err = c.kc.MoveTopicPartition(topic, partition, node) }); lerr != nil {
		return lerr
	}
	if err != nil {
		return fmt.Errorf("keeltest: MoveLeader(%q, %d, %d): %w", topic, partition, node, err)
	}
	return nil
}

// Leader returns the node ID leading the partition, or -1 if the partition
// does not exist or the cluster is closed.
func (c *Cluster) Leader(topic string, partition int32) int32 {
	n := int32(-1)
	_ = c.withLoop(func() { n = c.kc.LeaderFor(topic, partition) })
	return n
}

// ShuffleLeaders gives every partition a randomly chosen leader and bumps
// every leader epoch, as after a rolling restart.
func (c *Cluster) ShuffleLeaders() {
	_ = c.withLoop(c.kc.ShufflePartitionLeaders)
}

// CoordinatorFor returns the node ID coordinating group (or the
// transactional ID of that name), or -1 if the cluster is closed.
func (c *Cluster) CoordinatorFor(group string) int32 {
	n := int32(-1)
	_ = c.withLoop(func() { n = c.kc.CoordinatorFor(group) })
	return n
}

// MoveCoordinators rehashes every group and transactional ID to a
// (possibly) different coordinator. Clients learn of it through
// NOT_COORDINATOR and a new FindCoordinator.
func (c *Cluster) MoveCoordinators() {
	_ = c.withLoop(c.kc.RehashCoordinators)
}

// AddBroker starts a new broker on a random port and returns its node ID
// (one above the highest ID ever used) and address. Like kfake, it then
// gives every partition a random leader among all brokers, so leaders move,
// and coordinators, hashed over the brokers, may move too.
func (c *Cluster) AddBroker() (node int32, addr string, err error) {
	c.mu.Lock()
	want := c.maxNode + 1
	c.mu.Unlock()
	var port int
	if lerr := c.withLoop(func() { node, port, err = c.kc.AddNode(want, 0) }); lerr != nil {
		return -1, "", lerr
	}
	if err != nil {
		return -1, "", fmt.Errorf("keeltest: AddBroker: %w", err)
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c.mu.Lock()
	c.nodes[node] = addr
	c.maxNode = max(c.maxNode, node)
	c.mu.Unlock()
	return node, addr, nil
}

// RemoveBroker stops node: its listener closes, it leaves Metadata, every
// partition gets a random leader among the remaining brokers (so leaders
// move even off healthy brokers), and coordinators are rehashed over the
// remaining brokers. A connection still open to the removed broker is
// closed by the broker when it next carries a request; idle ones stay open
// until then. The last broker cannot be removed.
func (c *Cluster) RemoveBroker(node int32) error {
	c.mu.Lock()
	_, ok := c.nodes[node]
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("keeltest: RemoveBroker(%d): no such broker", node)
	}
	var err error
	if lerr := c.withLoop(func() { err = c.kc.RemoveNode(node) }); lerr != nil {
		return lerr
	}
	if err != nil {
		return fmt.Errorf("keeltest: RemoveBroker(%d): %w", node, err)
	}
	c.mu.Lock()
	delete(c.nodes, node)
	c.removed[node] = true
	install := !c.deadCtl
	c.deadCtl = true
	c.mu.Unlock()
	if install {
		c.kc.Control(c.closeRemoved)
	}
	return nil
}

// closeRemoved is a control on every request that closes connections to
// removed brokers.
func (c *Cluster) closeRemoved(kmsg.Request) (kmsg.Response, error, bool) {
	c.kc.KeepControl()
	node := c.kc.CurrentNode()
	c.mu.Lock()
	dead := c.removed[node]
	c.mu.Unlock()
	if dead {
		return nil, errRemovedNode, true
	}
	return nil, nil, false
}

// CreateTopic creates a topic with the given number of partitions (0 for
// the default, see [DefaultPartitions]). It bypasses faults and controls.
func (c *Cluster) CreateTopic(name string, partitions int32) error {
	return c.CreateTopicWithConfigs(name, partitions, nil)
}

// CreateTopicWithConfigs is [Cluster.CreateTopic] with topic configs such
// as cleanup.policy or retention.ms.
func (c *Cluster) CreateTopicWithConfigs(name string, partitions int32, configs map[string]string) error {
	if partitions < 0 {
		return fmt.Errorf("keeltest: CreateTopic(%q, %d): negative partition count", name, partitions)
	}
	var err error
	if lerr := c.withLoop(func() { err = c.kc.CreateTopic(name, partitions, configs) }); lerr != nil {
		return lerr
	}
	if err != nil {
		return fmt.Errorf("keeltest: CreateTopic(%q): %w", name, err)
	}
	return nil
}

// DeleteTopic deletes a topic and its committed offsets. It bypasses faults
// and controls.
func (c *Cluster) DeleteTopic(name string) error {
	var err error
	if lerr := c.withLoop(func() { err = c.kc.DeleteTopic(name) }); lerr != nil {
		return lerr
	}
	if err != nil {
		return fmt.Errorf("keeltest: DeleteTopic(%q): %w", name, err)
	}
	return nil
}

// PartitionInfo returns a snapshot of the partition (leader, epoch, high
// watermark, log start offset, last stable offset, size), or nil if it does
// not exist or the cluster is closed.
func (c *Cluster) PartitionInfo(topic string, partition int32) *kfake.PartitionInfo {
	var pi *kfake.PartitionInfo
	_ = c.withLoop(func() { pi = c.kc.PartitionInfo(topic, partition) })
	return pi
}

// HighWatermark returns the partition's high watermark (the offset the next
// record will get), or -1 if it does not exist or the cluster is closed.
func (c *Cluster) HighWatermark(topic string, partition int32) int64 {
	if pi := c.PartitionInfo(topic, partition); pi != nil {
		return pi.HighWatermark
	}
	return -1
}

// Partitions returns the number of partitions of topic, or 0 if it does not
// exist or the cluster is closed.
func (c *Cluster) Partitions(topic string) int {
	var n int
	_ = c.withLoop(func() { n = len(c.kc.PartitionInfos(topic)) })
	return n
}
