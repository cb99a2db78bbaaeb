package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/keel-go/keel"
)

// 200k records; a group of 4 members with 20 random joins and graceful
// closes while it works: every record is processed, and none twice —
// graceful leaves and revokes commit what was processed before the
// partition moves.
func TestGroupChurnNoLossNoDuplicates(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, proto []keel.GroupOption) {
		n := 200_000
		if testing.Short() {
			n = 30_000
		}
		if len(proto) > 0 {
			n /= 4 // the same churn on fewer records: CI time
		}
		cl := groupCluster(t, 8)
		c := newClient(t, cl)
		p := newProducer(t, c)
		ctx := testCtx(t, 5*time.Minute)
		if failed := produceIDs(t, ctx, p, "orders", n, func(i int) []byte { return []byte(fmt.Sprint(i % 1000)) }); len(failed) > 0 {
			t.Fatal(failed[0].Err)
		}
		seen := newProcessed()
		h := func(ctx context.Context, m *keel.Message) error {
			seen.add(m)
			if m.Offset%5 == 0 {
				time.Sleep(time.Millisecond) // spread the work so the churn meets it
			}
			return nil
		}
		var members []*member
		for range 4 {
			members = append(members, startMember(t, c, "churn", h, fastGroup(proto...)...))
		}
		rng := rand.New(rand.NewPCG(7, 7))
		joins, leaves := 0, 0
		for ev := 0; ev < 20; ev++ {
			time.Sleep(time.Duration(100+rng.IntN(200)) * time.Millisecond)
			if (rng.IntN(2) == 0 && len(members) < 6) || len(members) <= 2 {
				members = append(members, startMember(t, c, "churn", h, fastGroup(proto...)...))
				joins++
			} else {
				i := rng.IntN(len(members))
				members[i].stop(t)
				members = append(members[:i], members[i+1:]...)
				leaves++
			}
		}
		t.Logf("churn: %d joins, %d graceful leaves; %d of %d processed when it ended", joins, leaves, seen.total.Load(), n)
		seen.waitAll(t, ctx, n)
		for _, m := range members {
			m.stop(t)
		}
		missing, dup := seen.report(n)
		t.Logf("processed %d times for %d records: missing %d, duplicated %d", seen.total.Load(), n, missing, dup)
		if missing != 0 || dup != 0 {
			t.Fatalf("missing %d, duplicated %d", missing, dup)
		}
	})
}
