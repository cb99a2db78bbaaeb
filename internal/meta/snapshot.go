// Package meta keeps keel's view of the cluster: brokers, topics,
// partitions, leaders and leader epochs, refreshed on a maximum age and at
// once when a request reports stale metadata, and the group and transaction
// coordinators.
package meta

import (
	"net"
	"strconv"
	"time"
)

// Broker is one broker of the cluster.
type Broker struct {
	ID   int32
	Host string
	Port int32
	Rack string
}

// Addr is the broker's "host:port".
func (b Broker) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))) }

// Partition is what the cluster says of one partition.
type Partition struct {
	ID          int32
	Leader      int32 // -1 when the partition has no leader right now
	LeaderEpoch int32 // -1 when the broker does not report epochs
	Replicas    []int32
	ISR         []int32
	ErrCode     int16 // e.g. LEADER_NOT_AVAILABLE while a leader is elected
}

// Topic is what the cluster says of one topic.
type Topic struct {
	Name       string
	ID         [16]byte
	Internal   bool
	Partitions []Partition // indexed by partition id
	ErrCode    int16
}

// Snapshot is an immutable view of the cluster at one moment. Readers share
// it without locks; a refresh builds a new one.
type Snapshot struct {
	ClusterID    string
	ControllerID int32
	Brokers      map[int32]Broker
	Topics       map[string]*Topic
	At           time.Time
}

// Leader returns the leader of topic/partition and true, or false when the
// snapshot does not know one.
func (s *Snapshot) Leader(topic string, partition int32) (Broker, Partition, bool) {
	if s == nil {
		return Broker{}, Partition{}, false
	}
	t := s.Topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return Broker{}, Partition{}, false
	}
	p := t.Partitions[partition]
	b, ok := s.Brokers[p.Leader]
	return b, p, ok && p.Leader >= 0
}

// SetForTest replaces the current snapshot without asking a broker: for
// tests of the packages that read it (the fetcher's routing), which run
// without a cluster.
func (m *Meta) SetForTest(s *Snapshot) { m.snap.Store(s) }
