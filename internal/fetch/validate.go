package fetch

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/topicpart"
)

// KIP-320: a partition's position is checked against its leader's log
// whenever the leader changes (a new leader epoch in metadata, which
// FENCED_LEADER_EPOCH answers lead to) and when a caller starts it at an
// offset that carries an epoch. The check asks the leader, with
// OffsetForLeaderEpoch, where the epoch of the last record consumed ends
// in its log. An end below the position means records we consumed are not
// in the new leader's log: an unclean leader election truncated it, and
// the records the leader has from that end on are not the ones we read.
// Fetch answers say the same thing without a round trip (KIP-595's
// DivergingEpoch, from Fetch v12, given LastFetchedEpoch).
//
// What happens then follows the Java client: with a reset policy the
// partition continues at the end offset the leader gave (the divergence
// point: everything from there on is new to us); with ResetNone the partition stops with an error matching
// errs.ErrLogTruncated (and errs.ErrOffsetOutOfRange). Each move is
// logged at Warn and reported to Config.OnPositionReset.
//
// While a partition is validated (stValidate) it is not fetched, and what
// was buffered for it beyond the position is dropped: it was read from
// the old leader and may be part of the truncated tail.

// needsValidation reports whether a metadata change from epoch old to new
// for the partition's leader must make its position be checked.
func needsValidation(old, new int32) bool { return old >= 0 && new > old }

// validateLocked puts p in stValidate, unless there is nothing to check:
// no position epoch is known (nothing was read yet, or the caller's offset
// came without one), or p is not fetching.
func (f *Of[R]) validateLocked(p *partition[R]) {
	if p.state != stFetch || p.position.Epoch < 0 {
		return
	}
	if len(p.buf) > 0 {
		f.dropBufferLocked(p)
		f.kickLocked()
	}
	p.gen++ // an answer to a fetch sent before is stale now
	p.fetchOffset, p.fetchEpoch = p.position.At, p.position.Epoch
	p.state = stValidate
}

// valReq is one partition of an OffsetForLeaderEpoch request.
type valReq[R any] struct {
	p       *partition[R]
	gen     uint64
	pos     Offset // the position checked
	current int32  // the leader epoch we know, for fencing
}

