package keel

import (
	"context"
	"slices"
	"strings"

	"github.com/keel-go/keel/internal/errs"

	"github.com/keel-go/keel/internal/meta"
)

// Metadata is the cluster as a broker described it.
type Metadata struct {
	ClusterID  string
	Controller int32
	Brokers    []BrokerInfo // sorted by ID
	Topics     []TopicInfo  // sorted by name
}

// BrokerInfo describes one broker.
type BrokerInfo struct {
	ID   int32
	Addr string // "host:port"
	Rack string
}

// TopicInfo describes one topic.
type TopicInfo struct {
	Name       string
	Internal   bool
	Partitions []PartitionInfo // indexed by partition id
}

// PartitionInfo describes one partition.
type PartitionInfo struct {
	ID          int32
	Leader      int32 // -1 while no leader is known
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
}

// Metadata fetches the cluster's brokers and topics. With topic names it
// describes just those and fails with an error matching ErrUnknownTopic for
// one the cluster does not have; with none it describes every topic. An
// illegal topic name is refused (ErrInvalidTopic) before anything is sent,
// so a lookup never auto-creates it.
func (c *Client) Metadata(ctx context.Context, topics ...string) (*Metadata, error) {
	if ctx == nil {
		return nil, errs.NilContext("Client.Metadata")
	}
	var snap *meta.Snapshot
	if len(topics) == 0 {
		release := c.meta.WantAllTopics()
		s, err := c.meta.Refresh(ctx)
		release()
		if err != nil {
			return nil, err
		}
		snap = s
	} else {
		for _, t := range topics {
			if err := ValidateTopicName(t); err != nil {
				return nil, err // before a lookup could auto-create it
			}
		}
		for _, t := range topics {
			if _, err := c.meta.Topic(ctx, t); err != nil {
				return nil, err
			}
		}
		snap = c.meta.Current()
	}
	return publicMetadata(snap, topics), nil
}

func publicMetadata(s *meta.Snapshot, only []string) *Metadata {
	md := &Metadata{ClusterID: s.ClusterID, Controller: s.ControllerID}
	for _, b := range s.Brokers {
		md.Brokers = append(md.Brokers, BrokerInfo{ID: b.ID, Addr: b.Addr(), Rack: b.Rack})
	}
	slices.SortFunc(md.Brokers, func(a, b BrokerInfo) int { return int(a.ID) - int(b.ID) })
	for name, t := range s.Topics {
		if len(only) > 0 && !slices.Contains(only, name) {
			continue
		}
		ti := TopicInfo{Name: name, Internal: t.Internal}
		for _, p := range t.Partitions {
			ti.Partitions = append(ti.Partitions, PartitionInfo{
				ID: p.ID, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: slices.Clone(p.Replicas), ISR: slices.Clone(p.ISR),
			})
		}
		md.Topics = append(md.Topics, ti)
	}
	slices.SortFunc(md.Topics, func(a, b TopicInfo) int { return strings.Compare(a.Name, b.Name) })
	return md
}
