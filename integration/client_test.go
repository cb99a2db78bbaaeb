package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
	"github.com/keel-go/keel/keeltest"
)

func TestClientMetadataThreeBrokers(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topic("orders", 6))
	c := newClient(t, cl)
	md, err := c.Metadata(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 3 {
		t.Fatalf("got %d brokers, want 3", len(md.Brokers))
	}
	var orders *keel.TopicInfo
	for i := range md.Topics {
		if md.Topics[i].Name == "orders" {
			orders = &md.Topics[i]
		}
	}
	if orders == nil || len(orders.Partitions) != 6 {
		t.Fatalf("orders missing or wrong partition count: %+v", md.Topics)
	}
	for _, p := range orders.Partitions {
		if p.Leader != cl.Leader("orders", p.ID) {
			t.Errorf("partition %d: leader %d, cluster says %d", p.ID, p.Leader, cl.Leader("orders", p.ID))
		}
	}
}

func TestSASLMechanisms(t *testing.T) {
	for _, tc := range []struct {
		mech  string
		right keel.ClientOption
		wrong keel.ClientOption
	}{
		{"PLAIN", keel.SASLPlain("alice", "s3cret"), keel.SASLPlain("alice", "nope")},
		{"SCRAM-SHA-256", keel.SASLScramSHA256("alice", "s3cret"), keel.SASLScramSHA256("alice", "nope")},
		{"SCRAM-SHA-512", keel.SASLScramSHA512("alice", "s3cret"), keel.SASLScramSHA512("alice", "nope")},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			cl := startCluster(t, keeltest.Brokers(1), keeltest.SASL(tc.mech, "alice", "s3cret"), keeltest.Topic("t", 1))
			good := newClient(t, cl, tc.right)
			if _, err := good.Metadata(testCtx(t, 10*time.Second), "t"); err != nil {
				t.Fatalf("right password: %v", err)
			}
			bad := newClient(t, cl, tc.wrong)
			start := time.Now()
			_, err := bad.Metadata(testCtx(t, 20*time.Second))
			if !errors.Is(err, keel.ErrAuthentication) {
				t.Fatalf("wrong password: want ErrAuthentication, got %v", err)
			}
			if keel.IsRetriable(err) {
				t.Errorf("authentication failure reported as retriable: %v", err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("authentication failure took %v; it must fail fast", took)
			}
			if !strings.Contains(err.Error(), tc.mech) {
				t.Errorf("error %q does not name the mechanism", err)
			}
		})
	}
}

func TestSASLMechanismNotEnabled(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.SASL("SCRAM-SHA-256", "alice", "s3cret"))
	c := newClient(t, cl, keel.SASLScramSHA512("alice", "s3cret"))
	_, err := c.Metadata(testCtx(t, 10*time.Second))
	if !errors.Is(err, keel.ErrAuthentication) {
		t.Fatalf("want ErrAuthentication for a user unknown to this mechanism, got %v", err)
	}
}

func TestTLSWithGeneratedCertificate(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(2), keeltest.GeneratedTLS(), keeltest.Topic("t", 2))
	c := newClient(t, cl, keel.TLS(cl.ClientTLSConfig()))
	md, err := c.Metadata(testCtx(t, 10*time.Second), "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 2 {
		t.Fatalf("brokers: %+v", md.Brokers)
	}
	// Without trusting the generated CA the handshake must fail.
	untrusted := newClient(t, cl, keel.TLS(&tls.Config{}), keel.DialTimeout(2*time.Second))
	if _, err := untrusted.Metadata(testCtx(t, 10*time.Second)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("want a certificate error from an untrusted CA, got %v", err)
	}
}

// A partition leader moves: the old leader answers NOT_LEADER_OR_FOLLOWER,
// which triggers a metadata refresh, after which requests go to the new
// leader and succeed.
func TestLeaderMoveIsFollowed(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(3), keeltest.Topic("moving", 1))
	pool := conn.NewPool(connConfig(), conn.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}, 0)
	t.Cleanup(pool.Close)
	m := meta.New(meta.Config{
		Seeds: cl.Addrs(), MaxAge: time.Minute, MinRefreshInterval: 10 * time.Millisecond,
		UnknownTopicRetries: 2, Backoff: conn.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
	}, pool)
	t.Cleanup(m.Close)
	ctx := testCtx(t, 20*time.Second)

	if _, err := m.Topic(ctx, "moving"); err != nil {
		t.Fatal(err)
	}
	oldLeader, part, ok := m.Current().Leader("moving", 0)
	if !ok {
		t.Fatal("no leader")
	}
	var target int32 = -1
	for _, id := range cl.NodeIDs() {
		if id != oldLeader.ID {
			target = id
			break
		}
	}
	if err := cl.MoveLeader("moving", 0, target); err != nil {
		t.Fatal(err)
	}

	code := listOffsets(t, ctx, pool, oldLeader.Addr())
	if code != 6 {
		t.Fatalf("old leader answered code %d, want NOT_LEADER_OR_FOLLOWER (6)", code)
	}
	if !m.HandleError(code) {
		t.Fatal("NOT_LEADER_OR_FOLLOWER did not trigger a refresh")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, p, ok := m.Current().Leader("moving", 0)
		if ok && b.ID == target {
			if p.LeaderEpoch <= part.LeaderEpoch {
				t.Errorf("leader epoch %d did not grow from %d", p.LeaderEpoch, part.LeaderEpoch)
			}
			if code := listOffsets(t, ctx, pool, b.Addr()); code != 0 {
				t.Fatalf("new leader answered code %d", code)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metadata still names leader %d, want %d", b.ID, target)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func listOffsets(t *testing.T, ctx context.Context, pool *conn.Pool, addr string) int16 {
	t.Helper()
	c, err := pool.Get(ctx, addr, conn.General)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "moving"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = 0
	rp.Timestamp = -1
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := c.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].ErrorCode
}

// Many concurrent refresh requests are served by far fewer metadata
// requests.
func TestConcurrentRefreshesCoalesce(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1))
	var requests = cl.Fault(keeltestObserve(kmsg.Metadata))
	c := newClient(t, cl)
	ctx := testCtx(t, 10*time.Second)
	if _, err := c.Metadata(ctx); err != nil {
		t.Fatal(err)
	}
	before := requests.Hits()
	hold := cl.HoldRequests(kmsg.Metadata)
	done := make(chan error, 50)
	for range 50 {
		go func() { _, err := c.Metadata(ctx); done <- err }()
	}
	if err := hold.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the other callers join the refresh in flight
	hold.Resume()
	for range 50 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := requests.Hits() - before; n > 3 {
		t.Fatalf("50 concurrent refreshes sent %d metadata requests", n)
	}
}

