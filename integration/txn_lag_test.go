package integration

// The read_committed lag of 1 (issue 13): a group that read a
// transactional partition to its end commits the end, past the last
// commit or abort marker, so admin Lag shows 0. Checked on every path
// that commits: Run (in order, Parallel, ExactlyOnce), GroupPoller, and the
// direct Consumer's position. The input interleaves committed and aborted
// transactions and is written while the group reads, so positions move
// both with records and by fetches that hold only markers or aborted data.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// lagInput writes txns transactions of per records each to topic, every
// second one aborted, the last one aborted too, and returns the committed
// values.
func lagInput(t *testing.T, ctx context.Context, c *keel.Client, topic string, txns, per int) []string {
	t.Helper()
	var want []string
	p := newTxnProducer(t, c, "lag-src-"+topic)
	for i := range txns {
		commit := i%2 == 0 && i != txns-1
		vals := txnValues(fmt.Sprintf("t%d", i), per)
		if err := lagTxn(ctx, p, topic, vals, commit); err != nil {
			t.Fatal(err)
		}
		if commit {
			want = append(want, vals...)
		}
	}
	return want
}

func lagTxn(ctx context.Context, p *keel.Producer, topic string, vals []string, commit bool) error {
	if err := p.BeginTxn(); err != nil {
		return err
	}
	produceTxn(ctx, p, topic, vals)
	if !commit {
		return p.AbortTxn(ctx)
	}
	return p.CommitTxn(ctx)
}

// checkNoLag: admin Lag reports 0 for every partition of topic, with the
// committed offset at the end.
func checkNoLag(t *testing.T, ctx context.Context, c *keel.Client, group, topic string, partitions int) {
	t.Helper()
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, r := range rows {
		if r.Topic != topic {
			continue
		}
		seen++
		if r.Lag != 0 || r.Committed != r.End || r.NoCommit {
			t.Errorf("%s/%d: committed %d, end %d, lag %d (no commit %v)", r.Topic, r.Partition, r.Committed, r.End, r.Lag, r.NoCommit)
		}
	}
	if seen != partitions {
		t.Errorf("lag rows for %d partitions of %s, want %d", seen, topic, partitions)
	}
}

// collector gathers the values a consumer got.
type collector struct {
	mu   sync.Mutex
	vals []string
}

func (c *collector) add(v string) {
	c.mu.Lock()
	c.vals = append(c.vals, v)
	c.mu.Unlock()
}

func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.vals...)
}

