package admin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
)

// OffsetSpec says which offset ListOffsets looks up: Earliest, Latest or
// AtTime.
type OffsetSpec struct {
	ts int64 // ListOffsets timestamp: -2 earliest, -1 latest, else ms
}

// Earliest is the first offset still held (the log start offset).
func Earliest() OffsetSpec { return OffsetSpec{ts: -2} }

// Latest is the high watermark: the offset the next record will get, and
// the end of what consumers can read.
func Latest() OffsetSpec { return OffsetSpec{ts: -1} }

// AtTime is the first offset whose record timestamp is at or after t. A
// partition with no such record lists offset -1.
func AtTime(t time.Time) OffsetSpec { return OffsetSpec{ts: max(t.UnixMilli(), 0)} }

func (s OffsetSpec) String() string {
	switch s.ts {
	case -2:
		return "earliest"
	case -1:
		return "latest"
	}
	return time.UnixMilli(s.ts).UTC().Format(time.RFC3339Nano)
}

// ListedOffset is one partition's answer to ListOffsets.
type ListedOffset struct {
	Offset      int64     // -1 when AtTime found no record at or after the time
	Timestamp   time.Time // the record's timestamp for AtTime; zero otherwise
	LeaderEpoch int32     // -1 when the broker does not report it
}

// StartOffsets returns the earliest offset of every partition of topics.
func (a *Admin) StartOffsets(ctx context.Context, topics ...string) (map[keel.TopicPartition]int64, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.StartOffsets")
	}
	return a.offsetsOnly(ctx, Earliest(), topics)
}

// EndOffsets returns the high watermark of every partition of topics.
func (a *Admin) EndOffsets(ctx context.Context, topics ...string) (map[keel.TopicPartition]int64, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.EndOffsets")
	}
	return a.offsetsOnly(ctx, Latest(), topics)
}

func (a *Admin) offsetsOnly(ctx context.Context, spec OffsetSpec, topics []string) (map[keel.TopicPartition]int64, error) {
	listed, err := a.ListOffsets(ctx, spec, topics...)
	if err != nil {
		return nil, err
	}
	out := make(map[keel.TopicPartition]int64, len(listed))
	for tp, l := range listed {
		out[tp] = l.Offset
	}
	return out, nil
}

// ListOffsets looks up spec's offset for every partition of topics, asking
// each partition's leader. A topic the cluster does not have gives an
// error matching keel.ErrUnknownTopic; partitions whose leader moved are
// asked again after a metadata refresh, within a bounded number of
// attempts and ctx.
func (a *Admin) ListOffsets(ctx context.Context, spec OffsetSpec, topics ...string) (map[keel.TopicPartition]ListedOffset, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.ListOffsets")
	}
	topics = dedupe(topics)
	if len(topics) > 0 {
		if err := a.requireTopics(ctx, topics); err != nil {
			return nil, err
		}
	}
	pending := make(map[keel.TopicPartition]struct{})
	for _, name := range topics {
		t, err := a.meta.Topic(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, p := range t.Partitions {
			pending[keel.TopicPartition{Topic: name, Partition: p.ID}] = struct{}{}
		}
	}
	out := make(map[keel.TopicPartition]ListedOffset, len(pending))
	var failures []error
	r := a.newRetry()
	for {
		res := a.listOnce(ctx, spec, pending)
		var last error
		refresh := false
		unknown := make(map[string]bool)
		for tp, pr := range res {
			switch {
			case pr.err == nil:
				out[tp] = pr.offset
				delete(pending, tp)
			case pr.retriable:
				last = pr.err
				refresh = refresh || pr.refresh
				if errs.Code(pr.err) == errs.CodeUnknownTopicOrPartition {
					unknown[tp.Topic] = true
				}
			default:
				failures = append(failures, pr.err)
				delete(pending, tp)
			}
		}
		if len(pending) == 0 {
			break
		}
		// A topic deleted since we looked it up answers
		// UNKNOWN_TOPIC_OR_PARTITION for good; the metadata lookup tells
		// that apart from a broker that has not caught up, and words
		// the error as the rest of keel does.
		for topic := range unknown {
			if _, err := a.refreshedTopic(ctx, topic); err != nil {
				return nil, err
			}
		}
		if refresh && len(unknown) == 0 {
			if _, err := a.meta.Refresh(ctx); err != nil && !retriable(ctx, err) {
				return nil, err
			}
		}
		if err := r.wait(ctx, last); err != nil {
			return nil, fmt.Errorf("listing %s offsets of %d partitions: %w", spec, len(pending), err)
		}
	}
	if len(failures) > 0 {
		return nil, errors.Join(failures...)
	}
	return out, nil
}

