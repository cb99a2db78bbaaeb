package integration

import (
	"context"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// TestProducerStatsDeliveredBytes: Stats.DeliveredBytes is the key and
// value bytes of the delivered records, every record once (keel counts
// them from its own copy of each record, not from the caller's message).
func TestProducerStatsDeliveredBytes(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 3))
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 300
	msgs := make([]*keel.Message, n)
	want := int64(0)
	for i := range msgs {
		m := &keel.Message{Topic: "t", Value: make([]byte, i%50)}
		if i%3 == 0 {
			m.Key = make([]byte, i%7)
		}
		want += int64(len(m.Key) + len(m.Value))
		msgs[i] = m
	}
	if _, err := p.SendAll(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Delivered != n || st.DeliveredBytes != want {
		t.Fatalf("stats: %d delivered of %d bytes, want %d records of %d bytes", st.Delivered, st.DeliveredBytes, n, want)
	}
}
