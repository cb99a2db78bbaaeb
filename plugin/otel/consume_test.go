package otel_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	kotel "github.com/keel-go/keel/plugin/otel"
)

// sendAll produces counts[p] records to partition p of topic through c.
func sendAll(t *testing.T, ctx context.Context, c *keel.Client, topic string, counts []int) {
	t.Helper()
	p, err := keel.NewProducer(c, keel.ManualPartitioner())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for part, n := range counts {
		for i := range n {
			if _, err := p.Send(ctx, &keel.Message{Topic: topic, Partition: int32(part), Value: []byte(fmt.Sprint(part, "-", i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestLagGaugesMatchAdmin: a handler holds at offset `hold` of every
// partition; once the commits land, keel.consumer.committed_lag of each
// partition must equal admin.Lag's, and keel.consumer.lag too (the
// handler holds where the commit is). Without PartitionAttributes a
// second plugin on the same client exports the topic's sum.
func TestLagGaugesMatchAdmin(t *testing.T) {
	cl := keeltestCluster(t, "lagging", 3)
	ctx := testCtx(t, 2*time.Minute)
	tel, telSum := newTelemetry(t), newTelemetry(t)
	c := newClient(t, cl, tel.plugin(t, kotel.PartitionAttributes()), telSum.plugin(t))
	counts := []int{7, 10, 13}
	const hold = 4
	sendAll(t, ctx, c, "lagging", counts)

	release := make(chan struct{})
	var once sync.Once
	unhold := func() { once.Do(func() { close(release) }) }
	defer unhold()
	g, err := keel.NewGroupConsumer(c, "lagger", []string{"lagging"},
		keel.SessionTimeout(6*time.Second), keel.HeartbeatInterval(200*time.Millisecond),
		keel.ResetOffset(keel.ResetEarliest), keel.AutoCommitInterval(100*time.Millisecond),
		keel.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- g.Run(runCtx, keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
			if m.Offset >= hold {
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return nil
		}))
	}()
	defer func() {
		unhold()
		stop()
		<-done
	}()

	a, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	var rows []admin.PartitionLag
	group := func(part int) map[string]string {
		return map[string]string{"messaging.consumer.group.name": "lagger", "messaging.destination.name": "lagging", "messaging.destination.partition.id": fmt.Sprint(part)}
	}
	match := func() bool {
		rows, err = a.Lag(ctx, "lagger")
		if err != nil || len(rows) != len(counts) {
			return false
		}
		rm := tel.collect(t)
		for _, r := range rows {
			v, ok := total(rm, "keel.consumer.committed_lag", group(int(r.Partition)))
			if r.Committed != hold || !ok || v != r.Lag {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	for !match() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !match() {
		t.Fatalf("committed lag never matched admin.Lag %+v (err %v)", rows, err)
	}
	rm := tel.collect(t)
	var sum int64
	for _, r := range rows {
		if want := int64(counts[r.Partition] - hold); r.Lag != want {
			t.Errorf("admin lag of lagging/%d = %d, want %d", r.Partition, r.Lag, want)
		}
		sum += r.Lag
		if v, _ := total(rm, "keel.consumer.lag", group(int(r.Partition))); v != r.Lag {
			t.Errorf("keel.consumer.lag of lagging/%d = %d, want %d", r.Partition, v, r.Lag)
		}
	}
	topicOnly := map[string]string{"messaging.consumer.group.name": "lagger", "messaging.destination.name": "lagging"}
	if v, ok := total(telSum.collect(t), "keel.consumer.committed_lag", topicOnly); !ok || v != sum {
		t.Errorf("topic committed lag without PartitionAttributes = %d (present %v), want the sum %d", v, ok, sum)
	}
}

// TestPollStartProcess: Poll-mode records get their process span from
// StartProcess: child of the send span, in the returned ctx, ended by
// the done func with the processing's error.
func TestPollStartProcess(t *testing.T) {
	cl := keeltestCluster(t, "polled", 1)
	ctx := testCtx(t, time.Minute)
	tel := newTelemetry(t)
	plugin := tel.plugin(t)
	c := newClient(t, cl, plugin)
	const n = 5
	sendAll(t, ctx, c, "polled", []int{n})
	sends := map[trace.SpanID]bool{}
	for _, s := range tel.spansNamed("send polled") {
		sends[s.SpanContext.SpanID()] = true
	}

	g, err := keel.NewGroupPoller(c, "pollers", []string{"polled"}, keel.ResetOffset(keel.ResetEarliest), keel.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(ctx)
	inCtx := map[trace.SpanID]bool{}
	for got := 0; got < n; {
		msgs, err := g.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			pctx, done := plugin.StartProcess(ctx, "pollers", m)
			inCtx[trace.SpanContextFromContext(pctx).SpanID()] = true
			var perr error
			if m.Offset == 0 {
				perr = fmt.Errorf("first record fails")
			}
			done(perr)
			g.MarkProcessed(m)
			got++
		}
	}
	procs := tel.spansNamed("process polled")
	if len(procs) != n {
		t.Fatalf("%d process spans, want %d", len(procs), n)
	}
	failed := 0
	for _, s := range procs {
		if !sends[s.Parent.SpanID()] {
			t.Errorf("process span's parent %v is no send span", s.Parent.SpanID())
		}
		if !inCtx[s.SpanContext.SpanID()] {
			t.Errorf("process span %v was not in StartProcess's ctx", s.SpanContext.SpanID())
		}
		if s.Status.Code != 0 {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d process spans with an error status, want 1", failed)
	}
	if got, _ := total(tel.collect(t), "messaging.process.duration", map[string]string{"messaging.consumer.group.name": "pollers", "error.type": "*errors.errorString"}); got != 1 {
		t.Errorf("failed process durations = %d, want 1", got)
	}
}

// TestUntracedRecordGetsRootProcessSpan: a record produced without the
// plugin (no traceparent) gets a process span of its own trace, with no
// link, and the handler still sees it in ctx.
func TestUntracedRecordGetsRootProcessSpan(t *testing.T) {
	cl := keeltestCluster(t, "bare", 1)
	ctx := testCtx(t, time.Minute)
	sendAll(t, ctx, newClient(t, cl), "bare", []int{3})
	tel := newTelemetry(t)
	seen := consume(t, ctx, newClient(t, cl, tel.plugin(t)), "bare-readers", "bare", 3)
	deadline := time.Now().Add(30 * time.Second)
	for len(tel.spansNamed("process bare")) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	procs := tel.spansNamed("process bare")
	if len(procs) != 3 {
		t.Fatalf("%d process spans, want 3", len(procs))
	}
	ids := map[trace.SpanID]bool{}
	for _, s := range procs {
		ids[s.SpanContext.SpanID()] = true
		if s.Parent.IsValid() || len(s.Links) != 0 {
			t.Errorf("process span of an untraced record: parent %v, links %v; want a root without links", s.Parent, s.Links)
		}
	}
	for v, h := range seen {
		if !ids[h.span.SpanID()] {
			t.Errorf("record %s: handler's ctx span %v is no process span", v, h.span.SpanID())
		}
	}
}

// TestPollLagFromLagHook: a GroupPoller runs no handler hook, so its
// processed position reaches the plugin only through the library's
// sampled LagHook (the committed offset also comes from the commit hook).
// It marks and commits the first `hold` records of each partition; the
// committed lag of each must then equal admin.Lag's, and keel.consumer.lag
// too (the marked position is where the commit is).
func TestPollLagFromLagHook(t *testing.T) {
	cl := keeltestCluster(t, "polllag", 2)
	ctx := testCtx(t, 2*time.Minute)
	tel := newTelemetry(t)
	c := newClient(t, cl, tel.plugin(t, kotel.PartitionAttributes()))
	counts := []int{6, 9}
	const hold = 2
	sendAll(t, ctx, c, "polllag", counts)

	g, err := keel.NewGroupPoller(c, "pollag", []string{"polllag"}, keel.ResetOffset(keel.ResetEarliest),
		keel.FetchMaxWait(100*time.Millisecond), keel.AutoCommitInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(ctx)
	seen := map[int32]int{}
	for got := 0; got < counts[0]+counts[1]; {
		msgs, err := g.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got++
			if m.Offset < hold {
				g.MarkProcessed(m)
			}
			seen[m.Partition]++
		}
	}
	if err := g.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	var rows []admin.PartitionLag
	match := func() bool {
		rows, err = a.Lag(ctx, "pollag")
		if err != nil || len(rows) != len(counts) {
			return false
		}
		rm := tel.collect(t)
		for _, r := range rows {
			want := map[string]string{"messaging.consumer.group.name": "pollag", "messaging.destination.name": "polllag", "messaging.destination.partition.id": fmt.Sprint(r.Partition)}
			v, ok := total(rm, "keel.consumer.committed_lag", want)
			if r.Committed != hold || !ok || v != r.Lag || r.Lag != int64(counts[r.Partition]-hold) {
				return false
			}
			if v, ok := total(rm, "keel.consumer.lag", want); !ok || v != r.Lag {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second) // the hook is sampled about once a second
	for !match() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !match() {
		t.Fatalf("lag gauges never matched admin.Lag %+v (err %v); records seen per partition %v", rows, err, seen)
	}
}
