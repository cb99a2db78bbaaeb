package integration

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

// Callbacks and channels share batches: a delivered batch's records with a
// callback wait in the batch until their callbacks ran (the dispatcher
// keeps the report), the others go to their channel at once. Every record
// is reported once, to its own target, with its own message and offset, in
// order per target; and with a buffer of 32 records the callbacks' budget
// must come back for 3,000 records to get through at all.
func TestCallbacksAndChannelsShareBatches(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c := newClient(t, cl)
	p := newProducer(t, c, keel.MaxBufferedRecords(32), keel.Linger(2*time.Millisecond))
	ctx := testCtx(t, 60*time.Second)
	const n = 3000
	msgs := make([]*keel.Message, n)
	ch := make(chan keel.Delivery, 16)
	var mu sync.Mutex
	var cbOffsets []int64
	bad := make(chan string, 1)
	fail := func(s string) {
		select {
		case bad <- s:
		default:
		}
	}
	var chOffsets []int64
	chDone := make(chan struct{})
	go func() {
		defer close(chDone)
		for range n / 2 {
			select {
			case d := <-ch:
				i, _ := strconv.Atoi(string(d.Message.Value))
				if d.Err != nil || d.Message != msgs[i] || i%2 != 1 || d.Timestamp.IsZero() {
					fail("channel report " + strconv.Itoa(i) + " wrong")
				}
				chOffsets = append(chOffsets, d.Offset)
			case <-ctx.Done():
				fail("channel reports missing")
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range n {
		m := &keel.Message{Topic: "t", Value: []byte(strconv.Itoa(i))}
		msgs[i] = m
		if i%2 == 1 {
			p.Produce(ctx, m, ch)
			continue
		}
		wg.Add(1)
		p.ProduceFunc(ctx, m, func(d keel.Delivery) {
			defer wg.Done()
			if d.Err != nil || d.Message != m || d.Timestamp.IsZero() {
				fail("callback report " + string(m.Value) + " wrong: " + errString(d.Err))
			}
			mu.Lock()
			cbOffsets = append(cbOffsets, d.Offset)
			mu.Unlock()
		})
	}
	wg.Wait()
	<-chDone
	select {
	case s := <-bad:
		t.Fatal(s)
	default:
	}
	seen := make(map[int64]bool, n)
	for what, offs := range map[string][]int64{"callback": cbOffsets, "channel": chOffsets} {
		if len(offs) != n/2 {
			t.Fatalf("%d %s reports, want %d", len(offs), what, n/2)
		}
		for i, o := range offs {
			if i > 0 && o <= offs[i-1] {
				t.Fatalf("%s report %d has offset %d after %d: out of order", what, i, o, offs[i-1])
			}
			if seen[o] {
				t.Fatalf("offset %d reported twice", o)
			}
			seen[o] = true
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Delivered != n || st.BufferedRecords != 0 {
		t.Fatalf("stats: %d delivered, %d still buffered; want %d and 0", st.Delivered, st.BufferedRecords, n)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
