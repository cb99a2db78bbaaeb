package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/keeltest"
)

// Tests of SASL OAUTHBEARER (KIP-255) and of re-authentication before a
// session expires (KIP-368), for OAUTHBEARER through keeltest's broker
// side (AcceptOAuthBearer) and for PLAIN and SCRAM through kfake's own
// connections.max.reauth.ms. See docs/RELIABILITY.md, "Security".

// requestCounter counts requests of one kind reaching the brokers.
type requestCounter struct{ n atomic.Int64 }

func countRequests(cl *keeltest.Cluster, key kmsg.Key) *requestCounter {
	rc := &requestCounter{}
	cl.Control(key, func(kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		rc.n.Add(1)
		return nil, nil, false
	})
	return rc
}

func (rc *requestCounter) get() int { return int(rc.n.Load()) }

// produceUntil produces records "0", "1", ... to topic in bursts of 20
// every 10 ms, so that several produce requests are in flight when a
// session is renewed, until done reports true or ctx ends. It returns how
// many it produced, after checking that every one was delivered.
func produceUntil(t *testing.T, ctx context.Context, p *keel.Producer, topic string, done func() bool) int {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond) // pacing the workload, not synchronisation
	defer tick.Stop()
	reports := make(chan keel.Delivery, 1<<16)
	n := 0
	for !done() && n < cap(reports)-20 {
		select {
		case <-ctx.Done():
			t.Fatalf("condition not reached after %d records: %v", n, ctx.Err())
		case <-tick.C:
		}
		for range 20 {
			p.Produce(ctx, &keel.Message{Topic: topic, Key: []byte{byte(n % 5)}, Value: fmt.Appendf(nil, "%d", n)}, reports)
			n++
		}
	}
	if !done() {
		t.Fatalf("condition not reached after %d records", n)
	}
	for range n {
		if d := <-reports; d.Err != nil {
			t.Fatalf("record %s failed: %v", d.Message.Value, d.Err)
		}
	}
	return n
}

// collectEvents drains p.Events() until Close, counting what matters here.
type eventTally struct {
	mu                      sync.Mutex
	connected, disconnected int
	authFailed              []error
	done                    chan struct{}
}

func tallyEvents(p *keel.Producer) *eventTally {
	et := &eventTally{done: make(chan struct{})}
	go func() {
		defer close(et.done)
		for ev := range p.Events() {
			et.mu.Lock()
			switch ev := ev.(type) {
			case keel.BrokerConnected:
				et.connected++
			case keel.BrokerDisconnected:
				et.disconnected++
			case keel.AuthFailed:
				et.authFailed = append(et.authFailed, ev.Err)
			}
			et.mu.Unlock()
		}
	}()
	return et
}

// TestOAuthBearerReauthenticatesOnTheSameConnection: the broker grants
// 300 ms sessions and tokens live 500 ms. keel must renew each session on
// its connection (a new handshake without a new connection), take a fresh
// token when the old one is due, and fail no request meanwhile; every
// record is stored exactly once and in order.
func TestOAuthBearerReauthenticatesOnTheSameConnection(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 3))
	ob := cl.AcceptOAuthBearer(func(token string, ext map[string]string) (time.Duration, error) {
		if !strings.HasPrefix(token, "tok-") || ext["tenant"] != "blue" {
			return 0, errors.New("invalid_token")
		}
		return 300 * time.Millisecond, nil
	})
	connections := countRequests(cl, kmsg.ApiVersions)
	var calls atomic.Int64
	source := func(ctx context.Context) (keel.OAuthBearerToken, error) {
		n := calls.Add(1)
		return keel.OAuthBearerToken{Token: fmt.Sprintf("tok-%d", n), Lifetime: 500 * time.Millisecond,
			Extensions: map[string]string{"tenant": "blue"}}, nil
	}
	c := newClient(t, cl, keel.SASLOAuthBearer(source))
	p, err := keel.NewProducer(c, keel.EventsBuffer(10000))
	if err != nil {
		t.Fatal(err)
	}
	events := tallyEvents(p)
	ctx := testCtx(t, 60*time.Second)
	reauths := func() int { return ob.Handshakes() - connections.get() }
	n := produceUntil(t, ctx, p, "t", func() bool { return reauths() >= 4 && len(ob.Tokens()) >= 3 })
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-events.done
	t.Logf("%d records; %d connections, %d handshakes (%d re-authentications), %d logins, %d token source calls, tokens %v",
		n, connections.get(), ob.Handshakes(), reauths(), ob.Logins(), calls.Load(), ob.Tokens())
	if ob.Refusals() != 0 || len(events.authFailed) != 0 || events.disconnected != 0 {
		t.Fatalf("refusals %d, auth failures %v, disconnects %d: re-authentication must keep the connections", ob.Refusals(), events.authFailed, events.disconnected)
	}
	if rep := checkExactlyOnce(readTopic(t, cl, "t"), n); rep.Lost+rep.Duplicated+rep.Reordered != 0 || rep.Found != n {
		t.Fatal(rep)
	}
}

