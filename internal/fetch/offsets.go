package fetch

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/topicpart"
	"github.com/keel-go/keel/internal/wait"
)

// resolveLoop turns symbolic start offsets (earliest, latest, a timestamp)
// into offsets with ListOffsets to each partition's leader. It runs while
// partitions need that and ends when none do.
func (f *Of[R]) resolveLoop() {
	defer f.wg.Done()
	for {
		f.mu.Lock()
		if f.closed {
			f.resolving = false
			f.mu.Unlock()
			return
		}
		now := time.Now()
		byLeader := make(map[int32][]inReq[R])
		toValidate := make(map[int32][]valReq[R])
		for _, p := range f.parts {
			switch {
			case p.resolvable(now):
				p.inflight = true
				byLeader[p.leader] = append(byLeader[p.leader], inReq[R]{p: p, gen: p.gen, offset: p.resolveTo, epoch: p.leaderEpoch})
			case p.validatable(now):
				p.inflight = true
				toValidate[p.leader] = append(toValidate[p.leader], valReq[R]{p: p, gen: p.gen, pos: p.position, current: p.leaderEpoch})
			}
		}
		if len(byLeader) == 0 && len(toValidate) == 0 {
			f.resolving = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		// Brokers are asked one after the other: start offsets are
		// needed once per assignment, not on the hot path.
		for leader, reqs := range byLeader {
			f.listOffsets(leader, reqs)
		}
		for leader, reqs := range toValidate {
			f.validateOffsets(leader, reqs)
		}
	}
}

// listOffsets asks broker id for the offsets of reqs and applies them.
func (f *Of[R]) listOffsets(id int32, reqs []inReq[R]) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	if f.cfg.ReadCommitted {
		// Latest is then the last stable offset, not the high watermark.
		req.IsolationLevel = 1
	}
	topics := make(map[string]int)
	for _, r := range reqs {
		i, ok := topics[r.p.tp.Topic]
		if !ok {
			i = len(req.Topics)
			topics[r.p.tp.Topic] = i
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = r.p.tp.Topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = r.p.tp.Partition
		rp.Timestamp = r.offset // -2 earliest, -1 latest, else milliseconds
		rp.CurrentLeaderEpoch = r.epoch
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	var resp *kmsg.ListOffsetsResponse
	c, addr, err := f.brokerConn(id)
	if err == nil {
		var kr kmsg.Response
		if kr, err = c.Request(f.ctx, req); err == nil {
			resp = kr.(*kmsg.ListOffsetsResponse)
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	ps := make([]*partition[R], 0, len(reqs))
	for _, r := range reqs {
		ps = append(ps, r.p)
	}
	defer f.routeSomeLocked(ps...)
	if !f.endRequestLocked(ps, "list offsets", id, err) {
		return
	}
	answers := make(map[topicpart.TP]kmsg.ListOffsetsResponseTopicPartition)
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			answers[topicpart.TP{Topic: t.Topic, Partition: p.Partition}] = p
		}
	}
	for _, r := range reqs {
		p := r.p
		if p.removed || p.gen != r.gen || p.state != stResolve {
			continue // seeked or unassigned meanwhile
		}
		a, ok := answers[p.tp]
		if !ok {
			f.backoffLocked(p, false)
			continue
		}
		if a.ErrorCode != errs.CodeNone {
			f.listErrorLocked(p, a.ErrorCode, addr)
			continue
		}
		if a.Offset < 0 && p.byTime {
			// No record at or after the timestamp: start at the end.
			p.resolveTo, p.byTime = OffsetLatest, false
			continue
		}
		p.failures = 0
		p.state = stFetch
		p.fetchOffset, p.fetchEpoch = a.Offset, a.LeaderEpoch
		if len(p.buf) == 0 {
			p.position = Offset{At: a.Offset, Epoch: a.LeaderEpoch}
		} else {
			// Data fetched before an out-of-range reset is still
			// returned; the position jumps once it is drained.
			f.appendChunkLocked(p, &chunk[R]{next: a.Offset, epoch: a.LeaderEpoch})
		}
	}
}

// listErrorLocked handles a partition-level ListOffsets error.
func (f *Of[R]) listErrorLocked(p *partition[R], code int16, addr string) {
	info := errs.Lookup(code)
	switch {
	case info.Metadata:
		f.backoffLocked(p, true)
		f.meta.RefreshSoon()
	case info.Retriable:
		f.backoffLocked(p, false)
	default:
		f.stopLocked(p, &errs.Error{Code: code, Name: info.Name, Broker: addr,
			Detail: fmt.Sprintf("looking up the start offset of %v", p.tp)})
	}
}

// ListOffset asks tp's leader for the offset of ts — OffsetEarliest,
// OffsetLatest or a timestamp in milliseconds (the first record at or
// after it; the end of the partition when there is none) — and waits for
// the answer under ctx, retrying while the leader moves. Consumers that
// must know where a move lands before it happens (a group's Seek, whose
// target is committed) use it; Assign and Seek resolve lazily.
func (f *Of[R]) ListOffset(ctx context.Context, tp topicpart.TP, ts int64) (int64, error) {
	var out int64
	err := wait.Retry(ctx, f.cfg.RetryBackoff, 0, func(int) (bool, error) {
		o, err := f.listOffsetOnce(ctx, tp, ts)
		if err == nil && o < 0 && ts >= 0 {
			o, err = f.listOffsetOnce(ctx, tp, OffsetLatest) // no record at or after ts
		}
		if err != nil {
			return !errs.IsRetriable(err), err
		}
		out = o
		return true, nil
	})
	return out, err
}

func (f *Of[R]) listOffsetOnce(ctx context.Context, tp topicpart.TP, ts int64) (int64, error) {
	if _, err := f.meta.Topic(ctx, tp.Topic); err != nil {
		return 0, err
	}
	b, mp, ok := f.meta.Current().Leader(tp.Topic, tp.Partition)
	if !ok {
		f.meta.RefreshSoon()
		return 0, &errs.Error{Retriable: true, Detail: fmt.Sprintf("no leader known for %v", tp), Err: errs.ErrBrokerUnreachable}
	}
	c, err := f.pool.Get(ctx, b.Addr(), conn.General)
	if err != nil {
		return 0, err
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	if f.cfg.ReadCommitted {
		req.IsolationLevel = 1
	}
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = tp.Topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = tp.Partition
	rp.Timestamp = ts
	rp.CurrentLeaderEpoch = mp.LeaderEpoch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kr, err := c.Request(ctx, req)
	if err != nil {
		return 0, err
	}
	for _, t := range kr.(*kmsg.ListOffsetsResponse).Topics {
		for _, p := range t.Partitions {
			if t.Topic != tp.Topic || p.Partition != tp.Partition {
				continue
			}
			if p.ErrorCode != errs.CodeNone {
				f.meta.HandleError(p.ErrorCode)
				e := errs.FromCode(p.ErrorCode, b.Addr(), "").(*errs.Error)
				e.Detail = fmt.Sprintf("looking up an offset of %v", tp)
				return 0, e
			}
			return p.Offset, nil
		}
	}
	return 0, &errs.Error{Retriable: true, Broker: b.Addr(), Detail: fmt.Sprintf("ListOffsets answered without %v", tp), Err: errs.ErrProtocol}
}
