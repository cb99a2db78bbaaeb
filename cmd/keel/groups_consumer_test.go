package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// A group on the consumer protocol (KIP-848): `keel groups describe`
// shows the epochs, the assignor, and each member's epoch and target;
// `keel consume -G --group-protocol consumer -e` reads and commits as a
// member of it, and a second run finds everything committed.
func TestGroupsDescribeAndConsumeOnConsumerProtocol(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("orders", 3), keeltest.BrokerConfigs(map[string]string{
		"group.consumer.heartbeat.interval.ms": "200",
	}))
	b := cl.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	client, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...), keel.ClientID("kip848-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	p, err := keel.NewProducer(client)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		if _, err := p.Send(ctx, &keel.Message{Topic: "orders", Value: fmt.Appendf(nil, "r%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close(ctx)

	g, err := keel.NewGroupConsumer(client, "kip848", []string{"orders"}, keel.GroupProtocol(keel.ConsumerProtocol), keel.ServerAssignor("range"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- g.Run(ctx, keel.HandlerFunc(func(context.Context, *keel.Message) error { return nil }))
	}()
	for len(g.Assigned()) < 3 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	var r binResult
	for ctx.Err() == nil { // the coordinator learns of the reconciliation at the next heartbeat
		r = runBinary(t, nil, "groups", "describe", "-b", b, "-G", "kip848")
		if strings.Contains(r.stdout, "State:        Stable") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"Protocol:     consumer (KIP-848), assignor range", "Epochs:       group", "EPOCH", "TARGET", "kip848-test", "orders[0-2]", "same"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("describe: exit %d, output lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
	r = runBinary(t, nil, "groups", "describe", "-b", b, "-G", "kip848", "--json")
	for _, want := range []string{`"member_epoch"`, `"target_assignment"`, `"assignor": "range"`} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("describe --json: exit %d, output lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-done

	r = runBinary(t, nil, "consume", "-b", b, "-G", "cli848", "--group-protocol", "consumer", "-t", "orders", "-o", "beginning", "-e", "-q")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 9 {
		t.Fatalf("consume --group-protocol consumer: exit %d, %d lines:\n%s%s", r.code, strings.Count(r.stdout, "\n"), r.stdout, r.stderr)
	}
	r = runBinary(t, nil, "consume", "-b", b, "-G", "cli848", "--group-protocol", "consumer", "-t", "orders", "-o", "beginning", "-e", "-q")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("second run: exit %d, printed %q (the first run's commits were lost?)\n%s", r.code, r.stdout, r.stderr)
	}
	r = runBinary(t, nil, "consume", "-b", b, "-t", "orders", "--group-protocol", "consumer")
	if r.code != 2 || !strings.Contains(r.stderr, "goes with -G") {
		t.Errorf("--group-protocol without -G: exit %d, %s", r.code, r.stderr)
	}
	r = runBinary(t, nil, "consume", "-b", b, "-G", "x", "-t", "orders", "--group-protocol", "next")
	if r.code != 2 || !strings.Contains(r.stderr, "classic (the default) or consumer") {
		t.Errorf("--group-protocol next: exit %d, %s", r.code, r.stderr)
	}
}
