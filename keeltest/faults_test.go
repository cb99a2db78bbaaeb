package keeltest

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFailRequests checks FailRequests fails exactly count requests, only
// for the selected topic, partition, node or group.
func TestFailRequests(t *testing.T) {
	t.Run("partition", func(t *testing.T) {
		c := NewCluster(t, Brokers(1), Topic("t", 2), Topic("other", 1))
		h := c.FailRequests(kmsg.ListOffsets, kerr.NotLeaderForPartition.Code, 2, OnTopic("t"), OnPartitions(0))
		r := dialRaw(t, c.Addr())
		for i := range 3 {
			resp := r.mustDo(listOffsetsReq("t", 0, 1)).(*kmsg.ListOffsetsResponse)
			ps := resp.Topics[0].Partitions
			want := kerr.NotLeaderForPartition.Code
			if i == 2 {
				want = 0
			}
			if ps[0].ErrorCode != want || ps[1].ErrorCode != 0 {
				t.Errorf("request %d: codes %d, %d; want %d, 0", i, ps[0].ErrorCode, ps[1].ErrorCode, want)
			}
			other := r.mustDo(listOffsetsReq("other", 0)).(*kmsg.ListOffsetsResponse)
			if code := other.Topics[0].Partitions[0].ErrorCode; code != 0 {
				t.Errorf("other topic failed with %d", code)
			}
		}
		if h.Hits() != 2 {
			t.Errorf("Hits() = %d, want 2", h.Hits())
		}
		if err := h.Wait(testCtx(t), 2); err != nil {
			t.Error(err)
		}
	})

	t.Run("node until removed", func(t *testing.T) {
		c := NewCluster(t, Brokers(2))
		h := c.FailRequests(kmsg.DescribeCluster, kerr.ClusterAuthorizationFailed.Code, -1, OnNodes(1))
		describe := func(node int32) int16 {
			req := kmsg.NewPtrDescribeClusterRequest()
			return dialRaw(t, c.AddrOf(node)).mustDo(req).(*kmsg.DescribeClusterResponse).ErrorCode
		}
		for range 3 {
			if code := describe(1); code != kerr.ClusterAuthorizationFailed.Code {
				t.Errorf("node 1 answered %d", code)
			}
		}
		if code := describe(0); code != 0 {
			t.Errorf("node 0 answered %d", code)
		}
		h.Remove()
		if code := describe(1); code != 0 {
			t.Errorf("after Remove node 1 answered %d", code)
		}
	})

	t.Run("group", func(t *testing.T) {
		c := NewCluster(t, Brokers(1))
		c.FailRequests(kmsg.FindCoordinator, kerr.CoordinatorNotAvailable.Code, 1, OnGroup("g"))
		find := func(group string) int16 {
			req := kmsg.NewPtrFindCoordinatorRequest()
			req.SetVersion(2)
			req.CoordinatorKey = group
			return dialRaw(t, c.Addr()).mustDo(req).(*kmsg.FindCoordinatorResponse).ErrorCode
		}
		if code := find("h"); code != 0 {
			t.Errorf("group h: %d", code)
		}
		if code := find("g"); code != kerr.CoordinatorNotAvailable.Code {
			t.Errorf("group g: %d", code)
		}
		if code := find("g"); code != 0 {
			t.Errorf("group g, second time: %d", code)
		}
	})

	t.Run("unknown code", func(t *testing.T) {
		c := NewCluster(t, Brokers(1), Topic("t", 1))
		c.FailRequests(kmsg.ListOffsets, 9999, 1)
		resp := dialRaw(t, c.Addr()).mustDo(listOffsetsReq("t", 0)).(*kmsg.ListOffsetsResponse)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 9999 {
			t.Errorf("code %d, want 9999", code)
		}
	})

	t.Run("zero count panics", func(t *testing.T) {
		c := NewCluster(t, Brokers(1))
		defer func() {
			if recover() == nil {
				t.Error("no panic")
			}
		}()
		c.FailRequests(kmsg.Produce, kerr.RequestTimedOut.Code, 0)
	})
}

