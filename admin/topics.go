package admin

import (
	"context"
	"slices"
	"strings"

	"github.com/keel-go/keel/internal/errs"
)

// TopicListing is one topic of ListTopics.
type TopicListing struct {
	Name       string
	Partitions int
	Internal   bool // e.g. __consumer_offsets
}

// TopicDescription is a topic as DescribeTopics found it.
type TopicDescription struct {
	Name       string
	ID         [16]byte // zero when the cluster predates topic ids (Kafka 2.8)
	Internal   bool
	Partitions []PartitionDescription // by partition id
	Configs    []ConfigEntry          // sorted by name
}

// PartitionDescription is one partition of a topic.
type PartitionDescription struct {
	Partition   int32
	Leader      int32 // -1 while the partition has no leader
	LeaderEpoch int32 // -1 when the broker does not report epochs
	Replicas    []int32
	ISR         []int32
}

// ListTopics lists the cluster's topics, sorted by name.
func (a *Admin) ListTopics(ctx context.Context) ([]TopicListing, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.ListTopics")
	}
	md, err := a.client.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]TopicListing, 0, len(md.Topics))
	for _, t := range md.Topics {
		out = append(out, TopicListing{Name: t.Name, Partitions: len(t.Partitions), Internal: t.Internal})
	}
	slices.SortFunc(out, func(a, b TopicListing) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DescribeTopics describes topics (every topic when names is empty): their
// partitions with leaders and replicas, from fresh metadata, and their
// configs. A topic the cluster does not have gives an error matching
// keel.ErrUnknownTopic. Descriptions come in the order of names, or sorted
// by name when describing every topic.
func (a *Admin) DescribeTopics(ctx context.Context, names ...string) ([]TopicDescription, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.DescribeTopics")
	}
	names = dedupe(names)
	if len(names) == 0 {
		// Every topic: while this is held, each refresh fetches them
		// all, so the lookups below come from the snapshot (one
		// request, not one per topic) and the client's interest set is
		// left as it was.
		release := a.meta.WantAllTopics()
		defer release()
		all, err := a.ListTopics(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range all {
			names = append(names, t.Name)
		}
		if len(names) == 0 {
			return nil, nil
		}
	} else if err := a.requireTopics(ctx, names); err != nil {
		return nil, err
	}
	// Topic registers each name with the cluster view and fails in
	// keel's words for one that does not exist; the refresh after it
	// makes sure leaders are current, not up to the metadata max age old.
	for _, n := range names {
		if _, err := a.meta.Topic(ctx, n); err != nil {
			return nil, err
		}
	}
	if _, err := a.meta.Refresh(ctx); err != nil {
		return nil, err
	}
	configs, err := a.topicConfigs(ctx, names)
	if err != nil {
		return nil, err
	}
	out := make([]TopicDescription, 0, len(names))
	for _, n := range names {
		t := a.meta.Current().Topics[n]
		if t == nil || t.ErrCode != 0 {
			// Deleted between the two looks: let Topic say so.
			if t, err = a.meta.Topic(ctx, n); err != nil {
				return nil, err
			}
		}
		d := TopicDescription{Name: t.Name, ID: t.ID, Internal: t.Internal, Configs: configs[n]}
		for _, p := range t.Partitions {
			d.Partitions = append(d.Partitions, PartitionDescription{
				Partition: p.ID, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: slices.Clone(p.Replicas), ISR: slices.Clone(p.ISR),
			})
		}
		out = append(out, d)
	}
	return out, nil
}
