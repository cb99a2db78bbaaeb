package integration

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// pollOffsets polls sc until it has returned want records (or ctx ends).
func pollOffsets(t *testing.T, ctx context.Context, sc *keel.ShareConsumer, want int) []*keel.Message {
	t.Helper()
	var got []*keel.Message
	for len(got) < want {
		msgs, err := sc.Poll(ctx)
		if err != nil {
			t.Fatalf("Poll after %d of %d records: %v", len(got), want, err)
		}
		got = append(got, msgs...)
	}
	if len(got) != want {
		t.Fatalf("Poll returned %d records, want %d", len(got), want)
	}
	slices.SortFunc(got, func(a, b *keel.Message) int { return int(a.Offset - b.Offset) })
	return got
}

// TestSharePollExplicitAcknowledgements: the Poll API with explicit
// acknowledgements. Accepted and rejected records are done; released
// ones come back with delivery count 2; a renewed record stays held and
// is accepted later; acknowledging a record twice is refused; Flush
// sends at once and returns the brokers' answers; the acknowledgements of
// records fetched in one ShareFetch ride on the next ShareFetch.
func TestSharePollExplicitAcknowledgements(t *testing.T) {
	cl := shareCluster(t, 30*time.Second)
	c := newClient(t, cl)
	ctx := testCtx(t, 30*time.Second)
	adm := startShareGroupAtBeginning(t, ctx, c, "g")
	// piggybacked receives the offsets whose acceptance rode on a
	// ShareFetch.
	piggybacked := make(chan int64, 100)
	cl.Control(kmsg.ShareFetch, func(req kmsg.Request) (kmsg.Response, error, bool) {
		for _, t := range req.(*kmsg.ShareFetchRequest).Topics {
			for _, p := range t.Partitions {
				for _, b := range p.AcknowledgementBatches {
					if slices.Equal(b.AcknowledgeTypes, []int8{1}) {
						for o := b.FirstOffset; o <= b.LastOffset; o++ {
							select {
							case piggybacked <- o:
							default:
							}
						}
					}
				}
			}
		}
		return nil, nil, false
	})
	l := newShareLedger()
	sc, err := keel.NewShareConsumer(c, "g", []string{shareTopic}, keel.OnShareAcknowledged(l.acked))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sc.Close(cctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := sc.Poll(cctx); !errors.Is(err, keel.ErrConsumerClosed) {
			t.Errorf("Poll after Close: %v, want ErrConsumerClosed", err)
		}
	}()
	p := newProducer(t, c)
	produceIDs(t, ctx, p, shareTopic, 10, nil)
	msgs := pollOffsets(t, ctx, sc, 10)
	for i, m := range msgs {
		if m.Offset != int64(i) || m.DeliveryCount() != 1 {
			t.Fatalf("record %d: offset %d delivery %d", i, m.Offset, m.DeliveryCount())
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sc.Accept(msgs[0:4]...))
	must(sc.Release(msgs[4], msgs[5]))
	must(sc.Reject(msgs[6]))
	must(sc.Renew(msgs[7]))
	if err := sc.Accept(msgs[0]); !errors.Is(err, keel.ErrShareRecordNotHeld) {
		t.Errorf("accepting a record twice: %v, want ErrShareRecordNotHeld", err)
	}
	must(sc.Flush(ctx))
	// The renewed record is still held: it can be accepted now.
	must(sc.Accept(msgs[7], msgs[8], msgs[9]))

	again := pollOffsets(t, ctx, sc, 2) // the released two come back
	for i, m := range again {
		if m.Offset != int64(4+i) || m.DeliveryCount() != 2 {
			t.Errorf("redelivered record: offset %d delivery %d, want %d with 2", m.Offset, m.DeliveryCount(), 4+i)
		}
	}
	must(sc.Accept(again...))
	must(sc.Flush(ctx))
	waitDone(t, ctx, adm, "g", 10)

	// Without a Flush, an acknowledgement rides on the next ShareFetch.
	produceIDs(t, ctx, p, shareTopic, 1, nil)
	last := pollOffsets(t, ctx, sc, 1)
	must(sc.Accept(last...))
	for o := int64(-1); o != 10; {
		select {
		case o = <-piggybacked:
		case <-ctx.Done():
			t.Fatal("the acceptance of offset 10 never rode on a ShareFetch")
		}
	}
	waitDone(t, ctx, adm, "g", 11)
	// Its result comes with the answer to that fetch, which may park.
	l.waitFor(t, ctx, "the piggybacked acceptance answered", func() bool { return l.accepted[10] == 1 })

	l.mu.Lock()
	defer l.mu.Unlock()
	for o := range int64(11) {
		want := 1
		if o == 6 {
			want = 0 // rejected
		}
		if l.accepted[o] != want {
			t.Errorf("offset %d accepted %d times, want %d", o, l.accepted[o], want)
		}
	}
	if l.rejected[6] != 1 || l.released[4] != 1 || l.released[5] != 1 || len(l.failed) != 0 {
		t.Errorf("rejected %v released %v failed %v", l.rejected, l.released, l.failed)
	}
}

// TestSharePollUnacknowledgedRecordsReleasedOnClose: records a member
// polled but never acknowledged go to another member as soon as it
// closes (the close of its share session releases them), with delivery
// count 2.
func TestSharePollUnacknowledgedRecordsReleasedOnClose(t *testing.T) {
	cl := shareCluster(t, 30*time.Second) // far longer than the test: only Close can free them
	c := newClient(t, cl)
	ctx := testCtx(t, 20*time.Second)
	startShareGroupAtBeginning(t, ctx, c, "g")
	first, err := keel.NewShareConsumer(c, "g", []string{shareTopic})
	if err != nil {
		t.Fatal(err)
	}
	produceIDs(t, ctx, newProducer(t, c), shareTopic, 5, nil)
	pollOffsets(t, ctx, first, 5)
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := keel.NewShareConsumer(newClient(t, cl), "g", []string{shareTopic})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close(context.Background())
	for i, m := range pollOffsets(t, ctx, second, 5) {
		if m.Offset != int64(i) || m.DeliveryCount() != 2 {
			t.Errorf("offset %d delivery %d, want %d with 2", m.Offset, m.DeliveryCount(), i)
		}
	}
}

// TestShareGroupAdmin: describing a share group (state, members and
// their assignments), its start offsets, and moving and deleting them
// (refused while the group has members).
func TestShareGroupAdmin(t *testing.T) {
	cl := shareCluster(t, 30*time.Second)
	c := newClient(t, cl)
	ctx := testCtx(t, 30*time.Second)
	adm := startShareGroupAtBeginning(t, ctx, c, "g")
	tp := keel.TopicPartition{Topic: shareTopic, Partition: 0}
	produceIDs(t, ctx, newProducer(t, c), shareTopic, 20, nil)

	sc, err := keel.NewShareConsumer(newClient(t, cl, keel.ClientID("reader")), "g", []string{shareTopic})
	if err != nil {
		t.Fatal(err)
	}
	msgs := pollOffsets(t, ctx, sc, 20)
	if err := sc.Accept(msgs[:15]...); err != nil {
		t.Fatal(err)
	}
	if err := sc.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	ds, err := adm.DescribeShareGroups(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	if d.State != "Stable" || len(d.Members) != 1 || d.Coordinator != cl.CoordinatorFor("g") {
		t.Fatalf("description %+v", d)
	}
	mem := d.Members[0]
	if mem.MemberID != sc.MemberID() || mem.ClientID != "reader" || mem.MemberEpoch <= 0 ||
		!slices.Equal(mem.Assigned, []keel.TopicPartition{tp}) || !slices.Equal(mem.Subscribed, []string{shareTopic}) {
		t.Errorf("member %+v", mem)
	}
	offs, err := adm.ShareGroupOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o := offs[tp]; o.StartOffset != 15 || o.Lag != 5 {
		t.Errorf("offsets %+v; want start 15, lag 5 (15 accepted, 5 held)", offs)
	}
	if err := adm.AlterShareGroupOffsets(ctx, "g", map[keel.TopicPartition]int64{tp: 0}); !errors.Is(err, admin.ErrGroupNotEmpty) {
		t.Errorf("altering the offsets of a group with a member: %v, want ErrGroupNotEmpty", err)
	}
	if err := adm.DeleteShareGroupOffsets(ctx, "g", shareTopic); !errors.Is(err, admin.ErrGroupNotEmpty) {
		t.Errorf("deleting the offsets of a group with a member: %v, want ErrGroupNotEmpty", err)
	}
	if err := sc.Close(ctx); err != nil {
		t.Fatal(err)
	}

	ds, err = adm.DescribeShareGroups(ctx, "g")
	if err != nil || ds[0].State != "Empty" || len(ds[0].Members) != 0 {
		t.Errorf("after the member left: %+v, %v", ds, err)
	}
	if err := adm.AlterShareGroupOffsets(ctx, "g", map[keel.TopicPartition]int64{tp: 18}); err != nil {
		t.Fatal(err)
	}
	if offs, err := adm.ShareGroupOffsets(ctx, "g", shareTopic); err != nil || offs[tp].StartOffset != 18 || offs[tp].Lag != 2 {
		t.Errorf("after moving to 18: %+v, %v", offs, err)
	}
	if err := adm.DeleteShareGroupOffsets(ctx, "g", shareTopic); err != nil {
		t.Fatal(err)
	}
	if offs, err := adm.ShareGroupOffsets(ctx, "g", shareTopic); err != nil || offs[tp].StartOffset != -1 {
		t.Errorf("after deleting: %+v, %v; want start -1 (no state)", offs, err)
	}
	if _, err := adm.DescribeShareGroups(ctx, "no-such-group"); !errors.Is(err, admin.ErrGroupNotFound) {
		t.Errorf("describing a missing group: %v, want ErrGroupNotFound", err)
	}
	if err := adm.AlterShareGroupConfigs(ctx, "g", map[string]string{"share.auto.offset.reset": "earliest"}); err != nil {
		t.Errorf("AlterShareGroupConfigs: %v", err)
	}
	if err := adm.AlterShareGroupConfigs(ctx, "g", map[string]string{"share.no.such.config": "1"}); !errors.Is(err, admin.ErrInvalidConfig) {
		t.Errorf("an unknown group config: %v, want ErrInvalidConfig", err)
	}
}

// TestShareLateAcknowledgementsDoNotSpoilOthers: a member accepts, in one
// go, records whose locks ran out (another member holds them now, so the
// broker refuses those) and one it kept by renewing. A broker refuses
// all of a partition's acknowledgements in a request if one is wrong, so
// keel sends the late ones alone: the kept record is accepted, the late
// ones fail and are processed by the member that has them.
func TestShareLateAcknowledgementsDoNotSpoilOthers(t *testing.T) {
	const lock = time.Second
	cl := shareCluster(t, lock)
	c := newClient(t, cl)
	ctx := testCtx(t, 30*time.Second)
	adm := startShareGroupAtBeginning(t, ctx, c, "g")
	l := newShareLedger()
	sc, err := keel.NewShareConsumer(newClient(t, cl), "g", []string{shareTopic}, keel.OnShareAcknowledged(l.acked), keel.ShareMaxRecords(5))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(context.Background())
	produceIDs(t, ctx, newProducer(t, c), shareTopic, 5, nil)
	msgs := pollOffsets(t, ctx, sc, 5)

	// The other member takes 0-3 once their locks run out and holds them
	// (its handlers wait); meanwhile this member keeps 4 by renewing it.
	entered, release := make(chan int64, 4), make(chan struct{})
	other := startShareMember(t, cl, "other", "g", l, func(ctx context.Context, m *keel.Message) error {
		entered <- m.Offset
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}, keel.ShareConcurrency(4), keel.ShareMaxRecords(4))
	other.waitAssigned(t, ctx)
	renew := time.NewTicker(lock / 4)
	defer renew.Stop()
	for got := 0; got < 4; {
		select {
		case o := <-entered:
			if o == 4 {
				t.Fatal("the other member got the record that was being renewed")
			}
			got++
		case <-renew.C:
			if err := sc.Renew(msgs[4]); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("the other member never got the expired records")
		}
	}
	if err := sc.Accept(msgs...); err != nil {
		t.Fatal(err)
	}
	if err := sc.Flush(ctx); err == nil {
		t.Error("Flush reported no failure for acceptances of records another member holds")
	}
	l.waitFor(t, ctx, "the kept record accepted", func() bool { return l.accepted[4] == 1 })
	close(release)
	l.waitFor(t, ctx, "every record accepted", func() bool { return len(l.accepted) == 5 })
	waitDone(t, ctx, adm, "g", 5)
	l.mu.Lock()
	defer l.mu.Unlock()
	for o := range int64(5) {
		if l.accepted[o] != 1 {
			t.Errorf("offset %d accepted %d times", o, l.accepted[o])
		}
	}
}
