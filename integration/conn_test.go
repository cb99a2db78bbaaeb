package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/keeltest"
)

func connConfig() *conn.Config {
	return &conn.Config{ClientID: "keel-test", DialTimeout: 5 * time.Second, RequestTimeout: 10 * time.Second}
}

func dial(t *testing.T, addr string, cfg *conn.Config) *conn.Conn {
	t.Helper()
	c, err := conn.Dial(testCtx(t, 10*time.Second), addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func metadataFor(topic string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	return req
}

// 150 requests in flight at once on one connection, each asking about a
// different topic: every answer must come back to the request that asked.
func TestPipeliningManyRequestsOneConnection(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1))
	var dials atomic.Int32
	cfg := connConfig()
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	c := dial(t, cl.Addr(), cfg)

	// Hold the requests at the broker so that all of them are in flight on
	// the connection together, not answered one by one as they arrive.
	hold := cl.HoldRequests(kmsg.Metadata)
	const n = 150
	ctx := testCtx(t, 30*time.Second)
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("pipelined-%03d", i)
			resp, err := c.Request(ctx, metadataFor(topic))
			if err != nil {
				errc <- fmt.Errorf("request %d: %w", i, err)
				return
			}
			md := resp.(*kmsg.MetadataResponse)
			if len(md.Topics) != 1 || md.Topics[0].Topic == nil || *md.Topics[0].Topic != topic {
				errc <- fmt.Errorf("request %d for %q got an answer about %v", i, topic, md.Topics)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.InFlight() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := c.InFlight(); got < n {
		t.Errorf("only %d of %d requests in flight at once", got, n)
	}
	hold.Resume()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if d := dials.Load(); d != 1 {
		t.Errorf("dialed %d times, want 1 connection", d)
	}
}

func TestNegotiationFollowsBrokerCap(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.MaxVersions(kversion.V2_1_0()))
	c := dial(t, cl.Addr(), connConfig())
	v21 := kversion.V2_1_0()
	for _, key := range []kmsg.Key{kmsg.Produce, kmsg.Fetch, kmsg.Metadata, kmsg.JoinGroup, kmsg.OffsetCommit, kmsg.FindCoordinator} {
		want, _ := v21.LookupMaxKeyVersion(int16(key))
		if got := c.Versions().Version(int16(key)); got != want {
			t.Errorf("%s: negotiated v%d, want the broker's cap v%d", key.Name(), got, want)
		}
	}
	// The connection works at those versions.
	if _, err := c.Request(testCtx(t, 10*time.Second), kmsg.NewPtrMetadataRequest()); err != nil {
		t.Fatal(err)
	}
}

func TestNegotiationFollowsClientCap(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1))
	cfg := connConfig()
	cfg.MaxVersions = map[int16]int16{int16(kmsg.Metadata): 4}
	c := dial(t, cl.Addr(), cfg)
	if got := c.Versions().Version(int16(kmsg.Metadata)); got != 4 {
		t.Fatalf("Metadata negotiated v%d, want client cap v4", got)
	}
	if got := c.Versions().Version(int16(kmsg.Produce)); got < 7 {
		t.Fatalf("Produce negotiated v%d, want the highest both support", got)
	}
}

