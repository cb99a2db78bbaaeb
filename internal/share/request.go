package share

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
)

// do sends p's request and applies the answer.
func (s *source) do(p *plan) {
	c := s.c
	sent := time.Now()
	cn, err := s.connect(p.ctx)
	if err != nil {
		if errors.Is(err, errs.ErrUnsupportedBroker) {
			c.setFatal(err)
		}
		s.failed(p, err)
		return
	}
	if p.renew && !s.canRenew() {
		s.dropRenewals(p)
	}
	var req kmsg.Request
	switch p.kind {
	case planFetch:
		req = s.fetchRequest(p)
	default:
		req = s.ackRequest(p, cn.Versions().Version(int16(kmsg.ShareAcknowledge)))
	}
	resp, err := cn.Request(p.ctx, req)
	if err != nil {
		s.failed(p, err)
		return
	}
	switch r := resp.(type) {
	case *kmsg.ShareFetchResponse:
		s.onFetch(p, r, sent, cn.Addr())
	case *kmsg.ShareAcknowledgeResponse:
		s.onAck(p, r, sent, cn.Addr())
	}
}

// groupAndMember are the request fields every share request carries.
func (s *source) groupAndMember() (*string, *string) {
	g, m := s.c.cfg.Group, s.c.memberID
	return &g, &m
}

func (s *source) fetchRequest(p *plan) *kmsg.ShareFetchRequest {
	req := kmsg.NewPtrShareFetchRequest()
	req.GroupID, req.MemberID = s.groupAndMember()
	req.ShareSessionEpoch = p.epoch
	req.MaxWaitMillis = int32(p.maxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = s.c.cfg.MaxBytes
	req.MaxRecords = int32(min(p.room, 1<<31-1))
	req.BatchSize = req.MaxRecords
	topics := make(map[[16]byte]int)
	part := func(tp TP, id [16]byte) *kmsg.ShareFetchRequestTopicPartition {
		ti, ok := topics[id]
		if !ok {
			ti = len(req.Topics)
			topics[id] = ti
			t := kmsg.NewShareFetchRequestTopic()
			t.TopicID = id
			req.Topics = append(req.Topics, t)
		}
		t := &req.Topics[ti]
		for i := range t.Partitions {
			if t.Partitions[i].Partition == tp.Partition {
				return &t.Partitions[i]
			}
		}
		rp := kmsg.NewShareFetchRequestTopicPartition()
		rp.Partition = tp.Partition
		t.Partitions = append(t.Partitions, rp)
		return &t.Partitions[len(t.Partitions)-1]
	}
	for tp, id := range p.add {
		part(tp, id).PartitionMaxBytes = s.c.cfg.PartitionMaxBytes
	}
	for tp, rs := range p.acks {
		rp := part(tp, s.c.topicID(tp.Topic))
		for _, r := range rs {
			b := kmsg.NewShareFetchRequestTopicPartitionAcknowledgementBatch()
			b.FirstOffset, b.LastOffset, b.AcknowledgeTypes = r.first, r.last, ackTypesOf(r.typ)
			rp.AcknowledgementBatches = append(rp.AcknowledgementBatches, b)
		}
	}
	forgotten := make(map[[16]byte]int)
	for tp, id := range p.forget {
		fi, ok := forgotten[id]
		if !ok {
			fi = len(req.ForgottenTopicsData)
			forgotten[id] = fi
			f := kmsg.NewShareFetchRequestForgottenTopicsData()
			f.TopicID = id
			req.ForgottenTopicsData = append(req.ForgottenTopicsData, f)
		}
		req.ForgottenTopicsData[fi].Partitions = append(req.ForgottenTopicsData[fi].Partitions, tp.Partition)
	}
	return req
}

func (s *source) ackRequest(p *plan, version int16) *kmsg.ShareAcknowledgeRequest {
	req := kmsg.NewPtrShareAcknowledgeRequest()
	req.GroupID, req.MemberID = s.groupAndMember()
	req.ShareSessionEpoch = p.epoch
	req.IsRenewAck = p.renew && version >= 2
	topics := make(map[[16]byte]int)
	for tp, rs := range p.acks {
		id := s.c.topicID(tp.Topic)
		ti, ok := topics[id]
		if !ok {
			ti = len(req.Topics)
			topics[id] = ti
			t := kmsg.NewShareAcknowledgeRequestTopic()
			t.TopicID = id
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewShareAcknowledgeRequestTopicPartition()
		rp.Partition = tp.Partition
		for _, r := range rs {
			b := kmsg.NewShareAcknowledgeRequestTopicPartitionAcknowledgementBatch()
			b.FirstOffset, b.LastOffset, b.AcknowledgeTypes = r.first, r.last, ackTypesOf(r.typ)
			rp.AcknowledgementBatches = append(rp.AcknowledgementBatches, b)
		}
		req.Topics[ti].Partitions = append(req.Topics[ti].Partitions, rp)
	}
	return req
}

// dropRenewals takes the renewals out of p, for a broker that turned out
// not to support them (the request would be refused whole).
func (s *source) dropRenewals(p *plan) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.renewWarned {
		c.renewWarned = true
		c.log.Warn("keel: the broker cannot renew acquisition locks (KIP-1222 needs Kafka 4.2+): records held longer than the lock go to other members", "broker", s.id)
	}
	for tp, rs := range p.acks {
		kept := rs[:0]
		for _, r := range rs {
			if r.typ == Renew {
				c.renewedLocked(s, tp, rangeOffsets([]ackRange{r}, Renew), false, time.Time{})
				continue
			}
			kept = append(kept, r)
		}
		if len(kept) == 0 {
			delete(p.acks, tp)
		} else {
			p.acks[tp] = kept
		}
	}
	p.renew = false
}
