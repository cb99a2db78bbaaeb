package ui

import (
	"context"
	"net/http"
	"slices"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

type topicRowJSON struct {
	Name        string `json:"name"`
	Partitions  int    `json:"partitions"`
	Replication int    `json:"replication"`
	Internal    bool   `json:"internal"`
	Records     int64  `json:"records"` // end − start over the partitions
	Size        int64  `json:"size"`    // bytes on disk over the leaders' replicas; -1 when unknown
}

func (s *Server) listTopics(ctx context.Context, r *http.Request) (any, error) {
	md, err := s.cfg.Client.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(md.Topics))
	for _, t := range md.Topics {
		names = append(names, t.Name)
	}
	rows := make([]topicRowJSON, 0, len(md.Topics))
	if len(names) == 0 {
		return rows, nil
	}
	starts, ends, err := s.offsetRange(ctx, names...)
	if err != nil {
		return nil, err
	}
	sizes := s.leaderSizes(ctx, md, names)
	for _, t := range md.Topics {
		row := topicRowJSON{Name: t.Name, Partitions: len(t.Partitions), Internal: t.Internal, Size: -1}
		if len(t.Partitions) > 0 {
			row.Replication = len(t.Partitions[0].Replicas)
		}
		for _, p := range t.Partitions {
			tp := keel.TopicPartition{Topic: t.Name, Partition: p.ID}
			row.Records += max(ends[tp]-starts[tp], 0)
		}
		if sz, ok := sizes[t.Name]; ok {
			row.Size = sz
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// offsetRange returns the start and end offsets of every partition of topics.
func (s *Server) offsetRange(ctx context.Context, topics ...string) (starts, ends map[keel.TopicPartition]int64, err error) {
	if starts, err = s.admin.StartOffsets(ctx, topics...); err != nil {
		return nil, nil, err
	}
	if ends, err = s.admin.EndOffsets(ctx, topics...); err != nil {
		return nil, nil, err
	}
	return starts, ends, nil
}

// leaderSizes sums, per topic, the size on disk of each partition's
// leader replica. A cluster that cannot say (DescribeLogDirs refused)
// gives an empty map: sizes show as unknown rather than fail the page.
func (s *Server) leaderSizes(ctx context.Context, md *keel.Metadata, topics []string) map[string]int64 {
	logs, err := s.admin.LogDirs(ctx, topics...)
	if err != nil {
		return nil
	}
	leaders := map[keel.TopicPartition]int32{}
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			leaders[keel.TopicPartition{Topic: t.Name, Partition: p.ID}] = p.Leader
		}
	}
	out := map[string]int64{}
	for tp, replicas := range logs {
		for _, rl := range replicas {
			if rl.Broker == leaders[tp] {
				out[tp.Topic] += rl.Size
			}
		}
	}
	return out
}

type topicJSON struct {
	Name       string          `json:"name"`
	Internal   bool            `json:"internal"`
	Partitions []partitionJSON `json:"partitions"`
	Configs    []configJSON    `json:"configs"`
}

type partitionJSON struct {
	Partition int32   `json:"partition"`
	Leader    int32   `json:"leader"`
	Replicas  []int32 `json:"replicas"`
	ISR       []int32 `json:"isr"`
	Start     int64   `json:"start"`
	End       int64   `json:"end"`
	Size      int64   `json:"size"` // the leader replica's bytes on disk; -1 when unknown
}

type configJSON struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	Source    string `json:"source"`
	Default   bool   `json:"default"`
	Sensitive bool   `json:"sensitive"`
}

func (s *Server) getTopic(ctx context.Context, r *http.Request) (any, error) {
	name, err := topicParam(r)
	if err != nil {
		return nil, err
	}
	descs, err := s.admin.DescribeTopics(ctx, name)
	if err != nil {
		return nil, err
	}
	d := descs[0]
	starts, ends, err := s.offsetRange(ctx, name)
	if err != nil {
		return nil, err
	}
	logs, logErr := s.admin.LogDirs(ctx, name)
	out := topicJSON{Name: d.Name, Internal: d.Internal, Partitions: []partitionJSON{}, Configs: []configJSON{}}
	for _, p := range d.Partitions {
		tp := keel.TopicPartition{Topic: name, Partition: p.Partition}
		pj := partitionJSON{Partition: p.Partition, Leader: p.Leader, Replicas: nonNil(p.Replicas), ISR: nonNil(p.ISR), Start: starts[tp], End: ends[tp], Size: -1}
		if logErr == nil {
			for _, rl := range logs[tp] {
				if rl.Broker == p.Leader {
					pj.Size = rl.Size
				}
			}
		}
		out.Partitions = append(out.Partitions, pj)
	}
	for _, c := range d.Configs {
		out.Configs = append(out.Configs, configOf(c))
	}
	return out, nil
}

func configOf(c admin.ConfigEntry) configJSON {
	v := c.Value
	if c.Sensitive {
		v = "(sensitive)"
	}
	return configJSON{Name: c.Name, Value: v, Source: c.Source, Default: c.Default, Sensitive: c.Sensitive}
}

func nonNil(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return slices.Clone(s)
}

// topicParam is the {topic} of the path, checked against Kafka's naming
// rule so a bad name is refused here rather than sent to the cluster.
func topicParam(r *http.Request) (string, error) {
	name := r.PathValue("topic")
	if err := keel.ValidateTopicName(name); err != nil {
		return "", &apiError{status: http.StatusBadRequest, msg: "bad topic name", err: err}
	}
	return name, nil
}

type createTopicJSON struct {
	Name        string            `json:"name"`
	Partitions  int32             `json:"partitions"`
	Replication int16             `json:"replication"` // 0: the broker's default
	Configs     map[string]string `json:"configs"`
}

func (s *Server) createTopic(ctx context.Context, r *http.Request) (any, error) {
	var req createTopicJSON
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	if err := keel.ValidateTopicName(req.Name); err != nil {
		return nil, &apiError{status: http.StatusBadRequest, msg: "bad topic name", err: err}
	}
	if req.Partitions < 1 || req.Partitions > maxPartitions {
		return nil, badRequest("partitions must be 1 to %d, got %d", maxPartitions, req.Partitions)
	}
	if req.Replication < 0 {
		return nil, badRequest("replication must be 1 or more (0 for the broker's default), got %d", req.Replication)
	}
	rf := req.Replication
	if rf == 0 {
		rf = -1 // the broker's default
	}
	spec := admin.TopicSpec{Name: req.Name, Partitions: req.Partitions, ReplicationFactor: rf, Configs: req.Configs}
	if err := s.admin.CreateTopics(ctx, spec); err != nil {
		return nil, err
	}
	return map[string]any{"created": req.Name, "partitions": req.Partitions}, nil
}

// maxPartitions is the most partitions the console creates or grows a
// topic to in one call: far above any real topic, low enough that a typo
// (99999999) is refused here instead of loading the cluster.
const maxPartitions = 10000

type addPartitionsJSON struct {
	Total int32 `json:"total"`
}

func (s *Server) addPartitions(ctx context.Context, r *http.Request) (any, error) {
	name, err := topicParam(r)
	if err != nil {
		return nil, err
	}
	var req addPartitionsJSON
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	if req.Total < 1 || req.Total > maxPartitions {
		return nil, badRequest("total must be 1 to %d partitions, got %d", maxPartitions, req.Total)
	}
	if err := s.admin.CreatePartitions(ctx, name, req.Total, false); err != nil {
		return nil, err
	}
	return map[string]any{"topic": name, "partitions": req.Total}, nil
}
