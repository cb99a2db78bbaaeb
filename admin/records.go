package admin

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/errs"
)

// DeleteAllRecords, as the offset of DeleteRecords, deletes every record
// a partition holds now (up to its high watermark).
const DeleteAllRecords int64 = -1

// DeleteRecords deletes the records of each partition before the offset
// given for it (Kafka's DeleteRecords, sent to each partition's leader):
// the partition's log start offset moves up to it, and consumers can no
// longer read below it. DeleteAllRecords deletes everything held now. It
// returns each partition's new log start offset (low watermark). An offset
// past a partition's end fails for that partition with an error matching
// keel.ErrOffsetOutOfRange; a topic or partition the cluster does not
// have, keel.ErrUnknownTopic. Partitions whose leader moved are asked again
// after a metadata refresh, within a bounded number of attempts and ctx.
func (a *Admin) DeleteRecords(ctx context.Context, before map[keel.TopicPartition]int64) (map[keel.TopicPartition]int64, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.DeleteRecords")
	}
	if len(before) == 0 {
		return nil, errors.New("admin: DeleteRecords needs at least one partition")
	}
	var topics []string
	for tp, off := range before {
		if err := keel.ValidateTopicName(tp.Topic); err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		if off < 0 && off != DeleteAllRecords {
			return nil, fmt.Errorf("admin: DeleteRecords %s[%d] before offset %d: use an offset of 0 or more, or DeleteAllRecords", tp.Topic, tp.Partition, off)
		}
		topics = append(topics, tp.Topic)
	}
	topics = dedupe(topics)
	if err := a.requireTopics(ctx, topics); err != nil {
		return nil, err
	}
	for _, name := range topics {
		t, err := a.refreshedTopic(ctx, name)
		if err != nil {
			return nil, err
		}
		for tp := range before {
			if tp.Topic == name && (tp.Partition < 0 || int(tp.Partition) >= len(t.Partitions)) {
				e := codeErr(errs.CodeUnknownTopicOrPartition, "", nil, fmt.Sprintf("topic %q has %d partitions (0 to %d): partition %d does not exist", name, len(t.Partitions), len(t.Partitions)-1, tp.Partition))
				e.Err = errs.ErrUnknownTopic
				return nil, e
			}
		}
	}
	pending := make(map[keel.TopicPartition]struct{}, len(before))
	for tp := range before {
		pending[tp] = struct{}{}
	}
	out := make(map[keel.TopicPartition]int64, len(before))
	var failures []error
	r := a.newRetry()
	for len(pending) > 0 {
		res := a.deleteRecordsOnce(ctx, before, pending)
		var last error
		refresh := false
		for tp, pr := range res {
			switch {
			case pr.err == nil:
				out[tp] = pr.offset.Offset
				delete(pending, tp)
			case pr.retriable:
				last, refresh = pr.err, refresh || pr.refresh
			default:
				failures = append(failures, pr.err)
				delete(pending, tp)
			}
		}
		if len(pending) == 0 {
			break
		}
		if refresh {
			if _, err := a.meta.Refresh(ctx); err != nil && !retriable(ctx, err) {
				return out, err
			}
		}
		if err := r.wait(ctx, last); err != nil {
			return out, fmt.Errorf("deleting records of %d partitions: %w", len(pending), err)
		}
	}
	return out, errors.Join(failures...)
}

// deleteRecordsOnce asks each pending partition's current leader, one
// request per leader, concurrently.
func (a *Admin) deleteRecordsOnce(ctx context.Context, before map[keel.TopicPartition]int64, pending map[keel.TopicPartition]struct{}) map[keel.TopicPartition]partResult {
	res := make(map[keel.TopicPartition]partResult, len(pending))
	byLeader := a.byLeader(pending, res)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for leader, tps := range byLeader {
		wg.Go(func() {
			got := a.deleteRecordsAt(ctx, leader, before, tps)
			mu.Lock()
			defer mu.Unlock()
			for tp, pr := range got {
				res[tp] = pr
			}
		})
	}
	wg.Wait()
	return res
}

// byLeader groups partitions by their leader in the current metadata; the
// ones without a leader get a retriable result in res.
func (a *Admin) byLeader(pending map[keel.TopicPartition]struct{}, res map[keel.TopicPartition]partResult) map[int32][]keel.TopicPartition {
	snap := a.meta.Current()
	out := make(map[int32][]keel.TopicPartition)
	for tp := range pending {
		if _, p, ok := snap.Leader(tp.Topic, tp.Partition); ok {
			out[p.Leader] = append(out[p.Leader], tp)
			continue
		}
		res[tp] = partResult{
			err:       &errs.Error{Code: errs.CodeLeaderNotAvailable, Name: errs.Lookup(errs.CodeLeaderNotAvailable).Name, Retriable: true, Detail: fmt.Sprintf("partition %s[%d] has no leader right now", tp.Topic, tp.Partition)},
			retriable: true, refresh: true,
		}
	}
	return out
}

func (a *Admin) deleteRecordsAt(ctx context.Context, leader int32, before map[keel.TopicPartition]int64, tps []keel.TopicPartition) map[keel.TopicPartition]partResult {
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.TimeoutMillis = brokerTimeout(ctx)
	idx := make(map[string]int)
	for _, tp := range tps {
		i, ok := idx[tp.Topic]
		if !ok {
			i = len(req.Topics)
			idx[tp.Topic] = i
			rt := kmsg.NewDeleteRecordsRequestTopic()
			rt.Topic = tp.Topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewDeleteRecordsRequestTopicPartition()
		rp.Partition, rp.Offset = tp.Partition, before[tp]
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
	for _, t := range kresp.(*kmsg.DeleteRecordsResponse).Topics {
		for _, p := range t.Partitions {
			tp := keel.TopicPartition{Topic: t.Topic, Partition: p.Partition}
			if _, asked := before[tp]; !asked {
				continue
			}
			if p.ErrorCode != errs.CodeNone {
				info := errs.Lookup(p.ErrorCode)
				detail := fmt.Sprintf("deleting the records of %s[%d] before offset %d", tp.Topic, tp.Partition, before[tp])
				if p.ErrorCode == errs.CodeOffsetOutOfRange {
					detail = fmt.Sprintf("cannot delete the records of %s[%d] before offset %d: that is past the partition's end", tp.Topic, tp.Partition, before[tp])
				}
				e := codeErr(p.ErrorCode, addr, nil, detail)
				out[tp] = partResult{err: e, retriable: info.Retriable, refresh: info.Metadata}
				continue
			}
			out[tp] = partResult{offset: ListedOffset{Offset: p.LowWatermark, LeaderEpoch: -1}}
		}
	}
	for _, tp := range tps {
		if _, ok := out[tp]; !ok {
			out[tp] = partResult{
				err:       &errs.Error{Broker: addr, Retriable: true, Detail: fmt.Sprintf("broker left %s[%d] out of its DeleteRecords answer", tp.Topic, tp.Partition), Err: errs.ErrProtocol},
				retriable: true,
			}
		}
	}
	return out
}
