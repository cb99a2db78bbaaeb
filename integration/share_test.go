package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// Share group tests (KIP-932). kfake plays the broker: it keeps each
// record's acquisition (member, delivery count, lock), sweeps expired
// locks every share.record.lock.sweep.interval.ms, and releases a
// session's records when its connection closes, as Kafka does. Every
// topic here has one partition, so a record's offset is its id.

const shareTopic = "q"

// shareCluster starts three brokers with one single-partition topic,
// acquisition locks of lock, a lock sweep every 20ms (so that expired
// locks are noticed promptly) and heartbeats every 100ms.
func shareCluster(t *testing.T, lock time.Duration) *keeltest.Cluster {
	t.Helper()
	return startCluster(t, keeltest.Brokers(3), keeltest.Topic(shareTopic, 1), keeltest.BrokerConfigs(map[string]string{
		"group.share.heartbeat.interval.ms":   "100",
		"group.share.record.lock.duration.ms": strconv.Itoa(int(lock / time.Millisecond)),
		"share.record.lock.sweep.interval.ms": "20",
		// Members are only fenced when a test wants them to be.
		"group.share.session.timeout.ms": "60000",
	}))
}

// startShareGroupAtBeginning makes group read shareTopic from offset 0 (a
// new share group starts at the end of a partition otherwise).
func startShareGroupAtBeginning(t *testing.T, ctx context.Context, c *keel.Client, group string) *admin.Admin {
	t.Helper()
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.AlterShareGroupOffsets(ctx, group, map[keel.TopicPartition]int64{{Topic: shareTopic, Partition: 0}: 0}); err != nil {
		t.Fatalf("AlterShareGroupOffsets: %v", err)
	}
	return adm
}

// shareLedger is the checker: what handlers saw, and what the brokers
// confirmed through OnShareAcknowledged, per offset.
type shareLedger struct {
	mu       sync.Mutex
	handled  map[int64][]delivery // every handler call
	accepted map[int64]int
	released map[int64]int
	rejected map[int64]int
	failed   []error // acknowledgements the broker did not apply
	notify   chan struct{}
}

type delivery struct {
	member string
	count  int // Message.DeliveryCount
}

func newShareLedger() *shareLedger {
	return &shareLedger{
		handled:  make(map[int64][]delivery),
		accepted: make(map[int64]int),
		released: make(map[int64]int),
		rejected: make(map[int64]int),
		notify:   make(chan struct{}),
	}
}

func (l *shareLedger) changed() {
	close(l.notify)
	l.notify = make(chan struct{})
}

func (l *shareLedger) handle(member string, m *keel.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handled[m.Offset] = append(l.handled[m.Offset], delivery{member, m.DeliveryCount()})
	l.changed()
}

// acked is the OnShareAcknowledged callback.
func (l *shareLedger) acked(r keel.ShareAckResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Err != nil {
		l.failed = append(l.failed, fmt.Errorf("%v %v: %w", r.Type, r.Offsets, r.Err))
		l.changed()
		return
	}
	for _, o := range r.Offsets {
		switch r.Type {
		case keel.AckAccept:
			l.accepted[o]++
		case keel.AckRelease:
			l.released[o]++
		case keel.AckReject:
			l.rejected[o]++
		}
	}
	l.changed()
}

// waitFor waits under ctx until cond (called with the ledger locked)
// holds, failing the test with what the ledger says otherwise.
func (l *shareLedger) waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for {
		l.mu.Lock()
		ok, ch := cond(), l.notify
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("%s: not reached before %v: %d offsets handled, %d accepted, %d rejected, %d released; failed acks: %v",
				what, ctx.Err(), len(l.handled), len(l.accepted), len(l.rejected), len(l.released), l.failed)
		}
	}
}

// finished counts offsets the broker confirmed as done (accepted or
// rejected). Call with l.mu held.
func (l *shareLedger) finished() int { return len(l.accepted) + len(l.rejected) }

// shareMember is one running ShareConsumer with its own client, as a
// separate process would have.
type shareMember struct {
	name   string
	client *keel.Client
	sc     *keel.ShareConsumer
	done   chan error
}

