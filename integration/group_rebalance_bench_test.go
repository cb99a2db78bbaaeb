package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// BenchmarkGroupRebalanceFourthMember measures, per group protocol, how
// long a 3-member group of 24 partitions takes to settle at 6/6/6/6 once a
// 4th member starts: from NewGroupConsumer+Run of the new member until
// every member holds its 6 partitions (offsets fetched, processing
// started). Each iteration uses a new group on one cluster. Timings:
//
//   - hb200ms: the classic members heartbeat every 200 ms, and the broker
//     tells consumer-protocol members to (group.consumer.heartbeat.interval.ms);
//   - defaults: Java's defaults: classic heartbeat.interval.ms 3 s,
//     Kafka's group.consumer.heartbeat.interval.ms 5 s.
//
// It reports ms/rebalance, the partitions the three old members gave up
// (revoked/rebalance; 6 is the minimum), and ms-unowned/rebalance: the
// longest time a moved partition was processed by nobody (from its old
// owner's OnRevoked to the new owner's OnAssigned). Not a test: figures go in
// docs/BENCHMARKS.md.
//
//	go test ./integration -run '^$' -bench BenchmarkGroupRebalanceFourthMember -benchtime 6x
func BenchmarkGroupRebalanceFourthMember(b *testing.B) {
	for _, timing := range []struct {
		name string
		hb   time.Duration
	}{{"hb200ms", 200 * time.Millisecond}, {"defaults", 0}} {
		for _, p := range groupProtocols {
			b.Run(p.name+"/"+timing.name, func(b *testing.B) {
				brokerHB := "5000"
				classicHB := 3 * time.Second
				cycle := 5 * time.Second // the interval the members heartbeat at
				if p.name == "classic" {
					cycle = classicHB
				}
				if timing.hb > 0 {
					brokerHB = fmt.Sprint(timing.hb.Milliseconds())
					classicHB, cycle = timing.hb, timing.hb
				}
				cl := keeltest.NewCluster(b, keeltest.Brokers(3), keeltest.Topic("orders", 24),
					keeltest.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": brokerHB}))
				c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close(context.Background())
				var total, unowned time.Duration
				var revoked atomic.Int64
				for i := range b.N {
					// Iteration i of N joins at the middle of the i-th
					// N-th of a heartbeat cycle after the group settled, so
					// the figures average over where in the old members'
					// cycle the join lands instead of always right after
					// their heartbeat.
					phase := cycle * time.Duration(2*i+1) / time.Duration(2*b.N)
					settle, gap := rebalanceOnce(b, c, fmt.Sprintf("rebalance-%s-%s-%d", p.name, timing.name, i), p.opts, classicHB, phase, &revoked)
					total += settle
					unowned += gap
				}
				b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/rebalance")
				b.ReportMetric(float64(unowned.Milliseconds())/float64(b.N), "ms-unowned/rebalance")
				b.ReportMetric(float64(revoked.Load())/float64(b.N), "revoked/rebalance")
				b.ReportMetric(0, "ns/op") // the iteration includes setup: ms/rebalance is the figure
			})
		}
	}
}

// rebalanceOnce settles 3 members on a new group, waits phase, then
// times a 4th joining; it counts into revoked the partitions the first three give up,
// and returns the time to settle and the longest a moved partition had no
// owner.
func rebalanceOnce(b *testing.B, c *keel.Client, group string, proto []keel.GroupOption, hb, phase time.Duration, revoked *atomic.Int64) (settle, unowned time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var counting atomic.Bool
	nop := keel.HandlerFunc(func(context.Context, *keel.Message) error { return nil })
	type running struct {
		g    *keel.GroupConsumer
		done chan error
	}
	var ms []running
	start := func(opts ...keel.GroupOption) {
		g, err := keel.NewGroupConsumer(c, group, []string{"orders"}, with(proto, append([]keel.GroupOption{
			keel.HeartbeatInterval(hb), keel.SessionTimeout(max(10*hb, 6*time.Second)),
		}, opts...)...)...)
		if err != nil {
			b.Fatal(err)
		}
		r := running{g, make(chan error, 1)}
		go func() { r.done <- g.Run(ctx, nop) }()
		ms = append(ms, r)
	}
	defer func() {
		for _, r := range ms {
			cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
			r.g.Close(cctx)
			ccancel()
			<-r.done
		}
	}()
	settled := func(each int) bool {
		for _, r := range ms {
			if len(r.g.Assigned()) != each {
				return false
			}
		}
		return true
	}
	wait := func(each int) {
		for !settled(each) {
			if ctx.Err() != nil {
				b.Fatalf("group %s did not settle at %d partitions each", group, each)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	var mu sync.Mutex
	revokedAt := map[keel.TopicPartition]time.Time{}
	countRevoked := keel.OnRevoked(func(tps []keel.TopicPartition) {
		if counting.Load() {
			revoked.Add(int64(len(tps)))
			mu.Lock()
			for _, tp := range tps {
				revokedAt[tp] = time.Now()
			}
			mu.Unlock()
		}
	})
	gap := keel.OnAssigned(func(tps []keel.TopicPartition) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, tp := range tps {
			if at, ok := revokedAt[tp]; ok {
				unowned = max(unowned, now.Sub(at))
			}
		}
	})
	for range 3 {
		start(countRevoked)
	}
	wait(8)
	time.Sleep(phase)
	counting.Store(true)
	t0 := time.Now()
	start(gap)
	wait(6)
	settle = time.Since(t0)
	mu.Lock()
	defer mu.Unlock()
	return settle, unowned
}