// partResult is what one attempt learned of one partition.
type partResult struct {
	offset    ListedOffset
	err       error
	retriable bool
	refresh   bool // metadata is stale
}

// listOnce asks the current leaders of pending, one request per leader,
// concurrently, and reports every pending partition.
func (a *Admin) listOnce(ctx context.Context, spec OffsetSpec, pending map[keel.TopicPartition]struct{}) map[keel.TopicPartition]partResult {
	res := make(map[keel.TopicPartition]partResult, len(pending))
	snap := a.meta.Current()
	byLeader := make(map[int32][]keel.TopicPartition)
	for tp := range pending {
		if _, p, ok := snap.Leader(tp.Topic, tp.Partition); ok {
			byLeader[p.Leader] = append(byLeader[p.Leader], tp)
			continue
		}
		res[tp] = partResult{
			err:       &errs.Error{Code: errs.CodeLeaderNotAvailable, Name: errs.Lookup(errs.CodeLeaderNotAvailable).Name, Retriable: true, Detail: fmt.Sprintf("partition %s[%d] has no leader right now", tp.Topic, tp.Partition)},
			retriable: true, refresh: true,
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for leader, tps := range byLeader {
		wg.Go(func() {
			got := a.listFromLeader(ctx, spec, leader, tps)
			mu.Lock()
			for tp, pr := range got {
				res[tp] = pr
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return res
}

func (a *Admin) listFromLeader(ctx context.Context, spec OffsetSpec, leader int32, tps []keel.TopicPartition) map[keel.TopicPartition]partResult {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	idx := make(map[string]int)
	for _, tp := range tps {
		i, ok := idx[tp.Topic]
		if !ok {
			i = len(req.Topics)
			idx[tp.Topic] = i
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = tp.Topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = tp.Partition
		rp.Timestamp = spec.ts
		rp.CurrentLeaderEpoch = -1 // read-only lookup: no fencing wanted
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	out := make(map[keel.TopicPartition]partResult, len(tps))
	kresp, addr, err := a.sendTo(ctx, leader, req)
	if err != nil {
		again := retriable(ctx, err)
		for _, tp := range tps {
			out[tp] = partResult{err: err, retriable: again, refresh: again}
		}
		return out
	}
	resp := kresp.(*kmsg.ListOffsetsResponse)
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			tp := keel.TopicPartition{Topic: t.Topic, Partition: p.Partition}
			if p.ErrorCode != errs.CodeNone {
				info := errs.Lookup(p.ErrorCode)
				e := codeErr(p.ErrorCode, addr, nil, fmt.Sprintf("listing the %s offset of %s[%d]", spec, tp.Topic, tp.Partition))
				out[tp] = partResult{err: e, retriable: info.Retriable, refresh: info.Metadata || p.ErrorCode == errs.CodeUnknownLeaderEpoch}
				continue
			}
			lo := ListedOffset{Offset: p.Offset, LeaderEpoch: p.LeaderEpoch}
			if resp.Version < 4 {
				lo.LeaderEpoch = -1
			}
			if spec.ts >= 0 && p.Timestamp >= 0 && p.Offset >= 0 {
				lo.Timestamp = time.UnixMilli(p.Timestamp)
			}
			out[tp] = partResult{offset: lo}
		}
	}
	for _, tp := range tps {
		if _, ok := out[tp]; !ok {
			out[tp] = partResult{
				err:       &errs.Error{Broker: addr, Retriable: true, Detail: fmt.Sprintf("broker left %s[%d] out of its ListOffsets answer", tp.Topic, tp.Partition), Err: errs.ErrProtocol},
				retriable: true,
			}
		}
	}
	return out
}

// refreshedTopic refreshes metadata and looks topic up again; it fails
// with keel's unknown-topic error when the cluster no longer has it.
func (a *Admin) refreshedTopic(ctx context.Context, topic string) (*meta.Topic, error) {
	if err := a.requireTopics(ctx, []string{topic}); err != nil {
		return nil, err
	}
	if _, err := a.meta.Refresh(ctx); err != nil && !retriable(ctx, err) {
		return nil, err
	}
	return a.meta.Topic(ctx, topic)
}

// dedupe drops repeated names, keeping the first occurrence's order.
func dedupe(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