// TestFailProduceAfterAppend checks REQUEST_TIMED_OUT on Produce appends
// the records anyway, while NOT_LEADER_OR_FOLLOWER does not.
func TestFailProduceAfterAppend(t *testing.T) {
	c := NewCluster(t, Topic("t", 1))
	cl := newClient(t, c, kgo.DisableIdempotentWrite())

	h := c.FailRequests(kmsg.Produce, kerr.RequestTimedOut.Code, 1, OnTopic("t"))
	produce(t, cl, "t") // fails once, the retry succeeds
	if h.Hits() != 1 {
		t.Fatalf("Hits() = %d", h.Hits())
	}
	if hw := c.HighWatermark("t", 0); hw != 2 {
		t.Errorf("after a timed-out produce and its retry, high watermark %d, want 2 (written twice)", hw)
	}

	h = c.FailRequests(kmsg.Produce, kerr.NotLeaderForPartition.Code, 1, OnTopic("t"))
	produce(t, cl, "t")
	if h.Hits() != 1 {
		t.Fatalf("Hits() = %d", h.Hits())
	}
	if hw := c.HighWatermark("t", 0); hw != 3 {
		t.Errorf("after a rejected produce and its retry, high watermark %d, want 3 (written once)", hw)
	}
}

// TestFault checks the kfake pass-through, observing without failing.
func TestFault(t *testing.T) {
	c := NewCluster(t, Brokers(1), Topic("t", 1))
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Topic: "t", Observe: true, Count: -1})
	r := dialRaw(t, c.Addr())
	for range 2 {
		resp := r.mustDo(metadataReq("t")).(*kmsg.MetadataResponse)
		if code := resp.Topics[0].ErrorCode; code != 0 {
			t.Fatalf("observed metadata failed with %d", code)
		}
	}
	if err := h.Wait(testCtx(t), 2); err != nil {
		t.Fatal(err)
	}

	// A fault on a request kind with entities fires per entity: Metadata
	// for no topics has none, so it is never faulted (or counted).
	h = c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Topic: "none", Count: -1})
	r.mustDo(metadataReq())
	if h.Hits() != 0 {
		t.Errorf("Hits() = %d for a request without the topic", h.Hits())
	}
}

// TestDropConnections checks exactly count connections are closed, only on
// the selected node, that the request is not handled, and Remove.
func TestDropConnections(t *testing.T) {
	c := NewCluster(t, Brokers(2))
	h := c.DropConnections(kmsg.Metadata, 2, 1)
	if _, err := dialRaw(t, c.AddrOf(0)).do(metadataReq()); err != nil {
		t.Fatalf("node 0: %v", err)
	}
	for i := range 2 {
		r := dialRaw(t, c.AddrOf(1))
		if _, err := r.do(metadataReq()); !isClosed(err) {
			t.Fatalf("drop %d: %v, want closed connection", i, err)
		}
	}
	if _, err := dialRaw(t, c.AddrOf(1)).do(metadataReq()); err != nil {
		t.Fatalf("after the drops: %v", err)
	}
	if h.Dropped() != 2 {
		t.Errorf("Dropped() = %d", h.Dropped())
	}
	if err := h.Wait(testCtx(t), 2); err != nil {
		t.Error(err)
	}

	// A dropped request is not handled.
	c.DropConnections(kmsg.CreateTopics, 1)
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(4)
	req.TimeoutMillis = 5000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "dropped", 1, 1
	req.Topics = append(req.Topics, rt)
	if _, err := dialRaw(t, c.Addr()).do(req); !isClosed(err) {
		t.Fatalf("CreateTopics: %v, want closed connection", err)
	}
	if n := c.Partitions("dropped"); n != 0 {
		t.Errorf("dropped CreateTopics created the topic")
	}

	// Unlimited until Remove.
	h = c.DropConnections(kmsg.ApiVersions, -1)
	av := kmsg.NewPtrApiVersionsRequest()
	for range 3 {
		if _, err := dialRaw(t, c.Addr()).do(av); !isClosed(err) {
			t.Fatalf("ApiVersions: %v, want closed connection", err)
		}
	}
	h.Remove()
	if _, err := dialRaw(t, c.Addr()).do(av); err != nil {
		t.Fatalf("after Remove: %v", err)
	}
}

