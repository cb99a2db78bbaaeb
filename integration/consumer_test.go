package integration

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

func pollN(t *testing.T, ctx context.Context, c *keel.Consumer, n int) []*keel.Message {
	t.Helper()
	var out []*keel.Message
	for len(out) < n {
		msgs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("after %d records: %v", len(out), err)
		}
		out = append(out, msgs...)
	}
	return out
}

func newConsumer(t *testing.T, c *keel.Client, opts ...keel.ConsumerOption) *keel.Consumer {
	t.Helper()
	cons, err := keel.NewConsumer(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cons.Close(context.Background()) })
	return cons
}

// Direct consumption: exact offsets, earliest, latest, by time, Seek,
// Pause and Resume.
func TestDirectConsumer(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(2), keeltest.Topic("t", 2))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.ManualPartitioner())
	ctx := testCtx(t, 30*time.Second)
	for i := range 20 {
		if _, err := p.Send(ctx, &keel.Message{Topic: "t", Partition: 0, Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	for i := 20; i < 30; i++ {
		p.Send(ctx, &keel.Message{Topic: "t", Partition: 0, Value: []byte(fmt.Sprint(i))})
	}
	tp0 := keel.TopicPartition{Topic: "t", Partition: 0}
	cons := newConsumer(t, c)
	cons.Assign(tp0, keel.AtOffset(25))
	if got := pollN(t, ctx, cons, 5); got[0].Offset != 25 || string(got[0].Value) != "25" || len(got) != 5 {
		t.Fatalf("from offset 25 got %d records starting at %d", len(got), got[0].Offset)
	}
	cons.Seek(tp0, keel.AtEarliest())
	if got := pollN(t, ctx, cons, 30); got[0].Offset != 0 || got[29].Offset != 29 {
		t.Fatalf("after Seek to earliest: %d..%d", got[0].Offset, got[len(got)-1].Offset)
	}
	cons.Seek(tp0, keel.AtTime(mid))
	if got := pollN(t, ctx, cons, 10); got[0].Offset != 20 {
		t.Fatalf("by time: started at %d, want 20", got[0].Offset)
	}
	// Latest: only what is produced after.
	tp1 := keel.TopicPartition{Topic: "t", Partition: 1}
	p.Send(ctx, &keel.Message{Topic: "t", Partition: 1, Value: []byte("old")})
	cons.Assign(tp1, keel.AtLatest())
	for {
		if o, ok := cons.Position(tp1); ok && o == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cons.Pause(tp1)
	p.Send(ctx, &keel.Message{Topic: "t", Partition: 1, Value: []byte("new")})
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if msgs, _ := cons.Poll(pctx); len(msgs) != 0 {
		t.Fatalf("paused partition returned %d records", len(msgs))
	}
	cancel()
	cons.Resume(tp1)
	if got := pollN(t, ctx, cons, 1); string(got[0].Value) != "new" {
		t.Fatalf("latest+resume got %q", got[0].Value)
	}
}

// Offset out of range with ResetNone is a clear error; corrupt data is an
// error, never skipped.
func TestDirectConsumerErrors(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 30*time.Second)
	for i := range 5 {
		p.Send(ctx, &keel.Message{Topic: "t", Value: []byte(fmt.Sprint(i))})
	}
	tp := keel.TopicPartition{Topic: "t", Partition: 0}
	strict := newConsumer(t, c, keel.ResetOffset(keel.ResetNone))
	strict.Assign(tp, keel.AtOffset(100))
	_, err := strict.Poll(ctx)
	if !errors.Is(err, keel.ErrOffsetOutOfRange) {
		t.Fatalf("want ErrOffsetOutOfRange, got %v", err)
	}
	t.Logf("out of range: %v", err)

	// Corrupt one byte of the records in the next fetch answer.
	corrupt := newConsumer(t, c)
	var once sync.Once
	cl.Control(kmsg.Fetch, func(req kmsg.Request) (kmsg.Response, error, bool) {
		fr := req.(*kmsg.FetchRequest)
		resp := fr.ResponseKind().(*kmsg.FetchResponse)
		resp.Version = fr.Version
		handled := false
		once.Do(func() {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = "t"
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.HighWatermark = 5
			rp.LastStableOffset = 5
			rp.RecordBatches = corruptBatch(t)
			rt.Partitions = append(rt.Partitions, rp)
			resp.Topics = append(resp.Topics, rt)
			handled = true
		})
		if !handled {
			return nil, nil, false
		}
		return resp, nil, true
	})
	corrupt.Assign(tp, keel.AtEarliest())
	var got error
	for got == nil && ctx.Err() == nil {
		_, got = corrupt.Poll(ctx)
	}
	if !errors.Is(got, keel.ErrCorruptMessage) {
		t.Fatalf("want ErrCorruptMessage for a bad CRC, got %v", got)
	}
}

// corruptBatch builds a valid batch with one record and flips a byte of it.
func corruptBatch(t *testing.T) []byte {
	var rec kmsg.Record
	rec.Value = []byte("x")
	b := kmsg.RecordBatch{Magic: 2, NumRecords: 1, Records: rec.AppendTo(nil), ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1}
	raw := b.AppendTo(nil)
	raw[len(raw)-1] ^= 0xff
	return raw
}

// The manual pattern: Poll, process, MarkProcessed, Commit, with a
// rebalance held until AllowRebalance.
func TestGroupPollBlockRebalance(t *testing.T) {
	cl := groupCluster(t, 2)
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 60*time.Second)
	for i := range 100 {
		p.Send(ctx, &keel.Message{Topic: "orders", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))})
	}
	g, err := keel.NewGroupPoller(c, "manual", []string{"orders"}, fastGroup(keel.BlockRebalanceOnPoll(), keel.AutoCommitInterval(0))...)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	msgs, err := g.Poll(ctx)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("Poll: %d records, %v", len(msgs), err)
	}
	// Another member joins while we hold polled records: the rebalance
	// waits for AllowRebalance.
	other := startMember(t, c, "manual", func(ctx context.Context, m *keel.Message) error { return nil }, fastGroup()...)
	time.Sleep(1500 * time.Millisecond)
	if n := len(g.Assigned()); n != 2 {
		t.Fatalf("a partition was taken while polled records were held (have %d)", n)
	}
	g.MarkProcessed(msgs...)
	if err := g.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	g.AllowRebalance()
	deadline := time.Now().Add(15 * time.Second)
	for len(g.Assigned()) != 1 || len(other.g.Assigned()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after AllowRebalance: %v / %v", g.Assigned(), other.g.Assigned())
		}
		// Keep polling: the manual consumer must keep calling Poll.
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		more, _ := g.Poll(pctx)
		cancel()
		g.MarkProcessed(more...)
		g.AllowRebalance()
	}
}

