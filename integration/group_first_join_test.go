package integration

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// TestGroupFirstJoinDoesNotRejoin: members on clients that have never
// looked at their topic join once each. A join used to take the
// "subscribed topics and partition counts" signature before the topic's
// metadata was loaded (0 partitions), so the next metadata refresh looked
// like a change and the member rejoined right after its first
// assignment; under ExactlyOnce that second rebalance refused the first
// transaction's offsets (ILLEGAL_GENERATION). Seen on every new member of
// TestExactlyOnceRunUnderFaults's logs.
func TestGroupFirstJoinDoesNotRejoin(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topic("fj", 6))
	ctx := testCtx(t, 60*time.Second)
	var mu sync.Mutex
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(lockedW{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var members []*keel.GroupConsumer
	var dones []chan error
	for i := range 3 {
		c := newClient(t, cl, keel.Logger(logger.With("member", i)))
		g, err := keel.NewGroupConsumer(c, "fj-group", []string{"fj"}, fastGroup()...)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			done <- g.Run(ctx, keel.HandlerFunc(func(context.Context, *keel.Message) error { return nil }))
		}()
		members, dones = append(members, g), append(dones, done)
		// Each joins alone and settles before the next, so every
		// rebalance after the first is one a join caused.
		for total := 0; total != 6; {
			if ctx.Err() != nil {
				t.Fatalf("the group never settled with %d members", i+1)
			}
			time.Sleep(50 * time.Millisecond)
			total = 0
			for _, m := range members {
				total += len(m.Assigned())
			}
		}
		time.Sleep(time.Second)
	}
	for i, g := range members {
		g.Close(context.Background())
		<-dones[i]
	}
	mu.Lock()
	defer mu.Unlock()
	n := strings.Count(logs.String(), "subscribed topics changed") +
		strings.Count(logs.String(), "partition count changed")
	if n > 0 {
		t.Fatalf("%d rejoins because the subscribed topics \"changed\"; none changed:\n%s", n, logs.String())
	}
}

// TestGroupLeaderRejoinsWhenTopicGrows: partitions added to a subscribed
// topic are assigned. The member that made the assignment watches the
// counts its plan used. The topic grows only once both members own a
// partition each, so no join in progress can pick the new partitions up
// and the watch is the only way they get assigned. It failed in CI when
// the leader compared the metadata of a moment after its plan (already
// grown) and dropped the change seen while the rebalance was finishing.
func TestGroupLeaderRejoinsWhenTopicGrows(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topic("grow", 2))
	ctx := testCtx(t, 60*time.Second)
	c := newClient(t, cl, keel.MetadataMaxAge(200*time.Millisecond))
	var members []*keel.GroupConsumer
	var dones []chan error
	var mu sync.Mutex
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(lockedW{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	defer func() {
		if t.Failed() {
			mu.Lock()
			t.Log(logs.String())
			mu.Unlock()
		}
	}()
	for i := range 2 {
		mc := newClient(t, cl, keel.MetadataMaxAge(200*time.Millisecond), keel.Logger(logger.With("member", i)))
		g, err := keel.NewGroupConsumer(mc, "grow-group", []string{"grow"}, fastGroup()...)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			done <- g.Run(ctx, keel.HandlerFunc(func(context.Context, *keel.Message) error { return nil }))
		}()
		members, dones = append(members, g), append(dones, done)
	}
	defer func() {
		for i, g := range members {
			g.Close(context.Background())
			<-dones[i]
		}
	}()
	waitTotal := func(want int) {
		t.Helper()
		for {
			total, each := 0, true
			for _, g := range members {
				n := len(g.Assigned())
				total += n
				each = each && n > 0
			}
			if total == want && each {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("the group owns %d partitions, want %d", total, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitTotal(2)
	time.Sleep(500 * time.Millisecond) // past the end of the rebalance
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.CreatePartitions(ctx, "grow", 5, false); err != nil {
		t.Fatal(err)
	}
	waitTotal(5)
}
