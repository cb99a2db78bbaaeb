package integration

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// TestAdminDescribeAllTopicsFewRequests: describing every topic costs a
// couple of metadata requests, as with the Java AdminClient, not one per
// topic; and it does not leave every topic in the client's metadata
// interest, which would make each later refresh ask for all of them.
func TestAdminDescribeAllTopicsFewRequests(t *testing.T) {
	const topics = 60
	opts := []keeltest.Option{keeltest.Brokers(1)}
	for i := range topics {
		opts = append(opts, keeltest.Topic(fmt.Sprintf("many-%02d", i), 1))
	}
	cl := startCluster(t, opts...)
	ctx := testCtx(t, time.Minute)
	a := newAdmin(t, newClient(t, cl))

	var mu sync.Mutex
	var asked []int // topics named by each metadata request; -1: all
	cl.Control(kmsg.Metadata, func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.MetadataRequest)
		n := len(r.Topics)
		if r.Topics == nil {
			n = -1
		}
		mu.Lock()
		asked = append(asked, n)
		mu.Unlock()
		return nil, nil, false
	})
	cl.KeepControl()
	requests := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), asked...)
	}

	ds, err := a.DescribeTopics(ctx)
	if err != nil || len(ds) != topics {
		t.Fatalf("DescribeTopics() = %d topics, %v; want %d", len(ds), err, topics)
	}
	if got := requests(); len(got) > 5 {
		t.Errorf("describing %d topics took %d metadata requests, want a few", topics, len(got))
	}

	// A later refresh (here, the one CreateTopics waits for leaders with)
	// asks only for what this client uses, not for every topic described.
	before := len(requests())
	if err := a.CreateTopics(ctx, admin.TopicSpec{Name: "later", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	for _, n := range requests()[before:] {
		if n < 0 || n > 5 {
			t.Errorf("after DescribeTopics(), a metadata refresh asked for %d topics (-1: all)", n)
		}
	}
}

// TestAdminLookupsNeverCreateTopics: describing a topic or listing its
// offsets is a question; like the Java AdminClient, it must not create the
// topic, even through a client made with keel.AllowAutoTopicCreation (a
// producer's, say) against brokers that auto-create topics, Kafka's
// default.
func TestAdminLookupsNeverCreateTopics(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.AutoCreateTopics(), keeltest.Topic("real", 2))
	ctx := testCtx(t, time.Minute)
	a := newAdmin(t, newClient(t, cl, keel.AllowAutoTopicCreation()))

	if _, err := a.DescribeTopics(ctx, "ghost"); !errors.Is(err, keel.ErrUnknownTopic) {
		t.Errorf("DescribeTopics(ghost) = %v, want ErrUnknownTopic", err)
	}
	if _, err := a.EndOffsets(ctx, "phantom"); !errors.Is(err, keel.ErrUnknownTopic) {
		t.Errorf("EndOffsets(phantom) = %v, want ErrUnknownTopic", err)
	}
	for _, name := range []string{"ghost", "phantom"} {
		if n := cl.Partitions(name); n != 0 {
			t.Errorf("a lookup created topic %q (%d partitions)", name, n)
		}
	}
	// Topics that exist are still found.
	if ds, err := a.DescribeTopics(ctx, "real"); err != nil || len(ds) != 1 || len(ds[0].Partitions) != 2 {
		t.Errorf("DescribeTopics(real) = %+v, %v", ds, err)
	}
	if ends, err := a.EndOffsets(ctx, "real"); err != nil || len(ends) != 2 {
		t.Errorf("EndOffsets(real) = %v, %v", ends, err)
	}
	// Deleted after this client looked it up: the next lookup says it is
	// gone, and neither it nor the refreshes after it bring it back.
	if err := cl.DeleteTopic("real"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.EndOffsets(ctx, "real"); !errors.Is(err, keel.ErrUnknownTopic) {
		t.Errorf("EndOffsets(real) after its deletion = %v, want ErrUnknownTopic", err)
	}
	if _, err := a.ListTopics(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateTopics(ctx, admin.TopicSpec{Name: "other", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err) // its wait for leaders refreshes the cluster view
	}
	if n := cl.Partitions("real"); n != 0 {
		t.Errorf("the deleted topic was re-created by a lookup (%d partitions)", n)
	}
}