// validateOffsets asks broker id where the epochs of reqs' positions end
// and applies the answers.
func (f *Of[R]) validateOffsets(id int32, reqs []valReq[R]) {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = -1
	topics := make(map[string]int)
	for _, r := range reqs {
		i, ok := topics[r.p.tp.Topic]
		if !ok {
			i = len(req.Topics)
			topics[r.p.tp.Topic] = i
			rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
			rt.Topic = r.p.tp.Topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition = r.p.tp.Partition
		rp.CurrentLeaderEpoch = r.current
		rp.LeaderEpoch = r.pos.Epoch
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	var resp *kmsg.OffsetForLeaderEpochResponse
	unsupported := false
	c, addr, err := f.brokerConn(id)
	if err == nil {
		if c.Versions().Version(int16(kmsg.OffsetForLeaderEpoch)) < 0 {
			unsupported = true // too old to validate: trust the position
		} else {
			var kr kmsg.Response
			if kr, err = c.Request(f.ctx, req); err == nil {
				resp = kr.(*kmsg.OffsetForLeaderEpochResponse)
			}
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	ps := make([]*partition[R], 0, len(reqs))
	for _, r := range reqs {
		ps = append(ps, r.p)
	}
	defer f.routeSomeLocked(ps...)
	if !f.endRequestLocked(ps, "offset validation", id, err) {
		return
	}
	answers := make(map[topicpart.TP]kmsg.OffsetForLeaderEpochResponseTopicPartition)
	if resp != nil {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				answers[topicpart.TP{Topic: t.Topic, Partition: p.Partition}] = p
			}
		}
	}
	for _, r := range reqs {
		p := r.p
		if p.removed || p.gen != r.gen || p.state != stValidate {
			continue // seeked or unassigned meanwhile
		}
		if unsupported {
			p.state = stFetch
			continue
		}
		a, ok := answers[p.tp]
		switch {
		case !ok:
			f.backoffLocked(p, false)
		case a.ErrorCode != errs.CodeNone:
			f.validateErrorLocked(p, a.ErrorCode, addr)
		default:
			p.failures = 0
			f.checkEpochEndLocked(p, a.LeaderEpoch, a.EndOffset, addr, "OffsetForLeaderEpoch")
		}
	}
}

// validateErrorLocked handles a partition-level OffsetForLeaderEpoch
// error: FENCED_LEADER_EPOCH and NOT_LEADER want fresh metadata (whose
// epoch the next attempt then sends), UNKNOWN_LEADER_EPOCH a moment for
// the broker to catch up; a non-retriable error stops the partition.
func (f *Of[R]) validateErrorLocked(p *partition[R], code int16, addr string) {
	info := errs.Lookup(code)
	switch {
	case info.Metadata:
		f.backoffLocked(p, true)
		f.meta.RefreshSoon()
	case info.Retriable:
		f.backoffLocked(p, false)
	default:
		f.stopLocked(p, &errs.Error{Code: code, Name: info.Name, Broker: addr,
			Detail: fmt.Sprintf("validating the position %d of %v after a leader change", p.position.At, p.tp)})
	}
}

// checkEpochEndLocked applies the leader's answer about where epoch ends
// (end) to p's position: nothing to do when the position is at or below
// it (or the leader cannot say); a truncation otherwise. how names the source of the answer, for the
// log and the error.
func (f *Of[R]) checkEpochEndLocked(p *partition[R], epoch int32, end int64, addr, how string) {
	pos := p.position
	if epoch < 0 || end < 0 {
		// The leader knows no end for our epoch. Kafka answers so only
		// for an epoch newer than any it has, which fencing with
		// CurrentLeaderEpoch rules out; kfake answers so for the last
		// epoch with records after every leader move. Java and
		// librdkafka reset by policy here; keel keeps the position,
		// and a position beyond the log still ends in
		// OFFSET_OUT_OF_RANGE, which the policy handles.
		f.cfg.Logger.Debug("keel: leader cannot place the position's epoch; keeping the position", "partition", p.tp.String(), "position", pos.At, "epoch", pos.Epoch)
		p.state = stFetch
		return
	}
	if end >= pos.At {
		p.state = stFetch // the position is in the leader's log
		return
	}
	p.gen++
	err := &errs.Error{Code: errs.CodeOffsetOutOfRange, Name: errs.Lookup(errs.CodeOffsetOutOfRange).Name, Broker: addr, Err: errs.ErrLogTruncated,
		Detail: fmt.Sprintf("log truncation on %v: the leader's log ends epoch %d at offset %d, below the position %d read in epoch %d (%s); records were lost in a leader change", p.tp, epoch, end, pos.At, pos.Epoch, how)}
	if f.cfg.Reset == ResetNone {
		f.cfg.Logger.Warn("keel: log truncation detected; reset policy none stops the partition", "partition", p.tp.String(), "position", pos.At, "err", err)
		f.stopLocked(p, err)
		return
	}
	f.cfg.Logger.Warn("keel: log truncation detected; continuing at the divergence point", "partition", p.tp.String(), "from", pos.At, "to", end, "err", err)
	p.state = stFetch
	p.fetchOffset, p.fetchEpoch = end, epoch
	p.position = Offset{At: end, Epoch: epoch}
	f.positionResetLocked(p, pos, end, err)
}

// divergedLocked applies a fetch answer's DivergingEpoch (KIP-595): the
// log of the epoch we last fetched in ends at end, below the fetch
// offset. What was buffered is dropped (part of it may be the tail that
// is gone); records already returned are checked as OffsetForLeaderEpoch
// answers are.
func (f *Of[R]) divergedLocked(p *partition[R], epoch int32, end int64, addr string) {
	if len(p.buf) > 0 {
		f.dropBufferLocked(p)
		f.kickLocked()
	}
	p.gen++
	p.fetchOffset, p.fetchEpoch = p.position.At, p.position.Epoch
	f.checkEpochEndLocked(p, epoch, end, addr, "the fetch answer's diverging epoch")
}

// positionResetLocked reports a move of p's position from from to to.
func (f *Of[R]) positionResetLocked(p *partition[R], from Offset, to int64, err error) {
	if f.cfg.OnPositionReset != nil {
		f.cfg.OnPositionReset(PositionReset{TP: p.tp, From: from, To: to, Err: err})
	}
}