func startShareMember(t *testing.T, cl *keeltest.Cluster, name, group string, l *shareLedger, h keel.HandlerFunc, opts ...keel.ShareOption) *shareMember {
	t.Helper()
	c := newClient(t, cl, keel.ClientID(name))
	sc, err := keel.NewShareConsumer(c, group, []string{shareTopic}, append([]keel.ShareOption{keel.OnShareAcknowledged(l.acked)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	m := &shareMember{name: name, client: c, sc: sc, done: make(chan error, 1)}
	go func() {
		m.done <- sc.Run(context.Background(), keel.HandlerFunc(func(ctx context.Context, msg *keel.Message) error {
			l.handle(name, msg)
			return h(ctx, msg)
		}))
	}()
	t.Cleanup(func() { m.close(t) })
	return m
}

// close closes the member (once) and checks that Run returned nil.
func (m *shareMember) close(t *testing.T) {
	t.Helper()
	if m.sc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := m.sc.Close(ctx); err != nil {
		t.Errorf("%s: Close: %v", m.name, err)
	}
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("%s: Run: %v", m.name, err)
		}
	case <-ctx.Done():
		t.Errorf("%s: Run did not return after Close", m.name)
	}
	m.sc = nil
}

// waitAssigned waits until the member has its partitions.
func (m *shareMember) waitAssigned(t *testing.T, ctx context.Context) {
	t.Helper()
	for len(m.sc.Assigned()) == 0 {
		if ctx.Err() != nil {
			t.Fatalf("%s never got an assignment", m.name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDone waits until the share group's start offset reached end:
// every record before it is accepted, rejected or archived, so none of
// them can ever be delivered again.
func waitDone(t *testing.T, ctx context.Context, adm *admin.Admin, group string, end int64) {
	t.Helper()
	for {
		offs, err := adm.ShareGroupOffsets(ctx, group, shareTopic)
		o := offs[keel.TopicPartition{Topic: shareTopic, Partition: 0}]
		if err == nil && o.StartOffset == end {
			if o.Lag != 0 {
				t.Errorf("start offset %d but lag %d", o.StartOffset, o.Lag)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("share group %q start offset is %d, not %d (err %v)", group, o.StartOffset, end, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShareGroupMembersShareOnePartitionEachRecordAcceptedOnce: four
// members on a one-partition topic together process 20k records; the
// broker confirms each accepted exactly once, each was handled exactly
// once (nothing failed, so nothing is redelivered), and every member
// took part.
func TestShareGroupMembersShareOnePartitionEachRecordAcceptedOnce(t *testing.T) {
	const n = 20000
	cl := shareCluster(t, 30*time.Second)
	c := newClient(t, cl)
	ctx := testCtx(t, 120*time.Second)
	adm := startShareGroupAtBeginning(t, ctx, c, "workers")
	l := newShareLedger()
	var members []*shareMember
	for i := range 4 {
		m := startShareMember(t, cl, fmt.Sprintf("m%d", i), "workers", l, func(context.Context, *keel.Message) error { return nil },
			keel.ShareConcurrency(4), keel.ShareMaxRecords(100))
		members = append(members, m)
	}
	for _, m := range members {
		m.waitAssigned(t, ctx)
	}
	produceIDs(t, ctx, newProducer(t, c), shareTopic, n, nil)
	l.waitFor(t, ctx, "every record accepted", func() bool { return len(l.accepted) == n })
	waitDone(t, ctx, adm, "workers", n)

	l.mu.Lock()
	defer l.mu.Unlock()
	perMember := make(map[string]int)
	for o := range int64(n) {
		if c := l.accepted[o]; c != 1 {
			t.Errorf("offset %d accepted %d times", o, c)
		}
		ds := l.handled[o]
		if len(ds) != 1 || ds[0].count != 1 {
			t.Errorf("offset %d handled as %v, want once with delivery count 1", o, ds)
			continue
		}
		perMember[ds[0].member]++
	}
	if len(l.handled) != n || len(l.rejected)+len(l.released) != 0 || len(l.failed) != 0 {
		t.Errorf("%d offsets handled, %d rejected, %d released, failed acks %v", len(l.handled), len(l.rejected), len(l.released), l.failed)
	}
	for _, m := range members {
		if perMember[m.name] == 0 {
			t.Errorf("member %s processed nothing (per member: %v): the partition was not shared", m.name, perMember)
		}
	}
	t.Logf("records per member: %v", perMember)
}

// TestShareGroupReleaseRedeliversRejectDoesNot: a retriable handler error
// releases the record, which comes back with delivery count 2; an error
// made with keel.Permanent rejects it, and it never comes back (the
// group's start offset passes it, so it cannot).
func TestShareGroupReleaseRedeliversRejectDoesNot(t *testing.T) {
	const n = 1000
	cl := shareCluster(t, 30*time.Second)
	c := newClient(t, cl)
	ctx := testCtx(t, 60*time.Second)
	adm := startShareGroupAtBeginning(t, ctx, c, "g")
	l := newShareLedger()
	errBusy := errors.New("downstream busy")
	h := func(_ context.Context, m *keel.Message) error {
		switch m.Offset % 10 {
		case 3:
			if m.DeliveryCount() == 1 {
				return errBusy // retriable: released
			}
		case 7:
			return keel.Permanent(fmt.Errorf("record %d is malformed", m.Offset))
		}
		return nil
	}
	for i := range 2 {
		startShareMember(t, cl, fmt.Sprintf("m%d", i), "g", l, h, keel.ShareConcurrency(2), keel.ShareMaxRecords(50))
	}
	produceIDs(t, ctx, newProducer(t, c), shareTopic, n, nil)
	l.waitFor(t, ctx, "every record finished", func() bool { return l.finished() == n })
	waitDone(t, ctx, adm, "g", n)

	l.mu.Lock()
	defer l.mu.Unlock()
	for o := range int64(n) {
		ds := l.handled[o]
		counts := make([]int, len(ds))
		for i, d := range ds {
			counts[i] = d.count
		}
		switch o % 10 {
		case 3:
			if !slices.Equal(counts, []int{1, 2}) || l.released[o] != 1 || l.accepted[o] != 1 || l.rejected[o] != 0 {
				t.Errorf("released offset %d: delivery counts %v, released %d, accepted %d, rejected %d; want [1 2], 1, 1, 0", o, counts, l.released[o], l.accepted[o], l.rejected[o])
			}
		case 7:
			if !slices.Equal(counts, []int{1}) || l.rejected[o] != 1 || l.accepted[o]+l.released[o] != 0 {
				t.Errorf("rejected offset %d: delivery counts %v, rejected %d, accepted %d, released %d; want [1], 1, 0, 0", o, counts, l.rejected[o], l.accepted[o], l.released[o])
			}
		default:
			if !slices.Equal(counts, []int{1}) || l.accepted[o] != 1 || l.rejected[o]+l.released[o] != 0 {
				t.Errorf("offset %d: delivery counts %v, accepted %d; want [1], 1", o, counts, l.accepted[o])
			}
		}
	}
	if len(l.failed) != 0 {
		t.Errorf("acknowledgements failed: %v", l.failed)
	}
}

// TestShareGroupKilledMemberRecordsGoToOthers: a member dies in the
// middle of its handlers without acknowledging anything; the records it
// held are delivered to another member (delivery count 2) and processed
// there, each accepted once.
//
//   - closed: its client is closed abruptly; the broker sees the
//     connections go and releases the session's records.
//   - frozen: it stops answering, connections open (a hung process, a
//     network partition): only the acquisition locks running out give
//     its records back, while it is still a member of the group.
func TestShareGroupKilledMemberRecordsGoToOthers(t *testing.T) {
	for _, how := range []string{"closed", "frozen"} {
		t.Run(how, func(t *testing.T) { testKilledShareMember(t, how) })
	}
}

func testKilledShareMember(t *testing.T, how string) {
	const n = 200
	const lock = time.Second
	cl := shareCluster(t, lock)
	c := newClient(t, cl)
	ctx := testCtx(t, 60*time.Second)
	adm := startShareGroupAtBeginning(t, ctx, c, "g")
	l := newShareLedger()

	stuck := make(chan struct{}) // the victim's handlers never finish on their own
	t.Cleanup(func() { close(stuck) })
	victim := startShareMember(t, cl, "victim", "g", l, func(ctx context.Context, _ *keel.Message) error {
		select {
		case <-stuck:
		case <-ctx.Done():
		}
		return errors.New("the victim never gets this far")
	}, keel.ShareConcurrency(5), keel.ShareMaxRecords(20))
	victim.waitAssigned(t, ctx)
	victimID := victim.sc.MemberID()
	produceIDs(t, ctx, newProducer(t, c), shareTopic, n, nil)
	l.waitFor(t, ctx, "the victim in its handlers", func() bool { return len(l.handled) == 5 })
	l.mu.Lock()
	inVictim := make([]int64, 0, 5)
	for o := range l.handled {
		inVictim = append(inVictim, o)
	}
	l.mu.Unlock()

	switch how {
	case "closed":
		// No acknowledgement, no session close, no leave: the
		// connections just go.
		if err := victim.client.Close(ctx); err != nil {
			t.Fatal(err)
		}
	case "frozen":
		for _, key := range []kmsg.Key{kmsg.ShareFetch, kmsg.ShareAcknowledge, kmsg.ShareGroupHeartbeat} {
			cl.Control(key, func(req kmsg.Request) (kmsg.Response, error, bool) {
				if shareMemberOf(req) != victimID {
					return nil, nil, false
				}
				cl.KeepControl()
				return nil, nil, true // never answered
			})
		}
	}

	survivor := startShareMember(t, cl, "survivor", "g", l, func(context.Context, *keel.Message) error { return nil })
	survivor.waitAssigned(t, ctx)
	l.waitFor(t, ctx, "every record accepted", func() bool { return len(l.accepted) == n })
	if how == "frozen" {
		// Still a member: its records came back through their locks
		// running out, not through it leaving or being fenced.
		ds, err := adm.DescribeShareGroups(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(ds[0].Members, func(m admin.ShareMemberDescription) bool { return m.MemberID == victimID }) {
			t.Errorf("the frozen victim %s is no longer a member (%+v): its records were not freed by lock expiry", victimID, ds[0].Members)
		}
	}
	waitDone(t, ctx, adm, "g", n)

	l.mu.Lock()
	for o := range int64(n) {
		if l.accepted[o] != 1 {
			t.Errorf("offset %d accepted %d times", o, l.accepted[o])
		}
		ds := l.handled[o]
		last := ds[len(ds)-1]
		if last.member != "survivor" {
			t.Errorf("offset %d last handled by %s: %v", o, last.member, ds)
		}
	}
	for _, o := range inVictim {
		ds := l.handled[o]
		if len(ds) != 2 || ds[0].member != "victim" || ds[1] != (delivery{"survivor", 2}) {
			t.Errorf("offset %d the victim died on was handled as %v; want the victim, then the survivor with delivery count 2", o, ds)
		}
	}
	l.mu.Unlock()

	// The victim's consumer is dead weight now: closing it within a
	// short bound must still stop its goroutines (the leak check says).
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = victim.sc.Close(cctx) // fails: its brokers do not answer, or its client is closed
	select {
	case <-victim.done:
	case <-time.After(5 * time.Second):
		t.Error("the victim's Run did not return after Close")
	}
	victim.sc = nil
}

// shareMemberOf is the member id a share request carries.
func shareMemberOf(req kmsg.Request) string {
	switch r := req.(type) {
	case *kmsg.ShareFetchRequest:
		if r.MemberID != nil {
			return *r.MemberID
		}
	case *kmsg.ShareAcknowledgeRequest:
		if r.MemberID != nil {
			return *r.MemberID
		}
	case *kmsg.ShareGroupHeartbeatRequest:
		return r.MemberID
	}
	return ""
}

// TestShareGroupLongHandlerKeepsRecordsByRenewing: handlers that run
// three times the acquisition lock keep their records by renewing the
// lock (KIP-1222): another member, fetching the same partition all the
// while, never gets them, and they are accepted once with delivery count
// 1.
func TestShareGroupLongHandlerKeepsRecordsByRenewing(t *testing.T) {
	const lock = time.Second
	cl := shareCluster(t, lock)
	c := newClient(t, cl)
	ctx := testCtx(t, 60*time.Second)
	adm := startShareGroupAtBeginning(t, ctx, c, "g")
	l := newShareLedger()

	var renewMu sync.Mutex
	renewals := 0
	cl.Control(kmsg.ShareAcknowledge, func(req kmsg.Request) (kmsg.Response, error, bool) {
		if req.(*kmsg.ShareAcknowledgeRequest).IsRenewAck {
			renewMu.Lock()
			renewals++
			renewMu.Unlock()
		}
		return nil, nil, false // observe only
	})

	const slow = 5
	entered := make(chan struct{}, slow)
	returned := make(chan struct{}, slow)
	slowMember := startShareMember(t, cl, "slow", "g", l, func(ctx context.Context, m *keel.Message) error {
		entered <- struct{}{}
		defer func() { returned <- struct{}{} }()
		select {
		case <-time.After(3 * lock): // the point of the test: a handler longer than the lock
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, keel.ShareConcurrency(slow), keel.ShareMaxRecords(slow))
	slowMember.waitAssigned(t, ctx)
	p := newProducer(t, c)
	produceIDs(t, ctx, p, shareTopic, slow, nil)
	waitN := func(ch chan struct{}, what string) {
		for range slow {
			select {
			case <-ch:
			case <-ctx.Done():
				t.Fatalf("the slow handlers did not %s", what)
			}
		}
	}
	waitN(entered, "start")

	// Another member fetches the partition while the slow handlers run;
	// it handles the records produced now, and would get the slow ones
	// too the moment their locks ran out.
	fast := startShareMember(t, cl, "fast", "g", l, func(context.Context, *keel.Message) error { return nil })
	fast.waitAssigned(t, ctx)
	const more = 50
	produceIDs(t, ctx, p, shareTopic, more, nil)
	waitN(returned, "return")
	// Closing the slow member sends its acknowledgements and waits for
	// the answers: after it, the ledger has everything.
	slowMember.close(t)
	l.waitFor(t, ctx, "every record accepted", func() bool { return len(l.accepted) == slow+more })
	waitDone(t, ctx, adm, "g", slow+more)

	l.mu.Lock()
	defer l.mu.Unlock()
	for o := range int64(slow + more) {
		ds := l.handled[o]
		want := delivery{"fast", 1}
		if o < slow {
			want = delivery{"slow", 1}
		}
		if len(ds) != 1 || ds[0] != want || l.accepted[o] != 1 {
			t.Errorf("offset %d handled as %v, accepted %d; want once as %v, accepted once", o, ds, l.accepted[o], want)
		}
	}
	if len(l.failed) != 0 {
		t.Errorf("acknowledgements failed: %v", l.failed)
	}
	renewMu.Lock()
	defer renewMu.Unlock()
	if renewals == 0 {
		t.Error("no ShareAcknowledge renewed a lock")
	}
	t.Logf("%d renewing requests", renewals)
}

// TestShareGroupFencedMemberRejoins: a member told it is fenced drops
// what it holds, rejoins at epoch 0 with the same member id, and goes on;
// every record is still accepted exactly once.
func TestShareGroupFencedMemberRejoins(t *testing.T) {
	const n = 2000
	cl := shareCluster(t, 30*time.Second)
	c := newClient(t, cl)
	ctx := testCtx(t, 60*time.Second)
	adm := startShareGroupAtBeginning(t, ctx, c, "g")
	l := newShareLedger()
	var joins sync.Map // member id -> epoch-0 heartbeats
	cl.Control(kmsg.ShareGroupHeartbeat, func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.ShareGroupHeartbeatRequest)
		if r.MemberEpoch == 0 {
			v, _ := joins.LoadOrStore(r.MemberID, new(atomic.Int32))
			v.(*atomic.Int32).Add(1)
		}
		return nil, nil, false
	})
	m := startShareMember(t, cl, "m", "g", l, func(context.Context, *keel.Message) error { return nil }, keel.ShareMaxRecords(50))
	m.waitAssigned(t, ctx)
	produceIDs(t, ctx, newProducer(t, c), shareTopic, n, nil)
	l.waitFor(t, ctx, "some records accepted", func() bool { return len(l.accepted) > 0 })
	cl.FailRequests(kmsg.ShareGroupHeartbeat, kerr.FencedMemberEpoch.Code, 1)
	l.waitFor(t, ctx, "every record accepted", func() bool { return len(l.accepted) == n })
	waitDone(t, ctx, adm, "g", n)

	l.mu.Lock()
	for o := range int64(n) {
		if l.accepted[o] != 1 {
			t.Errorf("offset %d accepted %d times", o, l.accepted[o])
		}
	}
	l.mu.Unlock()
	v, ok := joins.Load(m.sc.MemberID())
	if !ok || v.(*atomic.Int32).Load() < 2 {
		t.Errorf("member %s joined %v times at epoch 0; want a rejoin with the same id after the fence", m.sc.MemberID(), v)
	}
}
