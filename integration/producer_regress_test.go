package integration

import (
	"context"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A record whose produce request reached the broker and is held there is
// failed by Close: it must be OutcomeUnknown, never NotWritten.
func TestRegressionCloseInFlightOutcome(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 400))
	notWritten := 0
	for iter := 0; iter < 10; iter++ {
		c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...))
		if err != nil {
			t.Fatal(err)
		}
		p, err := keel.NewProducer(c, keel.Linger(0), keel.ManualPartitioner())
		if err != nil {
			t.Fatal(err)
		}
		// warm up so the producer id and metadata are known
		if _, err := p.Send(context.Background(), &keel.Message{Topic: "t", Partition: 399, Value: []byte("w")}); err != nil {
			t.Fatal(err)
		}
		h := cl.HoldRequests(kmsg.Produce)
		ch := make(chan keel.Delivery, 1)
		p.Produce(context.Background(), &keel.Message{Topic: "t", Partition: 399, Value: []byte("x")}, ch)
		wctx, wc := context.WithTimeout(context.Background(), 5*time.Second)
		if err := h.Wait(wctx, 1); err != nil {
			t.Fatal(err)
		}
		wc()
		cctx, cc := context.WithTimeout(context.Background(), 100*time.Millisecond)
		p.Close(cctx)
		cc()
		d := <-ch
		if d.Outcome() == keel.NotWritten {
			notWritten++
			t.Logf("iter %d: held (sent) record reported NotWritten: %v", iter, d.Err)
		}
		h.Resume()
		c.Close(context.Background())
	}
	if notWritten > 0 {
		t.Errorf("%d/10 sent records reported NotWritten at Close", notWritten)
	}
}

// A batch whose records were all cancelled is dropped at seal time; the
// batch behind it must still be sent.
func TestRegressionSealDropStall(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	h := cl.HoldRequests(kmsg.InitProducerID)
	p, err := keel.NewProducer(c, keel.Linger(0), keel.MaxBatchBytes(1024), keel.ProduceRequestTimeout(time.Second), keel.DeliveryTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx1, cancel1 := context.WithCancel(context.Background())
	ch := make(chan keel.Delivery, 10)
	val := make([]byte, 450)
	for range 2 {
		p.Produce(ctx1, &keel.Message{Topic: "t", Value: val}, ch)
	}
	bch := make(chan keel.Delivery, 1)
	p.Produce(context.Background(), &keel.Message{Topic: "t", Value: make([]byte, 200)}, bch)
	wctx, wc := context.WithTimeout(context.Background(), 5*time.Second)
	defer wc()
	if err := h.Wait(wctx, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // let a reaper tick pass
	cancel1()
	h.Resume()
	start := time.Now()
	d := <-bch
	t.Logf("B after %v: %v %v", time.Since(start), d.Outcome(), d.Err)
	if d.Err != nil {
		t.Errorf("record behind a cancelled batch was not sent: %v", d.Err)
	}
}

// acks=0: a batch that expires while its connection is being dialed is
// reported twice (expired, then "delivered" by finishUnacked).
func TestRegressionAcksZeroDoubleReport(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...), keel.UnknownTopicRetries(0), keel.DialTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	p, err := keel.NewProducer(c, keel.WithAcks(keel.AcksNone), keel.Linger(0), keel.ProduceRequestTimeout(time.Second), keel.DeliveryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	// general connection up, via a metadata lookup that fails
	d, _ := p.Send(context.Background(), &keel.Message{Topic: "nope", Value: []byte("x")})
	t.Logf("warm-up: %v", d.Err)
	h := cl.HoldRequests(kmsg.ApiVersions)
	ch := make(chan keel.Delivery, 10)
	p.Produce(context.Background(), &keel.Message{Topic: "t", Value: []byte("x")}, ch)
	time.Sleep(3 * time.Second)
	h.Resume()
	n := 0
	for done := false; !done; {
		select {
		case d := <-ch:
			n++
			t.Logf("report %d: %v %v", n, d.Outcome(), d.Err)
		case <-time.After(time.Second):
			done = true
		}
	}
	if n != 1 {
		t.Errorf("%d reports for one record", n)
	}
}

// A topic that disappears (deleted) while the producer knows it: the
// metadata refresh must not crash, and the next record fails.
func TestRegressionTopicDeleted(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 3))
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...), keel.MetadataMinRefreshInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	p, err := keel.NewProducer(c, keel.ProduceRequestTimeout(time.Second), keel.DeliveryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if _, err := p.Send(context.Background(), &keel.Message{Topic: "t", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := cl.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Metadata(context.Background()); err != nil { // refreshes: must not crash the producer
		t.Fatal(err)
	}
	d, _ := p.Send(context.Background(), &keel.Message{Topic: "t", Value: []byte("y")})
	if d.Err == nil {
		t.Fatal("a record for a deleted topic was reported delivered")
	}
}

// Time spent waiting for topic metadata is not counted in the delivery timeout.
func TestRegressionDeliveryBoundMetadataWait(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	p, err := keel.NewProducer(c, keel.ProduceRequestTimeout(time.Second), keel.DeliveryTimeout(2*time.Second), keel.Idempotence(false), keel.WithAcks(keel.AcksLeader))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	d0, _ := p.Send(context.Background(), &keel.Message{Topic: "nope", Value: []byte("x")}) // general conn up
	_ = d0
	hm := cl.HoldRequests(kmsg.Metadata)
	hp := cl.HoldRequests(kmsg.Produce)
	defer hp.Resume()
	ch := make(chan keel.Delivery, 1)
	start := time.Now()
	p.Produce(context.Background(), &keel.Message{Topic: "t", Value: []byte("x")}, ch)
	time.Sleep(1800 * time.Millisecond)
	hm.Resume()
	d := <-ch
	el := time.Since(start)
	t.Logf("outcome after %v (delivery timeout 2s): %v %v", el, d.Outcome(), d.Err)
	if el > 2300*time.Millisecond {
		t.Errorf("record outlived its delivery timeout by %v", el-2*time.Second)
	}
}

// Flush under steady production from another goroutine.
func TestRegressionFlushUnderLoad(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 3))
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	p, err := keel.NewProducer(c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		for range p.Events() {
		}
	}()
	for g := 0; g < 4; g++ {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p.Produce(context.Background(), &keel.Message{Topic: "t", Value: []byte("x")}, nil)
			}
		}()
	}
	close(done)
	time.Sleep(200 * time.Millisecond)
	fctx, fc := context.WithTimeout(context.Background(), 3*time.Second)
	start := time.Now()
	err = p.Flush(fctx)
	fc()
	t.Logf("Flush under load: %v after %v", err, time.Since(start))
	close(stop)
	<-done
	if err != nil {
		t.Errorf("Flush never returned under steady load though earlier records were delivered")
	}
}

func TestRegressionCloseBlockedCallback(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	p, err := keel.NewProducer(c)
	if err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	entered := make(chan struct{}, 1)
	p.ProduceFunc(context.Background(), &keel.Message{Topic: "t", Value: []byte("x")}, func(keel.Delivery) { entered <- struct{}{}; <-block })
	<-entered
	ctx, cc := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cc()
	res := make(chan error, 1)
	start := time.Now()
	go func() { res <- p.Close(ctx) }()
	select {
	case <-res:
		if took := time.Since(start); took > time.Second {
			t.Errorf("Close took %v with a 200ms ctx", took)
		}
		close(block)
	case <-time.After(3 * time.Second):
		close(block)
		<-res
		t.Errorf("Close(ctx 200ms) still blocked after 3s by a callback that does not return")
	}
}
