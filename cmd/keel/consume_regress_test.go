package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// TestConsumeGroupExitAtEndAfterRetention: a group whose committed offset
// fell below the log start (retention deleted the records it had not read)
// starts at the reset point, not at its commit. With -e it must exit once
// that point is the end, instead of waiting for records that will never
// come.
func TestConsumeGroupExitAtEndAfterRetention(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("r", 1))
	sendMessages(t, cl.Addr(), numbered("r", 0, "r", 5)...)
	group := func(args ...string) binResult {
		t.Helper()
		return runBinary(t, nil, append([]string{"consume", "-b", cl.Addr(), "-t", "r", "-q"}, args...)...)
	}
	for _, g := range []string{"aged-end", "aged-beginning"} {
		if res := group("-G", g, "-o", "beginning", "-c", "2"); res.code != 0 || len(outLines(res.stdout)) != 2 {
			t.Fatalf("group %s: first run: exit %d, stdout %q\n%s", g, res.code, res.stdout, res.stderr)
		}
	}
	// Retention: everything up to the end is gone; both groups committed 2.
	if err := cl.Kfake().DeleteRecords("r", 0, 5); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ group, offset string }{
		{"aged-end", "end"},
		{"aged-beginning", "beginning"},
	} {
		res := group("-G", tc.group, "-o", tc.offset, "-e")
		if res.code != 0 || res.stdout != "" {
			t.Errorf("group %s -o %s -e after retention: exit %d, stdout %q\n%s", tc.group, tc.offset, res.code, res.stdout, res.stderr)
		}
	}
	// Retention that left some records: the group reads those, then exits.
	sendMessages(t, cl.Addr(), numbered("r", 0, "s", 4)...) // offsets 5..8
	if res := group("-G", "aged-more", "-o", "beginning", "-c", "1"); res.code != 0 {
		t.Fatalf("aged-more: exit %d\n%s", res.code, res.stderr)
	}
	if err := cl.Kfake().DeleteRecords("r", 0, 7); err != nil {
		t.Fatal(err)
	}
	res := group("-G", "aged-more", "-o", "beginning", "-e")
	if res.code != 0 || strings.Join(outLines(res.stdout), ",") != "s2,s3" {
		t.Errorf("aged-more after partial retention: exit %d, stdout %q, want s2,s3\n%s", res.code, res.stdout, res.stderr)
	}
}

// TestConsumeExitAtEndTransactional: a topic written by a transactional
// producer (Kafka Streams, exactly-once sinks) ends with a commit marker,
// a control record no consumer returns, so the end offset lies past the
// last record printed. -e must still exit, directly and in a group.
func TestConsumeExitAtEndTransactional(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("tx", 2))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := kgo.NewClient(kgo.SeedBrokers(cl.Addr()), kgo.TransactionalID("cli-test"), kgo.DefaultProduceTopic("tx"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	var want []string
	for round := range 2 {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			v := fmt.Sprintf("r%d-%d", round, i)
			want = append(want, v)
			if err := tx.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 2), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"-e"},
		{"-G", "tx-readers", "-o", "beginning", "-e"},
	} {
		res := runBinary(t, nil, append([]string{"consume", "-b", cl.Addr(), "-t", "tx", "-q"}, args...)...)
		if res.code != 0 {
			t.Fatalf("consume %q: exit %d\n%s", args, res.code, res.stderr)
		}
		sameMultiset(t, fmt.Sprintf("consume %q", args), outLines(res.stdout), want)
	}
	// The group committed what it printed: a second run prints nothing,
	// and exits.
	res := runBinary(t, nil, "consume", "-b", cl.Addr(), "-t", "tx", "-q", "-G", "tx-readers", "-o", "beginning", "-e")
	if res.code != 0 || res.stdout != "" {
		t.Errorf("second group run: exit %d, stdout %q\n%s", res.code, res.stdout, res.stderr)
	}
}

// TestConsumeGroupExitAtEndTakesOverDrained: a member started with -e
// that is given a partition another member already read to the end (and
// committed when it handed the partition over) has nothing to print
// there, and must still see that partition as done and exit. Its view of
// the committed offsets, read when it started, predates that commit.
func TestConsumeGroupExitAtEndTakesOverDrained(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("par", 2))
	sendMessages(t, cl.Addr(), append(numbered("par", 0, "a", 5), numbered("par", 1, "b", 5)...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	// Member A reads everything and marks it, committing only when it
	// gives partitions up.
	client, err := keel.NewClient(keel.SeedBrokers(cl.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	a, err := keel.NewGroupPoller(client, "drain", []string{"par"},
		keel.ResetOffset(keel.ResetEarliest), keel.AutoCommitInterval(time.Hour),
		keel.SessionTimeout(6*time.Second), keel.HeartbeatInterval(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer ccancel()
		a.Close(cctx)
	}()
	for n := 0; n < 10; {
		msgs, err := a.Poll(ctx)
		if err != nil {
			t.Fatalf("member A: %v after %d records", err, n)
		}
		a.MarkProcessed(msgs...)
		n += len(msgs)
	}

	// Member B joins with -e; A hands it a drained partition.
	res := runBinary(t, nil, "consume", "-b", cl.Addr(), "-G", "drain", "-t", "par", "-o", "beginning", "-e")
	if res.code != 0 || res.stdout != "" {
		t.Errorf("member B: exit %d, stdout %q (A had read everything)\n%s", res.code, res.stdout, res.stderr)
	}
}
