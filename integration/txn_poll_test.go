package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// TestTxnPollConsumeTransformProduce: a GroupPoller's records are
// transformed into an output topic inside transactions whose input
// offsets go with them (SendOffsetsToTxn, KIP-447 metadata). The first
// transaction (and every third) is aborted and its partitions rewound to where the last
// commit left them. A read_committed reader sees every input's output
// exactly once, in order per key, and the group's committed offsets equal
// the input's end.
func TestTxnPollConsumeTransformProduce(t *testing.T) {
	const in, out, group, n = "ctp-in", "ctp-out", "ctp", 600
	cl := startCluster(t, keeltest.Topic(in, 3), keeltest.Topic(out, 3))
	c := newClient(t, cl)
	ctx := testCtx(t, 90*time.Second)

	src, err := keel.NewProducer(c)
	if err != nil {
		t.Fatal(err)
	}
	var inputs []*keel.Message
	var want []string
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("k%d-in-%d", i%7, i)
		inputs = append(inputs, &keel.Message{Topic: in, Key: []byte(v[:3]), Value: []byte(v)})
		want = append(want, "out:"+v)
	}
	if _, err := src.SendAll(ctx, inputs...); err != nil {
		t.Fatal(err)
	}
	src.Close(ctx)

	g, err := keel.NewGroupPoller(c, group, []string{in}, keel.ResetOffset(keel.ResetEarliest), keel.ReadCommitted())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	p := newTxnProducer(t, c, "ctp-1")

	committed, aborts := 0, 0
	for round := 1; committed < n && ctx.Err() == nil; round++ {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		msgs, _ := g.Poll(pctx)
		cancel()
		if len(msgs) == 0 {
			continue
		}
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		next := map[keel.TopicPartition]int64{}
		first := map[keel.TopicPartition]int64{}
		for _, m := range msgs {
			tp := keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}
			if _, ok := first[tp]; !ok {
				first[tp] = m.Offset
			}
			next[tp] = m.Offset + 1
			p.ProduceFunc(ctx, &keel.Message{Topic: out, Key: m.Key, Value: append([]byte("out:"), m.Value...)}, func(keel.Delivery) {})
		}
		if round%3 == 1 { // a failed handler: abort and rewind
			aborts++
			if err := p.AbortTxn(ctx); err != nil {
				t.Fatal(err)
			}
			for tp, at := range first {
				if err := g.Seek(ctx, tp, keel.AtOffset(at)); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		if err := p.SendOffsetsToTxn(ctx, next, g.GroupMetadata()); err != nil {
			t.Fatal(err)
		}
		if err := p.CommitTxn(ctx); err != nil {
			t.Fatal(err)
		}
		committed += len(msgs)
	}
	if aborts == 0 {
		t.Fatalf("no transaction was aborted: the rewind went untested")
	}
	t.Logf("%d rounds aborted and rewound", aborts)
	checkExactly(t, "read_committed output", messageValues(readAll(t, ctx, c, out, 3, n, true)), want)
	checkCommittedAtEnd(t, ctx, c, group, in)
}