// Static membership: a member that restarts within the session timeout
// with the same instance id gets its partitions back without a rebalance
// handing them to the other member.
func TestGroupStaticMembershipRestart(t *testing.T) {
	cl := groupCluster(t, 4)
	c := newClient(t, cl)
	noop := func(ctx context.Context, m *keel.Message) error { return nil }
	a := startMember(t, c, "static", noop, fastGroup(keel.InstanceID("a"))...)
	b := startMember(t, c, "static", noop, fastGroup(keel.InstanceID("b"))...)
	deadline := time.Now().Add(15 * time.Second)
	for len(a.g.Assigned())+len(b.g.Assigned()) != 4 || len(a.g.Assigned()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("not balanced: %v / %v", a.g.Assigned(), b.g.Assigned())
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := a.g.Assigned()
	a.stop(t) // static: no LeaveGroup
	time.Sleep(500 * time.Millisecond)
	if n := len(b.g.Assigned()); n != 2 {
		t.Fatalf("b took a's partitions (%d) although a is static and within its session", n)
	}
	a2 := startMember(t, c, "static", noop, fastGroup(keel.InstanceID("a"))...)
	deadline = time.Now().Add(15 * time.Second)
	for len(a2.g.Assigned()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("restarted a got %v", a2.g.Assigned())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if fmt.Sprint(a2.g.Assigned()) != fmt.Sprint(before) {
		t.Errorf("restarted static member got %v, had %v", a2.g.Assigned(), before)
	}
}

// A regex subscription follows topics created later; eager assignors
// (range, roundrobin) work too.
func TestGroupRegexAndEagerAssignors(t *testing.T) {
	for _, assignor := range []string{"range", "roundrobin", "sticky"} {
		t.Run(assignor, func(t *testing.T) {
			cl := groupCluster(t, 3)
			c := newClient(t, cl, keel.MetadataMaxAge(200*time.Millisecond))
			p := newProducer(t, c)
			ctx := testCtx(t, 60*time.Second)
			seen := newProcessed()
			g, err := keel.NewGroupConsumer(c, "rx-"+assignor, nil, fastGroup(keel.SubscribeRegex(regexp.MustCompile(`^ord`)), keel.Assignors(assignor))...)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				done <- g.Run(context.Background(), keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error { seen.add(m); return nil }))
			}()
			defer func() { g.Close(context.Background()); <-done }()
			if err := cl.CreateTopic("ordinals", 2); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for len(g.Assigned()) != 5 {
				if time.Now().After(deadline) {
					t.Fatalf("regex subscription has %v, want 5 partitions of orders and ordinals", g.Assigned())
				}
				c.Metadata(ctx)
				time.Sleep(50 * time.Millisecond)
			}
			for i := range 100 {
				topic := "orders"
				if i%2 == 1 {
					topic = "ordinals"
				}
				p.Produce(ctx, &keel.Message{Topic: topic, Value: []byte(fmt.Sprint(i))}, nil)
			}
			p.Flush(ctx)
			seen.waitAll(t, ctx, 100)
		})
	}
}
