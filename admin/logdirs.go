package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
)

// ReplicaLog is one replica of a partition as its broker's log directory
// holds it (DescribeLogDirs).
type ReplicaLog struct {
	Broker int32
	Dir    string // the log directory on the broker
	Size   int64  // bytes on disk
	// OffsetLag is how far this replica is behind the leader's high
	// watermark (0 for the leader, and for a caught-up follower).
	OffsetLag int64
}

// LogDirs asks every broker for the log directories of topics and returns,
// per partition, its replicas with their size on disk, sorted by broker.
// Every broker is asked (each knows only the replicas it holds); one that
// cannot be asked fails the call with an error naming it, rather than
// under-report a partition's replicas.
func (a *Admin) LogDirs(ctx context.Context, topics ...string) (map[keel.TopicPartition][]ReplicaLog, error) {
	if ctx == nil {
		return nil, errs.NilContext("admin.Admin.LogDirs")
	}
	topics = dedupe(topics)
	if len(topics) == 0 {
		return nil, errors.New("admin: LogDirs needs at least one topic")
	}
	if err := a.requireTopics(ctx, topics); err != nil {
		return nil, err
	}
	var want []kmsg.DescribeLogDirsRequestTopic
	for _, name := range topics {
		t, err := a.refreshedTopic(ctx, name)
		if err != nil {
			return nil, err
		}
		rt := kmsg.NewDescribeLogDirsRequestTopic()
		rt.Topic = name
		for _, p := range t.Partitions {
			rt.Partitions = append(rt.Partitions, p.ID)
		}
		want = append(want, rt)
	}
	s := a.meta.Current()
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		out      = make(map[keel.TopicPartition][]ReplicaLog)
		failures []error
	)
	for _, b := range s.Brokers {
		wg.Go(func() {
			// A request of its own per broker: sending sets its version.
			req := kmsg.NewPtrDescribeLogDirsRequest()
			req.Topics = want
			got, err := a.logDirsOf(ctx, b, req, topics)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err)
				return
			}
			for tp, r := range got {
				out[tp] = append(out[tp], r...)
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		slices.SortFunc(failures, func(x, y error) int { return strings.Compare(x.Error(), y.Error()) })
		return nil, errors.Join(failures...)
	}
	for tp := range out {
		slices.SortFunc(out[tp], func(x, y ReplicaLog) int { return int(x.Broker) - int(y.Broker) })
	}
	return out, nil
}

func (a *Admin) logDirsOf(ctx context.Context, b meta.Broker, req *kmsg.DescribeLogDirsRequest, topics []string) (map[keel.TopicPartition][]ReplicaLog, error) {
	r := a.newRetry()
	for {
		var last error
		kresp, err := a.send(ctx, b.Addr(), req)
		switch {
		case err != nil && !retriable(ctx, err):
			return nil, fmt.Errorf("describing the log directories of broker %d (%s): %w", b.ID, b.Addr(), err)
		case err != nil:
			last = err
		default:
			resp := kresp.(*kmsg.DescribeLogDirsResponse)
			if resp.ErrorCode != errs.CodeNone {
				e := codeErr(resp.ErrorCode, b.Addr(), nil, fmt.Sprintf("describing the log directories of broker %d", b.ID))
				if !e.Retriable {
					return nil, e
				}
				last = e
				break
			}
			out := make(map[keel.TopicPartition][]ReplicaLog)
			for _, d := range resp.Dirs {
				if d.ErrorCode != errs.CodeNone {
					// A failed directory (KAFKA_STORAGE_ERROR) holds
					// no readable replicas; the others still count.
					a.logger.Warn("keel admin: a broker's log directory is unavailable", "broker", b.ID, "dir", d.Dir, "err", errs.Lookup(d.ErrorCode).Name)
					continue
				}
				for _, t := range d.Topics {
					if !slices.Contains(topics, t.Topic) {
						continue
					}
					for _, p := range t.Partitions {
						if p.IsFuture {
							continue // a move in progress, not the replica in use
						}
						tp := keel.TopicPartition{Topic: t.Topic, Partition: p.Partition}
						out[tp] = append(out[tp], ReplicaLog{Broker: b.ID, Dir: d.Dir, Size: p.Size, OffsetLag: p.OffsetLag})
					}
				}
			}
			return out, nil
		}
		if err := r.wait(ctx, last); err != nil {
			return nil, fmt.Errorf("describing the log directories of broker %d (%s): %w", b.ID, b.Addr(), err)
		}
	}
}
