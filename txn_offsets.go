package keel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/internal/wait"
)

// GroupMetadata is what a transactional offset commit must carry so that
// the group coordinator refuses it from a member that is no longer part of
// the group (KIP-447): the group, its generation, the member id and the
// static instance id ("" for none).
type GroupMetadata struct {
	Group      string
	Generation int32
	MemberID   string
	InstanceID string
}

// GroupMetadata returns the poller's group membership as it is now, for
// Producer.SendOffsetsToTxn.
func (g *GroupPoller) GroupMetadata() GroupMetadata {
	gen, id, inst := g.core.member.Generation()
	return GroupMetadata{Group: g.core.group, Generation: gen, MemberID: id, InstanceID: inst}
}

// Position returns the offset after the records Poll handed out for tp,
// past any transaction markers or aborted records that follow them: once
// every one of those records is processed, the offset to pass to
// SendOffsetsToTxn for tp (Java's consumer.position). Sending the last
// record's offset + 1 instead is right too, but leaves a partition that
// ends with a commit marker one short of its end (a lag of 1) until more
// records come. False when this member does not own tp or its start is
// not resolved yet.
func (g *GroupPoller) Position(tp TopicPartition) (int64, bool) {
	c := g.core
	c.mu.Lock()
	ps := c.parts[tp]
	owned := ps != nil && !ps.leaving
	c.mu.Unlock()
	if !owned {
		return 0, false
	}
	o, ok := c.fetcher.Position(tp)
	return o.At, ok
}

// ErrTxnOffsetsFenced: the group rebalanced (stale generation, unknown
// member) before the transactional offset commit arrived: the transaction
// must be aborted and the partitions' records read again from the
// group's committed offsets by whoever owns them now.
var ErrTxnOffsetsFenced = errs.NewSentinel("keel: transactional offset commit refused: the group moved to a new generation; abort the transaction", false)

// SendOffsetsToTxn adds offsets (the next offset to read, per partition:
// last processed + 1) to the open transaction, committed for the group
// with it and only if it commits — Java's sendOffsetsToTransaction. It
// sends AddOffsetsToTxn to the transaction coordinator, then
// TxnOffsetCommit to the group coordinator with gm's generation, member id
// and instance id (take them from GroupPoller.GroupMetadata). An error
// makes the transaction abortable: abort it and rewind the partitions to
// their committed offsets. The records it covers must have been produced
// by this producer in this transaction before it is called.
func (p *Producer) SendOffsetsToTxn(ctx context.Context, offsets map[TopicPartition]int64, gm GroupMetadata) error {
	withMeta := make(map[TopicPartition]txnOffset, len(offsets))
	for tp, at := range offsets {
		withMeta[tp] = txnOffset{at: at}
	}
	return p.sendOffsetsToTxn(ctx, withMeta, gm)
}

// txnOffset is one partition's offset in a TxnOffsetCommit, with the
// metadata committed beside it (ExactlyOnce with Parallel: the records
// after the offset processed already, see doneRanges).
type txnOffset struct {
	at       int64
	metadata string
}

