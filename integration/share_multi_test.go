package integration

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// TestShareGroupManyPartitionsOnManyBrokers: six partitions led by three
// brokers, so each member runs a share session per broker and must send
// each acknowledgement to the session its record came from. Three members
// process 6000 keyed records; each is handled once and accepted once, and
// the group ends done in every partition.
func TestShareGroupManyPartitionsOnManyBrokers(t *testing.T) {
	const n, parts = 6000, 6
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topic("multi", parts), keeltest.BrokerConfigs(map[string]string{
		"group.share.heartbeat.interval.ms": "100",
	}))
	leaders := make(map[int32]bool)
	for p := range int32(parts) {
		leaders[cl.Leader("multi", p)] = true
	}
	if len(leaders) < 2 {
		t.Skipf("kfake put every partition on one broker (%v); nothing to test", leaders)
	}
	c := newClient(t, cl)
	ctx := testCtx(t, 90*time.Second)
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	starts := make(map[keel.TopicPartition]int64)
	for p := range int32(parts) {
		starts[keel.TopicPartition{Topic: "multi", Partition: p}] = 0
	}
	if err := adm.AlterShareGroupOffsets(ctx, "g", starts); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	handled := make(map[int]int)                            // id -> handler calls
	accepted := make(map[keel.TopicPartition]map[int64]int) // broker-confirmed
	var failed []error
	total := 0
	for i := range 3 {
		sc, err := keel.NewShareConsumer(newClient(t, cl), "g", []string{"multi"}, keel.ShareConcurrency(4), keel.ShareMaxRecords(100),
			keel.OnShareAcknowledged(func(r keel.ShareAckResult) {
				mu.Lock()
				defer mu.Unlock()
				if r.Err != nil {
					failed = append(failed, r.Err)
					return
				}
				if accepted[r.TopicPartition] == nil {
					accepted[r.TopicPartition] = make(map[int64]int)
				}
				for _, o := range r.Offsets {
					accepted[r.TopicPartition][o]++
					total++
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			done <- sc.Run(context.Background(), keel.HandlerFunc(func(_ context.Context, m *keel.Message) error {
				id, err := strconv.Atoi(string(m.Value))
				if err != nil {
					return keel.Permanent(err)
				}
				mu.Lock()
				handled[id]++
				mu.Unlock()
				return nil
			}))
		}()
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := sc.Close(cctx); err != nil {
				t.Errorf("member %d: Close: %v", i, err)
			}
			if err := <-done; err != nil {
				t.Errorf("member %d: Run: %v", i, err)
			}
		})
	}
	produceIDs(t, ctx, newProducer(t, c), "multi", n, func(i int) []byte { return []byte(fmt.Sprint("k", i%97)) })
	for {
		mu.Lock()
		got := total
		mu.Unlock()
		if got >= n {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records accepted", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Every partition is done up to its end.
	for {
		offs, err := adm.ShareGroupOffsets(ctx, "g", "multi")
		doneParts := 0
		for p := range int32(parts) {
			tp := keel.TopicPartition{Topic: "multi", Partition: p}
			if err == nil && offs[tp].StartOffset == cl.HighWatermark("multi", p) {
				doneParts++
			}
		}
		if doneParts == parts {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("share group offsets %v (%v) do not reach the ends", offs, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for id := range n {
		if handled[id] != 1 {
			t.Errorf("record %d handled %d times", id, handled[id])
		}
	}
	sum := 0
	for tp, offs := range accepted {
		for o, k := range offs {
			if k != 1 {
				t.Errorf("%v offset %d accepted %d times", tp, o, k)
			}
		}
		sum += len(offs)
	}
	if sum != n || len(failed) != 0 {
		t.Errorf("%d distinct records accepted, want %d; failed acks %v", sum, n, failed)
	}
}
