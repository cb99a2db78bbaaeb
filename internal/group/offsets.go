package group

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/topicpart"
	"github.com/keel-go/keel/internal/wait"
)

// Offset is a committed position: the next offset to read, the leader
// epoch of the last record processed (-1 when unknown), and the metadata
// string committed with it ("" for none).
type Offset struct {
	At       int64
	Epoch    int32
	Metadata string
}

// ErrCommitFenced: the group moved to a new generation (or forgot this
// member) before the commit arrived; the offsets were not committed and
// the partitions may now be processed by another member.
var ErrCommitFenced = errs.NewSentinel("keel: offset commit refused: the group rebalanced and this member's generation is stale", false)

// Commit commits offsets for the member's current generation. It retries
// while the coordinator moves or loads, under ctx.
//
// The generation is taken once, when Commit is called: a retry after the
// group moved on must not commit these (by then possibly stale) offsets in
// the new generation, so it fails with ErrCommitFenced instead.
func (m *state) Commit(ctx context.Context, offsets map[topicpart.TP]Offset) error {
	if len(offsets) == 0 {
		return nil
	}
	gen, id, _ := m.Generation()
	return wait.Retry(ctx, m.cfg.Backoff, 0, func(int) (bool, error) {
		if g, i, _ := m.Generation(); g != gen || i != id {
			return true, &errs.Error{Detail: fmt.Sprintf("commit for group %q: the member moved from generation %d to %d while retrying", m.cfg.Group, gen, g), Err: ErrCommitFenced}
		}
		err := m.commitOnce(ctx, offsets)
		return err == nil || !errs.IsRetriable(err), err
	})
}

func (m *state) commitOnce(ctx context.Context, offsets map[topicpart.TP]Offset) error {
	c, addr, err := m.coordinator(ctx)
	if err != nil {
		return err
	}
	gen, id, inst := m.Generation()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = m.cfg.Group
	req.Generation = gen
	req.MemberID = id
	if inst != "" {
		req.InstanceID = &inst
	}
	byTopic := map[string]int{}
	tps := make([]topicpart.TP, 0, len(offsets))
	for tp := range offsets {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(a, b topicpart.TP) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	for _, tp := range tps {
		o := offsets[tp]
		i, ok := byTopic[tp.Topic]
		if !ok {
			i = len(req.Topics)
			byTopic[tp.Topic] = i
			t := kmsg.NewOffsetCommitRequestTopic()
			t.Topic = tp.Topic
			req.Topics = append(req.Topics, t)
		}
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Partition = tp.Partition
		p.Offset = o.At
		p.LeaderEpoch = o.Epoch
		if o.Metadata != "" {
			p.Metadata = kmsg.StringPtr(o.Metadata)
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
	}
	resp, err := c.Request(ctx, req)
	if err != nil {
		return err
	}
	var gone error // the first partition whose topic the coordinator does not know
	for _, t := range resp.(*kmsg.OffsetCommitResponse).Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode == errs.CodeNone {
				continue
			}
			switch p.ErrorCode {
			case errs.CodeUnknownTopicOrPartition:
				// A deleted topic (Kafka, like the Java client, does
				// not retry this): retrying would never end, and a
				// commit on revoke would hold the rebalance until
				// its ctx ends. The other partitions were committed.
				if gone == nil {
					e := errs.FromCode(p.ErrorCode, addr, "").(*errs.Error)
					e.Retriable = false
					e.Detail = fmt.Sprintf("committing %s/%d at %d for group %q: the coordinator does not know the partition (the topic was deleted?); its offset is not committed",
						t.Topic, p.Partition, offsets[topicpart.TP{Topic: t.Topic, Partition: p.Partition}].At, m.cfg.Group)
					gone = e
				}
				continue
			case errs.CodeIllegalGeneration, errs.CodeUnknownMemberId, errs.CodeRebalanceInProgress, errs.CodeStaleMemberEpoch:
				return &errs.Error{
					Code: p.ErrorCode, Name: errs.Lookup(p.ErrorCode).Name, Broker: addr,
					Detail: fmt.Sprintf("committing %s/%d at %d for group %q in generation %d", t.Topic, p.Partition, offsets[topicpart.TP{Topic: t.Topic, Partition: p.Partition}].At, m.cfg.Group, gen),
					Err:    ErrCommitFenced,
				}
			}
			e := m.groupErr("OffsetCommit", p.ErrorCode, addr)
			return fmt.Errorf("committing %s/%d: %w", t.Topic, p.Partition, e)
		}
	}
	return gone
}

// Committed fetches the group's committed offsets for tps. A partition with
// no commit is left out of the result.
func (m *state) Committed(ctx context.Context, tps []topicpart.TP) (map[topicpart.TP]Offset, error) {
	var out map[topicpart.TP]Offset
	err := wait.Retry(ctx, m.cfg.Backoff, 0, func(int) (bool, error) {
		var err error
		out, err = m.committedOnce(ctx, tps)
		return err == nil || !errs.IsRetriable(err), err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (m *state) committedOnce(ctx context.Context, tps []topicpart.TP) (map[topicpart.TP]Offset, error) {
	c, addr, err := m.coordinator(ctx)
	if err != nil {
		return nil, err
	}
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = m.cfg.Group
	req.RequireStable = true
	byTopic := map[string]int{}
	for _, tp := range tps {
		i, ok := byTopic[tp.Topic]
		if !ok {
			i = len(req.Topics)
			byTopic[tp.Topic] = i
			t := kmsg.NewOffsetFetchRequestTopic()
			t.Topic = tp.Topic
			req.Topics = append(req.Topics, t)
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, tp.Partition)
	}
	resp, err := c.Request(ctx, req)
	if err != nil {
		return nil, err
	}
	r := resp.(*kmsg.OffsetFetchResponse)
	if r.ErrorCode != errs.CodeNone {
		return nil, m.groupErr("OffsetFetch", r.ErrorCode, addr)
	}
	out := make(map[topicpart.TP]Offset)
	for _, t := range r.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != errs.CodeNone {
				return nil, m.groupErr("OffsetFetch", p.ErrorCode, addr)
			}
			if p.Offset >= 0 {
				o := Offset{At: p.Offset, Epoch: p.LeaderEpoch}
				if p.Metadata != nil {
					o.Metadata = *p.Metadata
				}
				out[topicpart.TP{Topic: t.Topic, Partition: p.Partition}] = o
			}
		}
	}
	return out, nil
}