func TestUnknownTopicIsTypedAndBounded(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1))
	c := newClient(t, cl)
	start := time.Now()
	_, err := c.Metadata(testCtx(t, 30*time.Second), "orders")
	if !errors.Is(err, keel.ErrUnknownTopic) {
		t.Fatalf("want ErrUnknownTopic, got %v", err)
	}
	var ke *keel.Error
	if !errors.As(err, &ke) || ke.Code != 3 {
		t.Fatalf("want *keel.Error with code 3, got %#v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("took %v to give up", took)
	}
	msg := err.Error()
	for _, want := range []string{`topic "orders" does not exist`, cl.Addr(), "create it"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func TestUnreachableSeedFailsWithinDialTimeout(t *testing.T) {
	noLeaks(t)
	// A listener that accepts and never answers, and a closed port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	for _, addr := range []string{ln.Addr().String(), closedAddr} {
		c, err := keel.NewClient(keel.SeedBrokers(addr), keel.DialTimeout(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = c.Metadata(context.Background())
		took := time.Since(start)
		c.Close(context.Background())
		if !errors.Is(err, keel.ErrBrokerUnreachable) {
			t.Errorf("%s: want ErrBrokerUnreachable, got %v", addr, err)
		}
		if took > 2*time.Second {
			t.Errorf("%s: failed after %v with a 500ms dial timeout", addr, took)
		}
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("error %q does not name the broker", err)
		}
	}
}

func TestNewClientRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []keel.ClientOption
		want []string
	}{
		{"no seeds", nil, []string{"SeedBrokers", "no seed brokers"}},
		{"empty seed list", []keel.ClientOption{keel.SeedBrokers()}, []string{"no seed brokers"}},
		{"malformed port", []keel.ClientOption{keel.SeedBrokers("127.0.0.1:abc")}, []string{`"127.0.0.1:abc"`, "port"}},
		{"port out of range", []keel.ClientOption{keel.SeedBrokers("localhost:99999")}, []string{"1 to 65535"}},
		{"garbage", []keel.ClientOption{keel.SeedBrokers("a:b:c")}, []string{`"a:b:c"`}},
		{"two SASL mechanisms", []keel.ClientOption{keel.SeedBrokers("h:1"), keel.SASLPlain("u", "p"), keel.SASLScramSHA256("u", "p")}, []string{"PLAIN", "SCRAM-SHA-256", "one"}},
		{"negative dial timeout", []keel.ClientOption{keel.SeedBrokers("h:1"), keel.DialTimeout(-time.Second)}, []string{"DialTimeout", "not positive"}},
		{"backoff min above max", []keel.ClientOption{keel.SeedBrokers("h:1"), keel.ReconnectBackoff(time.Second, time.Millisecond)}, []string{"ReconnectBackoff"}},
		{"refresh interval above max age", []keel.ClientOption{keel.SeedBrokers("h:1"), keel.MetadataMaxAge(time.Second), keel.MetadataMinRefreshInterval(time.Minute)}, []string{"MetadataMinRefreshInterval"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := keel.NewClient(tc.opts...)
			if err == nil {
				c.Close(context.Background())
				t.Fatal("accepted")
			}
			if !errors.Is(err, keel.ErrInvalidConfig) {
				t.Errorf("%v does not match ErrInvalidConfig", err)
			}
			var ce *keel.ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("%v is not a *ConfigError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// A bare host gets the default port.
	c, err := keel.NewClient(keel.SeedBrokers("localhost"))
	if err != nil {
		t.Fatalf("bare host: %v", err)
	}
	c.Close(context.Background())
}

func TestClientCloseIsIdempotent(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1))
	c, err := keel.NewClient(keel.SeedBrokers(cl.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Metadata(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Metadata(context.Background()); !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("Metadata after Close: want ErrClosed, got %v", err)
	}
}

func keeltestObserve(key kmsg.Key) kfake.Fault {
	return kfake.Fault{Keys: []kmsg.Key{key}, Observe: true, Count: -1}
}