// TestOAuthBearerRefusedToken: a token the broker refuses fails fast with
// an error matching ErrAuthentication and ErrSASLAuthentication that gives
// the broker's RFC 7628 status and never the token, and an AuthFailed
// event; a token source that fails says so.
func TestOAuthBearerRefusedToken(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1))
	cl.AcceptOAuthBearer(func(token string, _ map[string]string) (time.Duration, error) {
		return 0, errors.New("invalid_token")
	})
	const secret = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	for _, tc := range []struct {
		name   string
		source func(context.Context) (keel.OAuthBearerToken, error)
		want   []string
		sasl58 bool
	}{
		{"refused by the broker", func(context.Context) (keel.OAuthBearerToken, error) {
			return keel.OAuthBearerToken{Token: secret, Lifetime: time.Hour}, nil
		}, []string{"invalid_token", "OAUTHBEARER"}, true},
		{"token source fails", func(context.Context) (keel.OAuthBearerToken, error) {
			return keel.OAuthBearerToken{}, errors.New("identity provider unreachable")
		}, []string{"token source", "identity provider unreachable"}, false},
		{"token with a forbidden character", func(context.Context) (keel.OAuthBearerToken, error) {
			return keel.OAuthBearerToken{Token: secret + " x"}, nil
		}, []string{"b64token"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, cl, keel.SASLOAuthBearer(tc.source))
			p, err := keel.NewProducer(c, keel.EventsBuffer(100), keel.DeliveryTimeout(longDelivery))
			if err != nil {
				t.Fatal(err)
			}
			events := tallyEvents(p)
			start := time.Now()
			_, err = p.Send(testCtx(t, promptAuthz), &keel.Message{Topic: "t", Value: []byte("v")})
			p.Close(testCtx(t, 10*time.Second))
			<-events.done
			if !errors.Is(err, keel.ErrAuthentication) || !errors.Is(err, keel.ErrNotWritten) || (tc.sasl58 && !errors.Is(err, keel.ErrSASLAuthentication)) {
				t.Fatalf("got %v, want NotWritten matching ErrAuthentication (and ErrSASLAuthentication: %v)", err, tc.sasl58)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows the token: %v", err)
			}
			if len(events.authFailed) == 0 {
				t.Fatal("no AuthFailed event")
			}
			t.Logf("refused after %v: %v", time.Since(start), err)
		})
	}
}

// TestSCRAMAndPlainReauthenticate: brokers with connections.max.reauth.ms
// grant sessions of that length to PLAIN and SCRAM logins too; keel
// renews them on the same connections without failing a request.
func TestSCRAMAndPlainReauthenticate(t *testing.T) {
	for _, tc := range []struct {
		mech string
		opt  keel.ClientOption
		sasl conn.Mechanism
	}{
		{keeltest.PLAIN, keel.SASLPlain("u", "pw"), conn.Plain{User: "u", Pass: "pw"}},
		{keeltest.SCRAMSHA256, keel.SASLScramSHA256("u", "pw"), conn.Scram{User: "u", Pass: "pw"}},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 3), keeltest.SASL(tc.mech, "u", "pw"),
				keeltest.BrokerConfigs(map[string]string{"connections.max.reauth.ms": "300"}))
			connections := countRequests(cl, kmsg.ApiVersions)
			handshakes := countRequests(cl, kmsg.SASLHandshake)
			c := newClient(t, cl, tc.opt)
			p, err := keel.NewProducer(c, keel.EventsBuffer(10000))
			if err != nil {
				t.Fatal(err)
			}
			events := tallyEvents(p)
			ctx := testCtx(t, 60*time.Second)
			n := produceUntil(t, ctx, p, "t", func() bool { return handshakes.get()-connections.get() >= 4 })
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			<-events.done
			t.Logf("%d records; %d connections, %d handshakes", n, connections.get(), handshakes.get())
			if len(events.authFailed) != 0 || events.disconnected != 0 {
				t.Fatalf("auth failures %v, disconnects %d", events.authFailed, events.disconnected)
			}
			cfg := connConfig()
			cfg.SASL = tc.sasl
			if rep := checkExactlyOnce(readTopicWith(t, cl, "t", cfg), n); rep.Lost+rep.Duplicated+rep.Reordered != 0 || rep.Found != n {
				t.Fatal(rep)
			}
		})
	}
}

// TestReauthenticationHoldsConcurrentRequests: many goroutines share one
// connection while its session is renewed every 300 ms. A broker that is
// re-authenticating a connection takes only SASL requests on it (kfake,
// like Kafka, closes the connection otherwise), so requests must wait for
// the exchange, and the ones already in flight must still be answered.
func TestReauthenticationHoldsConcurrentRequests(t *testing.T) {
	cl := startCluster(t, keeltest.Brokers(1), keeltest.Topic("t", 1), keeltest.SASL(keeltest.PLAIN, "u", "pw"),
		keeltest.BrokerConfigs(map[string]string{"connections.max.reauth.ms": "300"}))
	handshakes := countRequests(cl, kmsg.SASLHandshake)
	cfg := connConfig()
	cfg.SASL = conn.Plain{User: "u", Pass: "pw"}
	c := dial(t, cl.Addr(), cfg)
	ctx := testCtx(t, 60*time.Second)
	var wg sync.WaitGroup
	var failed atomic.Int64
	var requests atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for handshakes.get() < 5 && ctx.Err() == nil && failed.Load() == 0 {
				if _, err := c.Request(ctx, metadataRequest("t")); err != nil {
					if failed.Add(1) == 1 {
						t.Errorf("request during re-authentication: %v", err)
					}
					return
				}
				requests.Add(1)
			}
		}()
	}
	wg.Wait()
	select {
	case <-c.Dead():
		t.Fatalf("the connection died: %v", c.Err())
	default:
	}
	if handshakes.get() < 5 {
		t.Fatalf("only %d handshakes: the session was not renewed", handshakes.get())
	}
	t.Logf("%d requests on one connection across %d handshakes", requests.Load(), handshakes.get())
}

func metadataRequest(topics ...string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	for _, tp := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(tp)
		req.Topics = append(req.Topics, rt)
	}
	return req
}
