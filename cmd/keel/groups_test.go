package main

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// lagFixture is a cluster whose topic "orders" has 10, 11 and 12 records
// in partitions 0-2, and a running member of group "billing" that has
// processed and committed offsets 0-5 of each partition and holds at 6
// until released.
type lagFixture struct {
	cl      *keeltest.Cluster
	adm     *admin.Admin
	release func()
	stop    func()
}

func startLagFixture(t *testing.T) *lagFixture {
	t.Helper()
	cl := testCluster(t, keeltest.Brokers(3), keeltest.Topic("orders", 3), keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	client, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...), keel.ClientID("lag-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	adm, err := admin.New(client)
	if err != nil {
		t.Fatal(err)
	}

	p, err := keel.NewProducer(client, keel.ManualPartitioner())
	if err != nil {
		t.Fatal(err)
	}
	for part := range int32(3) {
		for i := range 10 + int(part) {
			if _, err := p.Send(ctx, &keel.Message{Topic: "orders", Partition: part, Value: fmt.Appendf(nil, "%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	held := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(held) }) }
	g, err := keel.NewGroupConsumer(client, "billing", []string{"orders"},
		keel.SessionTimeout(6*time.Second), keel.HeartbeatInterval(200*time.Millisecond),
		keel.ResetOffset(keel.ResetEarliest), keel.AutoCommitInterval(100*time.Millisecond),
		keel.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- g.Run(context.Background(), keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
			if m.Offset >= 6 {
				select {
				case <-held:
				case <-ctx.Done():
				}
			}
			return nil
		}))
	}()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			release()
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := g.Close(cctx); err != nil {
				t.Errorf("closing the group consumer: %v", err)
			}
			select {
			case <-done:
			case <-cctx.Done():
				t.Errorf("Run did not return after Close")
			}
		})
	}
	t.Cleanup(stop)

	waitCommitted(t, ctx, adm, map[keel.TopicPartition]int64{
		{Topic: "orders", Partition: 0}: 6, {Topic: "orders", Partition: 1}: 6, {Topic: "orders", Partition: 2}: 6,
	})
	return &lagFixture{cl: cl, adm: adm, release: release, stop: stop}
}

func waitCommitted(t *testing.T, ctx context.Context, adm *admin.Admin, want map[keel.TopicPartition]int64) {
	t.Helper()
	var got map[keel.TopicPartition]int64
	var err error
	for ctx.Err() == nil {
		if got, err = adm.GroupOffsets(ctx, "billing"); err == nil && maps.Equal(got, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("committed offsets %v (%v), want %v", got, err, want)
}

func TestGroupsLagDescribeListDelete(t *testing.T) {
	f := startLagFixture(t)
	b := f.cl.Addr()

	r := runBinary(t, nil, "groups", "lag", "-b", b, "-G", "billing")
	if r.code != 0 {
		t.Fatalf("lag: exit %d: %s", r.code, r.stderr)
	}
	rows := tableRows(t, r.stdout, "TOPIC")
	if len(rows) != 3 {
		t.Fatalf("lag: %d rows, want 3:\n%s", len(rows), r.stdout)
	}
	for i, row := range rows {
		// TOPIC PARTITION COMMITTED END LAG MEMBER
		want := []string{"orders", fmt.Sprint(i), "6", fmt.Sprint(10 + i), fmt.Sprint(4 + i)}
		if len(row) != 6 || strings.Join(row[:5], " ") != strings.Join(want, " ") || row[5] == "-" {
			t.Errorf("lag row %v, want %v and a member", row, want)
		}
	}
	if !strings.Contains(r.stdout, "\nTOTAL LAG: 15\n") {
		t.Errorf("lag output lacks the total of 15:\n%s", r.stdout)
	}

	r = runBinary(t, nil, "groups", "describe", "-b", b, "-Gbilling")
	for _, want := range []string{"Group:        billing", "State:        Stable", "Protocol:     consumer (", "Members:      1", "lag-test", "orders[0-2]"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("describe: exit %d, output lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}

	r = runBinary(t, nil, "groups", "list", "-b", b)
	rows = tableRows(t, r.stdout, "GROUP")
	if r.code != 0 || len(rows) != 1 || strings.Join(rows[0], " ") != "billing Stable consumer" {
		t.Errorf("list: exit %d, rows %v\n%s", r.code, rows, r.stderr)
	}

	r = runBinary(t, nil, "groups", "delete", "-b", b, "-G", "billing")
	if r.code != 1 || !strings.Contains(r.stderr, `group "billing": it still has active members`) {
		t.Errorf("deleting a group with a member: exit %d, stderr: %s", r.code, r.stderr)
	}

	// Released, the member commits the rest; after it leaves the lag is
	// zero and no member is shown.
	f.release()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	waitCommitted(t, ctx, f.adm, map[keel.TopicPartition]int64{
		{Topic: "orders", Partition: 0}: 10, {Topic: "orders", Partition: 1}: 11, {Topic: "orders", Partition: 2}: 12,
	})
	f.stop()
	r = runBinary(t, nil, "groups", "lag", "-b", b, "-G", "billing")
	for _, row := range tableRows(t, r.stdout, "TOPIC") {
		if row[4] != "0" || row[5] != "-" {
			t.Errorf("lag row after the member left: %v", row)
		}
	}
	if !strings.Contains(r.stdout, "TOTAL LAG: 0\n") {
		t.Errorf("lag after catching up:\n%s", r.stdout)
	}

	r = runBinary(t, nil, "groups", "delete", "-b", b, "-G", "billing")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted group billing") {
		t.Fatalf("delete: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, sub := range []string{"describe", "lag", "delete"} {
		r = runBinary(t, nil, "groups", sub, "-b", b, "-G", "billing")
		if r.code != 1 || !strings.Contains(r.stderr, `group "billing" does not exist`) || !strings.Contains(r.stderr, "keel groups list") {
			t.Errorf("groups %s of a deleted group: exit %d, stderr: %s", sub, r.code, r.stderr)
		}
	}
	r = runBinary(t, nil, "groups", "list", "-b", b)
	if r.code != 0 || len(tableRows(t, r.stdout, "GROUP")) != 0 {
		t.Errorf("list after delete: exit %d\n%s", r.code, r.stdout)
	}
}

func TestGroupsUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"groups"}, 2, "Subcommands:"},
		{[]string{"groups", "nope"}, 2, `unknown subcommand "nope"`},
		{[]string{"groups", "lag"}, 2, "pass -G GROUP"},
		{[]string{"groups", "describe", "-x"}, 2, "flag provided but not defined: -x"},
		{[]string{"groups", "delete"}, 2, "pass -G GROUP"},
		{[]string{"groups", "lag", "-G", "g", "--timeout", "-1s"}, 2, "--timeout must be positive"},
		{[]string{"groups", "-h"}, 0, "Examples:"},
		{[]string{"groups", "lag", "-h"}, 0, "keel groups lag -G billing"},
		{[]string{"groups", "describe", "-h"}, 0, "Examples:"},
		{[]string{"groups", "list", "-h"}, 0, "Examples:"},
		{[]string{"groups", "delete", "-h"}, 0, "stop its consumers first"},
	} {
		r := runBinary(t, nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("keel %s: exit %d (want %d), stderr lacks %q:\n%s", strings.Join(tc.args, " "), r.code, tc.code, tc.want, r.stderr)
		}
	}
}