func TestBrokerTooOldIsRefusedByName(t *testing.T) {
	old := kversion.V2_1_0()
	old.SetMaxKeyVersion(int16(kmsg.Produce), 2) // before record batch v2
	cl := startCluster(t, keeltest.Brokers(1), keeltest.MaxVersions(old))
	_, err := conn.Dial(testCtx(t, 10*time.Second), cl.Addr(), connConfig())
	if !errors.Is(err, errs.ErrUnsupportedBroker) {
		t.Fatalf("want ErrUnsupportedBroker, got %v", err)
	}
	for _, want := range []string{"Produce", cl.Addr(), "v2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestDroppedConnectionFailsInFlightRetriablyThenReconnects(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1))
	pool := conn.NewPool(connConfig(), conn.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}, 0)
	t.Cleanup(pool.Close)
	ctx := testCtx(t, 20*time.Second)

	c1, err := pool.Get(ctx, cl.Addr(), conn.General)
	if err != nil {
		t.Fatal(err)
	}
	// Hold a first request at the broker so that the next ones queue up in
	// flight behind it; then release it and drop the connection on the
	// first of the queued ones: every one of them must fail retriably.
	hold := cl.HoldRequests(kmsg.ListGroups)
	first := make(chan error, 1)
	go func() {
		_, err := c1.Request(ctx, kmsg.NewPtrListGroupsRequest())
		first <- err
	}()
	if err := hold.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const queued = 4
	var wg sync.WaitGroup
	errc := make(chan error, queued)
	for i := range queued {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c1.Request(ctx, metadataFor(fmt.Sprint("t", i)))
			errc <- err
		}()
	}
	for c1.InFlight() < queued+1 {
		time.Sleep(2 * time.Millisecond)
	}
	drop := cl.DropConnections(kmsg.Metadata, 1)
	hold.Resume()
	if err := <-first; err != nil {
		t.Fatalf("the held request, answered before the drop: %v", err)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if !errors.Is(err, errs.ErrConnectionClosed) || !errs.IsRetriable(err) {
			t.Errorf("want a retriable ErrConnectionClosed, got %v", err)
		}
	}
	if drop.Dropped() != 1 {
		t.Fatalf("dropped=%d, want 1", drop.Dropped())
	}
	select {
	case <-c1.Dead():
	case <-time.After(5 * time.Second):
		t.Fatal("connection not marked dead after the broker closed it")
	}
	c2, err := pool.Get(ctx, cl.Addr(), conn.General)
	if err != nil {
		t.Fatal(err)
	}
	if c2 == c1 {
		t.Fatal("pool handed back the dead connection")
	}
	if _, err := c2.Request(ctx, kmsg.NewPtrListGroupsRequest()); err != nil {
		t.Fatalf("request on the new connection: %v", err)
	}
}

func TestRequestTimeoutClosesConnection(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1))
	cfg := connConfig()
	cfg.RequestTimeout = 300 * time.Millisecond
	c := dial(t, cl.Addr(), cfg)
	resume := cl.StopAnswering(kmsg.ListGroups, -1)
	defer resume()
	start := time.Now()
	_, err := c.Request(testCtx(t, 10*time.Second), kmsg.NewPtrListGroupsRequest())
	if !errors.Is(err, errs.ErrRequestTimeout) || !errs.IsRetriable(err) {
		t.Fatalf("want retriable ErrRequestTimeout, got %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("timeout took %v", took)
	}
	select {
	case <-c.Dead():
	default:
		t.Fatal("connection still open after a request timed out")
	}
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1))
	pool := conn.NewPool(connConfig(), conn.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}, 200*time.Millisecond)
	t.Cleanup(pool.Close)
	ctx := testCtx(t, 10*time.Second)
	c, err := pool.Get(ctx, cl.Addr(), conn.General)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(ctx, kmsg.NewPtrListGroupsRequest()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Dead():
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection not closed")
	}
	c2, err := pool.Get(ctx, cl.Addr(), conn.General)
	if err != nil || c2 == c {
		t.Fatalf("after idle close: %v (same conn %v)", err, c2 == c)
	}
}

func TestThrottleDelaysNextRequest(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1))
	var throttled atomic.Int64
	cfg := connConfig()
	cfg.Hooks.OnThrottle = func(addr string, key int16, d time.Duration) { throttled.Store(int64(d)) }
	c := dial(t, cl.Addr(), cfg)
	cl.Control(kmsg.ListGroups, func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
		resp.Version = req.GetVersion()
		resp.ThrottleMillis = 400
		return resp, nil, true
	})
	ctx := testCtx(t, 10*time.Second)
	if _, err := c.Request(ctx, kmsg.NewPtrListGroupsRequest()); err != nil {
		t.Fatal(err)
	}
	if time.Duration(throttled.Load()) != 400*time.Millisecond {
		t.Fatalf("throttle hook saw %v", time.Duration(throttled.Load()))
	}
	start := time.Now()
	if _, err := c.Request(ctx, kmsg.NewPtrListGroupsRequest()); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("next request went out after %v, inside the 400ms throttle", waited)
	}
}
