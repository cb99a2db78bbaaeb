package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/keeltest"
)

// readTopic reads every record of topic from its leaders with raw Fetch
// requests and keel's batch decoder, independent of any consumer code.
func readTopic(t *testing.T, cl *keeltest.Cluster, topic string) map[int32][]record.Record {
	t.Helper()
	return readTopicWith(t, cl, topic, connConfig())
}

// readTopicWith is readTopic over connections made with cfg (SASL, TLS).
func readTopicWith(t *testing.T, cl *keeltest.Cluster, topic string, cfg *conn.Config) map[int32][]record.Record {
	t.Helper()
	ctx := testCtx(t, 60*time.Second)
	pool := conn.NewPool(cfg, conn.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}, 0)
	defer pool.Close()
	out := make(map[int32][]record.Record)
	dec := record.NewDecompressor(256 << 20)
	for p := int32(0); p < int32(cl.Partitions(topic)); p++ {
		hwm := cl.HighWatermark(topic, p)
		c, err := pool.Get(ctx, cl.AddrOf(cl.Leader(topic, p)), conn.Fetch)
		if err != nil {
			t.Fatal(err)
		}
		var offset int64
		for offset < hwm {
			req := kmsg.NewPtrFetchRequest()
			req.ReplicaID = -1
			req.MaxWaitMillis = 100
			req.MaxBytes = 50 << 20
			req.SessionEpoch = -1
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition = p
			rp.FetchOffset = offset
			rp.PartitionMaxBytes = 10 << 20
			rp.CurrentLeaderEpoch = -1
			rp.LogStartOffset = -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			resp, err := c.Request(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			fr := resp.(*kmsg.FetchResponse)
			if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 1 {
				t.Fatalf("fetch answer shape: %+v", fr)
			}
			fp := fr.Topics[0].Partitions[0]
			if fp.ErrorCode != 0 {
				t.Fatalf("fetch %s/%d@%d: error code %d", topic, p, offset, fp.ErrorCode)
			}
			var rd record.Reader
			rd.Reset(fp.RecordBatches)
			progressed := false
			for {
				var b record.Batch
				if err := rd.Next(&b); err != nil {
					if errors.Is(err, io.EOF) {
						break
					}
					t.Fatalf("decoding %s/%d: %v", topic, p, err)
				}
				recs, err := b.AppendRecords(nil, dec)
				if err != nil {
					t.Fatalf("decoding records of %s/%d: %v", topic, p, err)
				}
				for _, r := range recs {
					if r.Offset >= offset {
						out[p] = append(out[p], r)
					}
				}
				if next := b.NextOffset(); next > offset {
					offset = next
					progressed = true
				}
			}
			if !progressed {
				t.Fatalf("fetch of %s/%d at %d made no progress (hwm %d)", topic, p, offset, hwm)
			}
		}
	}
	return out
}

// checkReport is what the checker found.
type checkReport struct {
	Expected, Found, Lost, Duplicated, Reordered int
	// Unknown counts records reported with an unknown outcome (written
	// or not); Lost does not count them when they are absent.
	Unknown, UnknownWritten int
}

func (r checkReport) String() string {
	return fmt.Sprintf("expected %d, found %d: lost %d, duplicated %d, reordered %d; outcome unknown %d (%d of them written)",
		r.Expected, r.Found, r.Lost, r.Duplicated, r.Reordered, r.Unknown, r.UnknownWritten)
}

// checkExactlyOnce counts, for records whose value is "<id>" with ids
// 0..n-1 produced in increasing order per partition, how many are missing,
// duplicated, or out of produce order within their partition.
func checkExactlyOnce(stored map[int32][]record.Record, n int) checkReport {
	return checkExactlyOnceMaybe(stored, n, nil)
}

// checkExactlyOnceMaybe is checkExactlyOnce where the ids in maybe had
// their outcome reported unknown: each may be stored once or not at all,
// never twice.
func checkExactlyOnceMaybe(stored map[int32][]record.Record, n int, maybe map[int]bool) checkReport {
	rep := checkReport{Expected: n, Unknown: len(maybe)}
	seen := make([]int, n)
	for _, recs := range stored {
		last := -1
		for _, r := range recs {
			id, err := strconv.Atoi(string(r.Value))
			if err != nil || id < 0 || id >= n {
				rep.Duplicated++ // garbage counts against us
				continue
			}
			rep.Found++
			seen[id]++
			if seen[id] == 1 {
				if id < last {
					rep.Reordered++
				}
				last = max(last, id)
			}
		}
	}
	for id, c := range seen {
		if maybe[id] && c == 1 {
			rep.UnknownWritten++
		}
		switch {
		case c == 0 && maybe[id]:
		case c == 0:
			rep.Lost++
		case c > 1:
			rep.Duplicated += c - 1
		}
	}
	return rep
}

func sortedPartitions(m map[int32][]record.Record) []int32 {
	var ps []int32
	for p := range m {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

var _ = context.Background
