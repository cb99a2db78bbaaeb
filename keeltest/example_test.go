package keeltest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/keeltest"
)

// This example starts a three-broker cluster with one topic, makes the
// first produce to it fail with NOT_LEADER_OR_FOLLOWER, and checks that a
// client retried and the record was written once. In a test, use
// keeltest.NewCluster(t, ...) instead of Start and Close.
func Example() {
	c, err := keeltest.Start(keeltest.Topic("orders", 1))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	fault := c.FailRequests(kmsg.Produce, kerr.NotLeaderForPartition.Code, 1, keeltest.OnTopic("orders"))

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("o-1")}).FirstErr(); err != nil {
		panic(err)
	}

	fmt.Println("brokers:", len(c.Addrs()))
	fmt.Println("failed produce requests:", fault.Hits())
	fmt.Println("high watermark:", c.HighWatermark("orders", 0))
	// Output:
	// brokers: 3
	// failed produce requests: 1
	// high watermark: 1
}

// StopAnswering makes a broker go silent for one kind of request, here
// Produce on the partition's leader, until resume is called. Close resumes
// anything still held, so a forgotten resume cannot hang a test.
func ExampleCluster_StopAnswering() {
	c, err := keeltest.Start(keeltest.Topic("orders", 1))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	resume := c.StopAnswering(kmsg.Produce, c.Leader("orders", 0))

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		panic(err)
	}
	defer cl.Close()

	done := make(chan error, 1)
	cl.Produce(context.Background(), &kgo.Record{Topic: "orders", Value: []byte("o-1")}, func(_ *kgo.Record, err error) {
		done <- err
	})
	select {
	case <-done:
		fmt.Println("answered while stopped")
	case <-time.After(200 * time.Millisecond):
		fmt.Println("no answer while stopped")
	}
	resume()
	fmt.Println("after resume:", <-done)
	// Output:
	// no answer while stopped
	// after resume: <nil>
}
