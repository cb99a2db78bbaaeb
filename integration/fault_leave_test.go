package integration

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
)

// Found by the fault matrix (coordinator moves): a LeaveGroup answered
// NOT_COORDINATOR — the coordinator moved just before Close — was not
// retried, so Close failed and the member did not leave (the group then
// waits out its session timeout). Now Close finds the new coordinator and
// leaves: the other member gets every partition at once, not after the
// session timeout.
// (The classic protocol: the consumer protocol leaves with a
// ConsumerGroupHeartbeat.)
func TestGroupLeaveRetriesWhenTheCoordinatorMoved(t *testing.T) {
	{
		cl := groupCluster(t, 4)
		c := newClient(t, cl)
		ctx := testCtx(t, 2*time.Minute)
		if failed := produceIDs(t, ctx, newProducer(t, c), "orders", 100, nil); len(failed) > 0 {
			t.Fatal(failed[0].Err)
		}
		seen := newProcessed()
		h := func(ctx context.Context, m *keel.Message) error { seen.add(m); return nil }
		// A session timeout far above the test's bound: only a real
		// leave hands the partitions over in time.
		opts := fastGroup(keel.SessionTimeout(time.Minute))
		a := startMember(t, c, "leaver", h, opts...)
		b := startMember(t, c, "leaver", h, opts...)
		seen.waitAll(t, ctx, 100)
		for len(a.g.Assigned())+len(b.g.Assigned()) != 4 || len(a.g.Assigned()) == 0 {
			if ctx.Err() != nil {
				t.Fatalf("group never settled: %v / %v", a.g.Assigned(), b.g.Assigned())
			}
			time.Sleep(10 * time.Millisecond)
		}
		fault := cl.FailRequests(kmsg.LeaveGroup, 16, 2) // NOT_COORDINATOR, twice
		closeCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := a.g.Close(closeCtx)
		cancel()
		if err != nil {
			t.Fatalf("Close after the coordinator moved: %v", err)
		}
		if hits := fault.Hits(); hits != 2 {
			t.Fatalf("LeaveGroup failed %d times, want 2 (then retried)", hits)
		}
		deadline := time.Now().Add(30 * time.Second) // half the session timeout
		for len(b.g.Assigned()) != 4 {
			if time.Now().After(deadline) {
				t.Fatalf("the other member has %v 30s after the leave: the member did not leave", b.g.Assigned())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
