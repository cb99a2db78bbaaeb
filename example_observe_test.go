package keel_test

import (
	"context"
	"log"
	"time"

	"github.com/keel-go/keel"
)

// Watching a group consumer: stalls (a handler stuck on one record, a
// partition not moving while it has lag) arrive on Events(), and Stats
// give per-partition lag for a status page or a log line.
func ExampleGroupConsumer_Stats() {
	ctx := context.Background()
	client, err := keel.NewClient(keel.SeedBrokers(seeds()), keel.StallAfter(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)
	g, err := keel.NewGroupConsumer(client, "billing", []string{"orders"})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for ev := range g.Events() { // closed by Close
			if st, ok := ev.(keel.Stall); ok {
				log.Printf("stalled: %v", st) // partition, offset, how long
			}
		}
	}()
	runCtx, stop := context.WithTimeout(ctx, time.Hour)
	defer stop()
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			s := g.Stats()
			for _, p := range s.Partitions {
				log.Printf("%v: end %d, processed to %d, committed %d, lag %d", p.TopicPartition, p.HighWatermark, p.Position, p.Committed, p.Lag)
			}
			if s.HandlerCalls > 0 {
				log.Printf("%d handler calls, ~%v each", s.HandlerCalls, s.HandlerTime/time.Duration(s.HandlerCalls))
			}
		}
	}()
	err = g.Run(runCtx, keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		return nil // process m
	}))
	if err != nil && runCtx.Err() == nil {
		log.Print(err)
	}
	g.Close(ctx)
}