func (p *Producer) sendOffsetsToTxn(ctx context.Context, offsets map[TopicPartition]txnOffset, gm GroupMetadata) error {
	if ctx == nil {
		return errs.NilContext("Producer.SendOffsetsToTxn")
	}
	t := p.txn
	if t == nil {
		return ErrNotTransactional
	}
	if gm.Group == "" {
		return &ConfigError{Option: "SendOffsetsToTxn", Problem: "no group", Fix: "pass GroupPoller.GroupMetadata()"}
	}
	t.gate.RLock()
	err := t.refuse()
	t.gate.RUnlock()
	if err != nil {
		return err
	}
	if len(offsets) == 0 {
		return nil
	}
	// The producer id must be known before the coordinators hear of it.
	p.engine.EnsureProducerID()
	var pid int64
	var epoch int16
	if err := wait.Retry(ctx, wait.Backoff{Min: 5 * time.Millisecond, Max: 100 * time.Millisecond}, 0, func(int) (bool, error) {
		var ok bool
		pid, epoch, ok = p.engine.ProducerID()
		if err := t.fatalErr(); err != nil {
			return true, err
		}
		if ok {
			return true, nil
		}
		return false, errors.New("waiting for the producer id")
	}); err != nil {
		return fmt.Errorf("keel: SendOffsetsToTxn: %w", err)
	}

	t.addMu.Lock()
	err = t.coordinatorCall(ctx, "AddOffsetsToTxn", func() kmsg.Request {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = t.id, pid, epoch, gm.Group
		return req
	}, func(r kmsg.Response) int16 { return r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode })
	if err == nil {
		t.coordKnows = true
	}
	t.addMu.Unlock()
	if err != nil {
		if errors.Is(err, ErrFenced) {
			t.setFatal(err)
		}
		return fmt.Errorf("keel: SendOffsetsToTxn: %w", err)
	}
	if err := t.txnOffsetCommit(ctx, pid, epoch, offsets, gm); err != nil {
		if errors.Is(err, ErrFenced) {
			t.setFatal(err)
		}
		return fmt.Errorf("keel: SendOffsetsToTxn: %w", err)
	}
	return nil
}

// txnOffsetCommit sends TxnOffsetCommit to the group's coordinator,
// retrying while it moves or loads.
func (t *txnState) txnOffsetCommit(ctx context.Context, pid int64, epoch int16, offsets map[TopicPartition]txnOffset, gm GroupMetadata) error {
	c := t.p.client
	return wait.Retry(ctx, wait.Backoff{Min: 20 * time.Millisecond, Max: time.Second}, 0, func(int) (bool, error) {
		b, err := c.meta.Coordinator(ctx, meta.GroupCoordinator, gm.Group)
		if err != nil {
			return ctx.Err() != nil || !errs.IsRetriable(err), err
		}
		cn, err := c.pool.Get(ctx, b.Addr(), conn.General)
		if err != nil {
			return ctx.Err() != nil, err
		}
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = t.id, gm.Group, pid, epoch
		req.Generation, req.MemberID = gm.Generation, gm.MemberID
		if gm.InstanceID != "" {
			req.InstanceID = &gm.InstanceID
		}
		byTopic := map[string]int{}
		for tp, o := range offsets {
			i, ok := byTopic[tp.Topic]
			if !ok {
				i = len(req.Topics)
				byTopic[tp.Topic] = i
				rt := kmsg.NewTxnOffsetCommitRequestTopic()
				rt.Topic = tp.Topic
				req.Topics = append(req.Topics, rt)
			}
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = tp.Partition, o.at, -1
			if o.metadata != "" {
				md := o.metadata
				rp.Metadata = &md
			}
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		}
		resp, err := cn.Request(ctx, req)
		if err != nil {
			return ctx.Err() != nil, err
		}
		for _, rt := range resp.(*kmsg.TxnOffsetCommitResponse).Topics {
			for _, rp := range rt.Partitions {
				ec := rp.ErrorCode
				if ec == errs.CodeNone {
					continue
				}
				kerr := errs.FromCode(ec, b.Addr(), "").(*errs.Error)
				kerr.Detail = fmt.Sprintf("TxnOffsetCommit of %s/%d for group %q in generation %d", rt.Topic, rp.Partition, gm.Group, gm.Generation)
				switch ec {
				case errs.CodeProducerFenced, errs.CodeInvalidProducerEpoch, errs.CodeTransactionCoordinatorFenced:
					kerr.Err = ErrFenced
					return true, kerr
				case errs.CodeIllegalGeneration, errs.CodeUnknownMemberId, errs.CodeFencedInstanceId, errs.CodeRebalanceInProgress:
					kerr.Err = ErrTxnOffsetsFenced
					return true, kerr
				case errs.CodeNotCoordinator, errs.CodeCoordinatorNotAvailable:
					c.meta.InvalidateCoordinator(meta.GroupCoordinator, gm.Group)
					return false, kerr
				case errs.CodeCoordinatorLoadInProgress, errs.CodeConcurrentTransactions, errs.CodeUnknownTopicOrPartition:
					return false, kerr
				}
				return !kerr.Retriable, kerr
			}
		}
		return true, nil
	})
}