// TestDropConnectionsConcurrent checks the count holds under concurrent
// connections.
func TestDropConnectionsConcurrent(t *testing.T) {
	c := NewCluster(t)
	h := c.DropConnections(kmsg.Metadata, 5)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed int
	)
	for i := range 12 {
		wg.Add(1)
		r := dialRaw(t, c.Addrs()[i%3])
		corr := r.send(metadataReq())
		go func() {
			defer wg.Done()
			_, err := r.recv(metadataReq(), corr, testTimeout)
			if isClosed(err) {
				mu.Lock()
				closed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if closed != 5 || h.Dropped() != 5 {
		t.Errorf("%d connections closed, Dropped() = %d, want 5", closed, h.Dropped())
	}
}

// TestStopAnswering checks a broker goes silent for one key on one node,
// that requests behind it on the same connection wait, that other
// connections and nodes are unaffected, and that resume answers the held
// requests.
func TestStopAnswering(t *testing.T) {
	c := NewCluster(t, Brokers(2))
	resume := c.StopAnswering(kmsg.Metadata, 1)

	if _, err := dialRaw(t, c.AddrOf(0)).do(metadataReq()); err != nil {
		t.Fatalf("node 0: %v", err)
	}
	held := dialRaw(t, c.AddrOf(1))
	mdReq := metadataReq()
	mdCorr := held.send(mdReq)
	av := kmsg.NewPtrApiVersionsRequest()
	avCorr := held.send(av) // queued behind the held request
	if _, err := held.recv(mdReq, mdCorr, 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("held metadata: %v, want a read timeout", err)
	}
	// Another connection to the same broker is served.
	if _, err := dialRaw(t, c.AddrOf(1)).do(av); err != nil {
		t.Fatalf("ApiVersions on another connection: %v", err)
	}

	resume()
	resume() // twice is fine
	if _, err := held.recv(mdReq, mdCorr, testTimeout); err != nil {
		t.Fatalf("held metadata after resume: %v", err)
	}
	if _, err := held.recv(av, avCorr, testTimeout); err != nil {
		t.Fatalf("queued ApiVersions after resume: %v", err)
	}
	if _, err := dialRaw(t, c.AddrOf(1)).do(mdReq); err != nil {
		t.Fatalf("metadata after resume: %v", err)
	}
}

// TestHoldRequests checks Wait sees a held request and that a held request
// is handled on Resume even if its client gave up.
func TestHoldRequests(t *testing.T) {
	c := NewCluster(t, Brokers(1))
	h := c.HoldRequests(kmsg.CreateTopics)
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(4)
	req.TimeoutMillis = 5000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "late", 2, 1
	req.Topics = append(req.Topics, rt)
	r := dialRaw(t, c.Addr())
	r.send(req)
	if err := h.Wait(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if n := c.Partitions("late"); n != 0 {
		t.Fatal("held CreateTopics already applied")
	}
	r.conn.Close() // the client gives up
	h.Resume()
	deadline := time.Now().Add(testTimeout)
	for c.Partitions("late") != 2 {
		if time.Now().After(deadline) {
			t.Fatal("held CreateTopics never applied after Resume")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h.Held() != 1 {
		t.Errorf("Held() = %d", h.Held())
	}
}

// TestCloseWhileHolding checks Close does not hang on a request held
// without resume.
func TestCloseWhileHolding(t *testing.T) {
	c, err := Start(Brokers(1))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.StopAnswering(kmsg.Metadata, -1)
	h := c.HoldRequests(kmsg.ApiVersions, 0)
	r := dialRaw(t, c.Addr())
	r.send(metadataReq())
	r2 := dialRaw(t, c.Addr())
	r2.send(kmsg.NewPtrApiVersionsRequest())
	if err := h.Wait(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("Close hung with held requests")
	}
	h.Resume() // after Close: harmless
	if h2 := c.HoldRequests(kmsg.Fetch); h2 == nil {
		t.Fatal("nil Hold after Close")
	}
}

// TestControl checks the Control pass-through can answer, observe with
// CurrentNode, and swallow a request.
func TestControl(t *testing.T) {
	c := NewCluster(t, Brokers(2))
	var (
		mu    sync.Mutex
		nodes []int32
	)
	c.Control(kmsg.Metadata, func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		nodes = append(nodes, c.CurrentNode())
		mu.Unlock()
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		resp.SetVersion(req.GetVersion())
		id := "controlled"
		resp.ClusterID = &id
		return resp, nil, true
	})
	for _, node := range []int32{1, 0} {
		resp := metadata(t, c.AddrOf(node))
		if resp.ClusterID == nil || *resp.ClusterID != "controlled" {
			t.Errorf("node %d: control did not answer", node)
		}
	}
	mu.Lock()
	if len(nodes) != 2 || nodes[0] != 1 || nodes[1] != 0 {
		t.Errorf("CurrentNode saw %v, want [1 0]", nodes)
	}
	mu.Unlock()

	// nil, nil, true swallows the request: no answer, connection open.
	c.Control(kmsg.ApiVersions, func(kmsg.Request) (kmsg.Response, error, bool) { return nil, nil, true })
	r := dialRaw(t, c.Addr())
	av := kmsg.NewPtrApiVersionsRequest()
	if _, err := r.recv(av, r.send(av), 300*time.Millisecond); !isTimeout(err) {
		t.Errorf("swallowed request: %v, want a read timeout", err)
	}
	// The control handled one request and is gone.
	if _, err := dialRaw(t, c.Addr()).do(av); err != nil {
		t.Errorf("next ApiVersions: %v", err)
	}
}
