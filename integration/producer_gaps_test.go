package integration

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/keeltest"
)

// Regression tests for the producer's known gaps named in issue 18 (the
// ordering ones are unit tests in internal/produce/gaps_test.go).

// A topic deleted while records are buffered for it ends with a typed
// ErrUnknownTopic within the client's unknown-topic bound (UnknownTopicRetries
// metadata answers), not by retrying until the delivery timeout; records
// produced to it afterwards fail the same way.
func TestGapDeletedTopicFailsTypedWithinBound(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 3))
	c := newClient(t, cl, keel.MetadataMinRefreshInterval(10*time.Millisecond))
	p := newProducer(t, c, keel.ProduceRequestTimeout(time.Second), keel.DeliveryTimeout(2*time.Minute))
	ctx := testCtx(t, 60*time.Second)
	if _, err := p.Send(ctx, &keel.Message{Topic: "t", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := cl.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		start := time.Now()
		d, err := p.Send(sctx, &keel.Message{Topic: "t", Value: []byte("y")})
		cancel()
		t.Logf("record %d for the deleted topic: %v after %v", i, err, time.Since(start).Round(time.Millisecond))
		if !errors.Is(err, keel.ErrUnknownTopic) {
			t.Fatalf("record %d for a deleted topic: want ErrUnknownTopic within the bound, got %v", i, err)
		}
		if d.Outcome() != keel.NotWritten {
			t.Fatalf("record %d: outcome %v, want NotWritten", i, d.Outcome())
		}
	}
}

// InitProducerId refused for good (the principal may not write
// idempotently: CLUSTER_AUTHORIZATION_FAILED) fails the buffered records
// at once with that cause instead of retrying until the delivery timeout;
// once the broker allows it again, producing works.
func TestGapInitProducerIDAuthorizationFailsPromptly(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 2))
	c := newClient(t, cl)
	fault := cl.FailRequests(kmsg.InitProducerID, errs.CodeClusterAuthorizationFailed, -1)
	p := newProducer(t, c, keel.DeliveryTimeout(2*time.Minute))
	ctx := testCtx(t, 60*time.Second)
	chs := make(chan keel.Delivery, 10)
	for i := range 10 {
		p.Produce(ctx, &keel.Message{Topic: "t", Value: []byte(strconv.Itoa(i))}, chs)
	}
	deadline := time.After(20 * time.Second)
	for i := range 10 {
		select {
		case d := <-chs:
			var ke *keel.Error
			if !errors.As(d.Err, &ke) || ke.Code != errs.CodeClusterAuthorizationFailed {
				t.Fatalf("report %d: want the CLUSTER_AUTHORIZATION_FAILED cause, got %v", i, d.Err)
			}
			if d.Outcome() != keel.NotWritten {
				t.Fatalf("report %d: outcome %v, want NotWritten", i, d.Outcome())
			}
		case <-deadline:
			t.Fatalf("%d of 10 records reported 20s after InitProducerId was refused for good", i)
		}
	}
	fault.Remove()
	if _, err := p.Send(ctx, &keel.Message{Topic: "t", Value: []byte("after")}); err != nil {
		t.Fatalf("once InitProducerId is allowed again: %v", err)
	}
}

// Close returns when its ctx ends even while a produce request is stuck in
// a socket write (the broker stopped reading): the write is abandoned, not
// waited out for the request timeout; every record still gets a report.
func TestGapCloseBoundedByCtxWithBlockedWrite(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	px := newFreezeProxy(t, cl.Addr())
	node := cl.NodeIDs()[0]
	host, portStr, _ := net.SplitHostPort(px.addr())
	port, _ := strconv.Atoi(portStr)
	// Every metadata answer names the proxy as the broker, so every
	// connection of the client goes through it.
	cl.Control(kmsg.Metadata, func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = node, host, int32(port)
		resp.Brokers = append(resp.Brokers, b)
		resp.ControllerID = node
		mt := kmsg.NewMetadataResponseTopic()
		name := "t"
		mt.Topic = &name
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Leader, mp.Replicas, mp.ISR = node, []int32{node}, []int32{node}
		mt.Partitions = append(mt.Partitions, mp)
		resp.Topics = append(resp.Topics, mt)
		return resp, nil, true
	})
	c, err := keel.NewClient(keel.SeedBrokers(px.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	p, err := keel.NewProducer(c, keel.Linger(0), keel.MaxBatchBytes(1<<20),
		keel.ProduceRequestTimeout(time.Minute), keel.DeliveryTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 90*time.Second)
	if _, err := p.Send(ctx, &keel.Message{Topic: "t", Value: []byte("warm")}); err != nil {
		t.Fatal(err)
	}
	px.freeze()
	const n = 48
	ch := make(chan keel.Delivery, n)
	big := make([]byte, 1000_000)
	for range n {
		p.Produce(ctx, &keel.Message{Topic: "t", Value: big}, ch)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	cerr := p.Close(cctx)
	took := time.Since(start)
	t.Logf("Close with a 1s ctx took %v: %v", took.Round(time.Millisecond), cerr)
	if took > 10*time.Second {
		t.Fatalf("Close took %v with a 1s ctx (the request timeout is 1m): a blocked write held it", took)
	}
	for i := range n {
		select {
		case d := <-ch:
			if d.Err == nil {
				t.Fatalf("report %d: delivered through a broker that read nothing", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d records reported after Close", i, n)
		}
	}
	px.close()
}

// freezeProxy forwards TCP connections to a broker until freeze, after
// which it stops reading what clients send (their writes block once the
// socket buffers are full), as a broker that hangs would.
type freezeProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	frozen chan struct{}
	once   sync.Once
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &freezeProxy{t: t, ln: ln, target: target, frozen: make(chan struct{})}
	px.wg.Add(1)
	go px.accept()
	t.Cleanup(px.close)
	return px
}

func (px *freezeProxy) addr() string { return px.ln.Addr().String() }

func (px *freezeProxy) freeze() {
	px.mu.Lock()
	defer px.mu.Unlock()
	select {
	case <-px.frozen:
	default:
		close(px.frozen)
	}
}

func (px *freezeProxy) accept() {
	defer px.wg.Done()
	for {
		client, err := px.ln.Accept()
		if err != nil {
			return
		}
		broker, err := net.Dial("tcp", px.target)
		if err != nil {
			client.Close()
			continue
		}
		px.mu.Lock()
		px.conns = append(px.conns, client, broker)
		px.mu.Unlock()
		px.wg.Add(2)
		go func() { // client to broker, until frozen
			defer px.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				select {
				case <-px.frozen:
					return // stop reading: the client's writes back up
				default:
				}
				n, err := client.Read(buf)
				if n > 0 {
					if _, werr := broker.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() {
			defer px.wg.Done()
			io.Copy(client, broker)
		}()
	}
}

func (px *freezeProxy) close() {
	px.once.Do(func() {
		px.ln.Close()
		px.mu.Lock()
		for _, c := range px.conns {
			c.Close()
		}
		px.mu.Unlock()
		px.wg.Wait()
	})
}
