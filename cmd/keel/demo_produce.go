package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// demoProduced is what section 2 produced, from the delivery reports.
type demoProduced struct {
	produced, delivered, failed int
	ends                        map[int32]int64 // partition → last delivered offset + 1
}

// How many delivery reports and events the tour prints; the rest are
// counted.
const (
	demoShownReports = 3
	demoShownEvents  = 10
)

// demoProduce shows section 2: per-message delivery reports through
// ProduceFunc, operational events through Events(), a leader moving in
// the middle, and the typed error of a topic that does not exist.
func demoProduce(ctx context.Context, o *demoOut, cluster *keeltest.Cluster) (*demoProduced, error) {
	o.heading("2. Producing %d orders, each with its own delivery report", demoOrders)
	o.say("Reports go to a callback per message (ProduceFunc); connections and metadata")
	o.say("changes go to Events(), read by its own loop (a broker may connect twice: keel")
	o.say("keeps produce traffic on its own connection). Defaults: acks=all, idempotent.")
	o.line("")

	client, err := keel.NewClient(keel.SeedBrokers(cluster.Addr()), keel.ClientID("demo-producer"))
	if err != nil {
		return nil, err
	}
	defer demoCloseClient(client)
	p, err := keel.NewProducer(client)
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			cctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			p.Close(cctx)
			cancel()
		}
	}()

	// The Events() loop: it ends when Close closes the channel.
	events := 0
	eventsDone := make(chan struct{})
	go func() {
		defer close(eventsDone)
		for ev := range p.Events() {
			events++
			if events <= demoShownEvents {
				o.say("event   %s", demoDescribeEvent(ev))
			}
		}
	}()

	res := &demoProduced{ends: make(map[int32]int64)}
	var mu sync.Mutex
	reports := 0
	report := func(d keel.Delivery) {
		mu.Lock()
		defer mu.Unlock()
		reports++
		if d.Err != nil {
			res.failed++
			o.say("report  %s FAILED: %v", d.Message.Key, d.Err)
			return
		}
		res.delivered++
		res.ends[d.Partition] = max(res.ends[d.Partition], d.Offset+1)
		if reports <= demoShownReports {
			o.say("report  %s → %s/%d at offset %d", d.Message.Key, d.Message.Topic, d.Partition, d.Offset)
		}
	}
	for i := range demoOrders {
		if i == demoOrders/2 {
			// Halfway, move a leader: the producer follows it, and the
			// events show the metadata change; no report changes.
			if err := p.Flush(ctx); err != nil {
				return nil, err
			}
			from := cluster.Leader(demoTopic, 0)
			to := (from + 1) % 3
			if err := cluster.MoveLeader(demoTopic, 0, to); err != nil {
				return nil, err
			}
			o.say("(halfway: the leader of %s/0 moves from broker %d to broker %d)", demoTopic, from, to)
		}
		msg := &keel.Message{Topic: demoTopic, Key: fmt.Appendf(nil, "order-%03d", i), Value: fmt.Appendf(nil, `{"order":%d,"amount":%d.%02d}`, i, 5+i%40, i%100)}
		p.ProduceFunc(ctx, msg, report)
		res.produced++
	}
	if err := p.Flush(ctx); err != nil {
		return nil, err
	}

	// A record for a topic that does not exist fails with a typed error
	// that says whether it could have been written.
	_, sendErr := p.Send(ctx, &keel.Message{Topic: "ordres", Value: []byte("typo")})

	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = p.Close(cctx)
	cancel()
	closed = true
	<-eventsDone
	if err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	if reports > demoShownReports {
		o.say("…and %d more reports", reports-demoShownReports)
	}
	if events > demoShownEvents {
		o.say("…and %d more events", events-demoShownEvents)
	}
	o.line("")
	o.say("%d produced: %d delivered, %d failed (every Produce call got exactly one report)", res.produced, res.delivered, res.failed)

	o.line("")
	o.say("Producing to a topic that does not exist (\"ordres\"):")
	var pe *keel.ProduceError
	switch {
	case sendErr == nil:
		return nil, errors.New("a record for a missing topic was reported delivered")
	case errors.Is(sendErr, keel.ErrUnknownTopic) && errors.As(sendErr, &pe):
		o.say("  errors.Is(err, keel.ErrUnknownTopic) = true, outcome: %v (safe to retry)", pe.Outcome)
		o.say("  %v", sendErr)
	default:
		return nil, fmt.Errorf("a record for a missing topic failed with an unexpected error: %w", sendErr)
	}
	return res, nil
}

// demoDescribeEvent says what an operational event means, in a line.
func demoDescribeEvent(ev keel.Event) string {
	switch ev := ev.(type) {
	case keel.BrokerConnected:
		return fmt.Sprintf("BrokerConnected     %s", ev.Broker)
	case keel.BrokerDisconnected:
		return fmt.Sprintf("BrokerDisconnected  %s: %v", ev.Broker, ev.Err)
	case keel.MetadataChanged:
		return fmt.Sprintf("MetadataChanged     %d brokers, %d topics", ev.Brokers, ev.Topics)
	case keel.Warning:
		return fmt.Sprintf("Warning             %s: %v", ev.Message, ev.Err)
	case keel.Throttled:
		return fmt.Sprintf("Throttled           %s by %s for %v", ev.API, ev.Broker, ev.Duration)
	case keel.ErrorEvent:
		return fmt.Sprintf("ErrorEvent          %v", ev.Err)
	case keel.EventsDropped:
		return fmt.Sprintf("EventsDropped       %d", ev.Count)
	case keel.DeliveryEvent:
		return fmt.Sprintf("DeliveryEvent       %s/%d at offset %d", ev.Message.Topic, ev.Partition, ev.Offset)
	}
	return fmt.Sprintf("%T", ev)
}
