package integration

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/keeltest"
	"github.com/keel-go/keel/retry"
)

// retryMember runs one retry.Consumer in the background until stop,
// which closes it gracefully.
type retryMember struct {
	c    *retry.Consumer
	done chan error
}

func startRetryMember(t *testing.T, client *keel.Client, group string, topics []string, h keel.HandlerFunc, opts ...retry.Option) *retryMember {
	t.Helper()
	c, err := retry.NewGroupConsumer(client, group, topics, opts...)
	if err != nil {
		t.Fatal(err)
	}
	m := &retryMember{c: c, done: make(chan error, 1)}
	go func() { m.done <- c.Run(context.Background(), h) }()
	t.Cleanup(func() { m.stop(t) })
	return m
}

func (m *retryMember) stop(t *testing.T) { closeAndWaitRun(t, m.c.Close, m.done) }

// retrySrcPos is where a produced record landed.
type retrySrcPos struct {
	partition int32
	offset    int64
}

// produceIDsAt produces records whose values are ids 0..n-1 and returns
// where each landed.
func retryProduceIDs(t *testing.T, ctx context.Context, p *keel.Producer, topic string, n int, key func(int) []byte) []retrySrcPos {
	t.Helper()
	ch := make(chan keel.Delivery, 4096)
	done := make(chan []retrySrcPos)
	go func() {
		out := make([]retrySrcPos, n)
		for range n {
			d := <-ch
			if d.Err != nil {
				t.Errorf("producing %s: %v", d.Message.Value, d.Err)
				continue
			}
			id, _ := strconv.Atoi(string(d.Message.Value))
			out[id] = retrySrcPos{d.Partition, d.Offset}
		}
		done <- out
	}()
	for i := range n {
		var k []byte
		if key != nil {
			k = key(i)
		}
		p.Produce(ctx, &keel.Message{Topic: topic, Key: k, Value: []byte(strconv.Itoa(i))}, ch)
	}
	select {
	case got := <-done:
		return got
	case <-ctx.Done():
		t.Fatal("deliveries did not all arrive")
		return nil
	}
}

// readAll reads every record of topic (raw fetches, no consumer code) as
// messages, in partition order.
func retryReadAll(t *testing.T, cl *keeltest.Cluster, topic string) []*keel.Message {
	t.Helper()
	var out []*keel.Message
	stored := readTopic(t, cl, topic)
	for _, p := range sortedPartitions(stored) {
		for _, r := range stored[p] {
			out = append(out, retryRawMessage(topic, p, r))
		}
	}
	return out
}

func retryRawMessage(topic string, p int32, r record.Record) *keel.Message {
	return &keel.Message{Topic: topic, Partition: p, Offset: r.Offset, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: time.UnixMilli(r.Timestamp)}
}

// retryLedger is the checker's view of what handlers did.
type retryLedger struct {
	mu        sync.Mutex
	attempts  map[int][]int // attempt numbers handled, per id, in order
	successes map[int]int
	early     []string // handled before the retry-after
	malformed []string
	lateness  []time.Duration // handling time minus retry-after
}

func newRetryLedger() *retryLedger {
	return &retryLedger{attempts: map[int][]int{}, successes: map[int]int{}}
}

// saw notes that the handler got m and returns its id and retry info.
func (l *retryLedger) saw(m *keel.Message) (int, retry.Info) {
	now := time.Now()
	id, err := strconv.Atoi(string(m.Value))
	if err != nil {
		panic(err)
	}
	info, tagged, herr := retry.InfoOf(m)
	l.mu.Lock()
	defer l.mu.Unlock()
	if herr != nil {
		l.malformed = append(l.malformed, herr.Error())
	}
	if tagged {
		if now.Before(info.RetryAfter) {
			l.early = append(l.early, fmt.Sprintf("id %d attempt %d handled %v before its retry-after", id, info.Attempt, info.RetryAfter.Sub(now)))
		}
		l.lateness = append(l.lateness, now.Sub(info.RetryAfter))
	}
	l.attempts[id] = append(l.attempts[id], info.Attempt)
	return id, info
}

func (l *retryLedger) succeeded(id int) {
	l.mu.Lock()
	l.successes[id]++
	l.mu.Unlock()
}

func (l *retryLedger) successCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.successes)
}

// latenessSummary describes how long after their retry-after records
// were handled.
func (l *retryLedger) latenessSummary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.latenessSummaryLocked()
}

func (l *retryLedger) latenessSummaryLocked() string {
	d := append([]time.Duration(nil), l.lateness...)
	if len(d) == 0 {
		return "no retried records"
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return fmt.Sprintf("%d retried attempts handled after their retry-after by: min %v, median %v, p99 %v, max %v",
		len(d), d[0].Round(time.Millisecond), d[len(d)/2].Round(time.Millisecond), d[len(d)*99/100].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
}

// waitFor polls cond until it holds or ctx ends.
func retryWaitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// hwmSum is the number of records in topic.
func retryHWMSum(cl *keeltest.Cluster, topic string) int64 {
	var n int64
	for p := range cl.Partitions(topic) {
		n += cl.HighWatermark(topic, int32(p))
	}
	return n
}