// waitCount waits under ctx until c holds n values.
func (c *collector) waitCount(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for len(c.snapshot()) < n {
		select {
		case <-ctx.Done():
			t.Fatalf("got %d records, want %d: %v", len(c.snapshot()), n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestReadCommittedGroupCommitsPastMarkers(t *testing.T) {
	const partitions, txns, per = 3, 8, 30
	for _, mode := range []string{"run", "parallel", "exactly-once", "poll"} {
		t.Run(mode, func(t *testing.T) {
			in, out := "lag-in-"+mode, "lag-out-"+mode
			cl := startCluster(t, keeltest.Topic(in, partitions), keeltest.Topic(out, partitions))
			c := newClient(t, cl)
			ctx := testCtx(t, 90*time.Second)
			group := "lag-" + mode
			got := &collector{}
			opts := fastGroup(keel.ReadCommitted())
			var closeGroup func(context.Context) error
			done := make(chan error, 1)
			if mode == "poll" {
				g, err := keel.NewGroupPoller(c, group, []string{in}, opts...)
				if err != nil {
					t.Fatal(err)
				}
				pctx, stop := context.WithCancel(ctx)
				go func() {
					for pctx.Err() == nil {
						msgs, err := g.Poll(pctx)
						if err != nil && pctx.Err() == nil {
							done <- err
							return
						}
						for _, m := range msgs {
							got.add(string(m.Value))
						}
						if err := g.MarkProcessed(msgs...); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
				closeGroup = func(ctx context.Context) error { stop(); <-done; return g.Close(ctx) }
			} else {
				h := keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
					got.add(string(m.Value))
					return nil
				})
				switch mode {
				case "parallel":
					opts = append(opts, keel.Parallel(keel.KeyOrder, 4, 12))
				case "exactly-once":
					p := newTxnProducer(t, c, "lag-eos")
					opts = append(opts, keel.ExactlyOnce(p, keel.TxnEvery(100*time.Millisecond, 0)))
					fwd := transform(out)
					h = func(ctx context.Context, m *keel.Message) error {
						got.add(string(m.Value))
						return fwd(ctx, m)
					}
				}
				g, err := keel.NewGroupConsumer(c, group, []string{in}, opts...)
				if err != nil {
					t.Fatal(err)
				}
				rctx, stop := context.WithCancel(ctx)
				go func() { done <- g.Run(rctx, h) }()
				closeGroup = func(ctx context.Context) error { err := g.Close(ctx); stop(); <-done; return err }
			}
			want := lagInput(t, ctx, c, in, txns, per)
			got.waitCount(t, ctx, len(want))
			waitCommitted(t, ctx, c, group, in)
			checkNoLag(t, ctx, c, group, in, partitions)
			if err := closeGroup(ctx); err != nil {
				t.Errorf("close: %v", err)
			}
			handled := got.snapshot()
			if mode == "exactly-once" {
				// An aborted transaction (a TxnOffsetCommit refused
				// by a rebalance, say) has its records handled again:
				// the outputs are exact, checked below; the handler
				// calls are at least once.
				handled = firstOccurrences(handled)
			}
			checkExactly(t, mode, handled, want)
			checkCommittedAtEnd(t, ctx, c, group, in)
			if mode == "exactly-once" {
				outs := make([]string, len(want))
				for i, v := range want {
					outs[i] = "out:" + v
				}
				checkExactly(t, "outputs", messageValues(readAll(t, ctx, c, out, partitions, len(outs), true)), outs)
			}
		})
	}
}

// firstOccurrences is vals without repeats, each where it first came.
func firstOccurrences(vals []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range vals {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// The direct Consumer's position reaches the end past the markers once it
// read everything: what a caller committing positions itself commits.
func TestReadCommittedConsumerPositionPastMarkers(t *testing.T) {
	const partitions = 3
	cl := startCluster(t, keeltest.Topic("lag-direct", partitions))
	c := newClient(t, cl)
	ctx := testCtx(t, 60*time.Second)
	want := lagInput(t, ctx, c, "lag-direct", 6, 20)
	checkExactly(t, "direct consumer", readToEnd(t, ctx, c, "lag-direct"), want)
}

// readToEnd reads topic read_committed with a direct consumer until its
// position on every partition is the partition's end (past the last
// marker; a transaction still open holds it below), and returns the values
// read.
func readToEnd(t *testing.T, ctx context.Context, c *keel.Client, topic string) []string {
	t.Helper()
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.EndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := keel.NewConsumer(c, keel.ReadCommitted(), keel.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(context.Background())
	for tp := range ends {
		cons.Assign(tp, keel.AtEarliest())
	}
	var got []string
	atEnd := func() bool {
		for tp, end := range ends {
			if pos, ok := cons.Position(tp); !ok || pos != end {
				return false
			}
		}
		return true
	}
	for !atEnd() {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		msgs, err := cons.Poll(pctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			t.Fatalf("positions never reached the ends %v (got %d records)", ends, len(got))
		}
		got = append(got, messageValues(msgs)...)
	}
	return got
}

// TestTxnPollPositionCommitsPastMarkers: Poll-mode consume-transform-
// produce sending GroupPoller.Position as the offsets commits each
// partition's end past the input's last commit marker (m.Offset + 1 would
// stop on it). The input is written before the group starts, so the
// marker after a partition's last records comes in the same fetch.
func TestTxnPollPositionCommitsPastMarkers(t *testing.T) {
	const in, out, group, partitions = "pos-in", "pos-out", "pos", 3
	cl := startCluster(t, keeltest.Topic(in, partitions), keeltest.Topic(out, partitions))
	c := newClient(t, cl)
	ctx := testCtx(t, 60*time.Second)
	src := newTxnProducer(t, c, "pos-src")
	var want []string
	for i := range 5 {
		vals := txnValues(fmt.Sprintf("t%d", i), 40)
		commit := i%2 == 0 // the last one commits
		if err := lagTxn(ctx, src, in, vals, commit); err != nil {
			t.Fatal(err)
		}
		if commit {
			for _, v := range vals {
				want = append(want, "out:"+v)
			}
		}
	}
	g, err := keel.NewGroupPoller(c, group, []string{in}, keel.ResetOffset(keel.ResetEarliest), keel.ReadCommitted())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	p := newTxnProducer(t, c, "pos-ctp")
	for handled := 0; handled < len(want); {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		msgs, _ := g.Poll(pctx)
		cancel()
		if ctx.Err() != nil {
			t.Fatalf("handled %d of %d", handled, len(want))
		}
		if len(msgs) == 0 {
			continue
		}
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		offsets := map[keel.TopicPartition]int64{}
		for _, m := range msgs {
			tp := keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}
			if _, ok := offsets[tp]; !ok {
				pos, ok := g.Position(tp)
				if !ok || pos <= m.Offset {
					t.Fatalf("Position(%v) = %d, %v after Poll returned offset %d", tp, pos, ok, m.Offset)
				}
				offsets[tp] = pos
			}
			p.ProduceFunc(ctx, &keel.Message{Topic: out, Key: m.Key, Value: append([]byte("out:"), m.Value...)}, func(keel.Delivery) {})
		}
		if err := p.SendOffsetsToTxn(ctx, offsets, g.GroupMetadata()); err != nil {
			t.Fatal(err)
		}
		if err := p.CommitTxn(ctx); err != nil {
			t.Fatal(err)
		}
		handled += len(msgs)
	}
	checkCommittedAtEnd(t, ctx, c, group, in)
	checkNoLag(t, ctx, c, group, in, partitions)
	checkExactly(t, "read_committed output", messageValues(readAll(t, ctx, c, out, partitions, len(want), true)), want)
	if _, ok := g.Position(keel.TopicPartition{Topic: "not-owned", Partition: 0}); ok {
		t.Error("Position of a partition the member does not own is ok")
	}
}
