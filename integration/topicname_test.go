package integration

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// Issue 18, bug 9: names Kafka refuses are refused by keel before anything
// is sent, with one error, whatever the broker would accept. kfake auto-
// creates topics on produce, so without the check these records would be
// stored under an illegal name.
func TestIllegalTopicNamesRefusedBeforeSending(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("ok", 1), keeltest.AutoCreateTopics())
	c := newClient(t, cl)
	p := newProducer(t, c, keel.Linger(0))
	ctx := testCtx(t, 20*time.Second)
	names := []string{"..", ".", "bad/topic", "with space", strings.Repeat("x", 250)}
	for _, name := range names {
		start := time.Now()
		d, err := p.Send(ctx, &keel.Message{Topic: name, Value: []byte("v")})
		if !errors.Is(err, keel.ErrInvalidTopic) || d.Outcome() != keel.NotWritten || !errors.Is(err, keel.ErrNotWritten) {
			t.Errorf("produce to %q: want NotWritten matching ErrInvalidTopic, got %v (%v)", name, err, d.Outcome())
		}
		if err != nil && strings.Contains(err.Error(), "create it") {
			t.Errorf("produce to %q advises creating the topic: %v", name, err)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("produce to %q took %v to fail", name, time.Since(start))
		}
	}
	// Other records are unaffected.
	if _, err := p.Send(ctx, &keel.Message{Topic: "ok", Value: []byte("v")}); err != nil {
		t.Fatalf("a legal topic after illegal ones: %v", err)
	}

	if _, err := keel.NewGroupConsumer(c, "g", []string{"bad/topic"}); !errors.Is(err, keel.ErrInvalidConfig) || !strings.Contains(err.Error(), "bad/topic") {
		t.Errorf("group consumer of an illegal topic: want a config error naming it, got %v", err)
	}
	ac := newClient(t, cl, keel.AllowAutoTopicCreation())
	if _, err := ac.Metadata(ctx, "bad/topic"); !errors.Is(err, keel.ErrInvalidTopic) {
		t.Errorf("Metadata of an illegal name with auto-creation on: %v, want ErrInvalidTopic", err)
	}
	a, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		err := a.CreateTopics(ctx, admin.TopicSpec{Name: name, Partitions: 1, ReplicationFactor: 1})
		if !errors.Is(err, keel.ErrInvalidTopic) {
			t.Errorf("create %q: want ErrInvalidTopic, got %v", name, err)
		}
	}
	topics, err := a.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range topics {
		if keel.ValidateTopicName(tp.Name) != nil {
			t.Errorf("an illegal topic %q exists on the cluster", tp.Name)
		}
	}
}
