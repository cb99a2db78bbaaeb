package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/keeltest"
)

// Security tests: authorization (ACLs enforced by the keeltest cluster),
// authentication failures and what they leak, TLS verification. The
// guarantees are listed in docs/RELIABILITY.md, section "Security".

const (
	aclAdmin, aclAdminPass = "admin", "admin-secret"
	// promptAuthz bounds how long an authorization failure may take to
	// reach the caller. It is far below the delivery timeout the tests
	// set, so a failure that is retried until that timeout misses it;
	// the elapsed time itself is only logged (timings are noisy here).
	promptAuthz  = 20 * time.Second
	longDelivery = 2 * time.Minute
)

// aclCluster starts a cluster enforcing ACLs, with a SCRAM superuser for
// checking what was stored, and the given users.
func aclCluster(t *testing.T, users ...keeltest.Option) *keeltest.Cluster {
	t.Helper()
	opts := append([]keeltest.Option{
		keeltest.EnableACLs(),
		keeltest.Superuser(keeltest.SCRAMSHA256, aclAdmin, aclAdminPass),
		keeltest.Topic("open", 2), keeltest.Topic("secret", 2), keeltest.Topic("hidden", 1),
	}, users...)
	return startCluster(t, opts...)
}

func scramClient(t *testing.T, cl *keeltest.Cluster, user, pass string, opts ...keel.ClientOption) *keel.Client {
	t.Helper()
	return newClient(t, cl, append([]keel.ClientOption{keel.SASLScramSHA256(user, pass)}, opts...)...)
}

// checkNotWrittenAuthz checks that d failed as a non-retriable NotWritten
// authorization failure, matching want.
func checkNotWrittenAuthz(t *testing.T, what string, d keel.Delivery, err error, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: delivered at %d/%d, want an authorization failure", what, d.Partition, d.Offset)
	}
	if !errors.Is(err, want) || !errors.Is(err, keel.ErrNotWritten) || d.Outcome() != keel.NotWritten || keel.IsRetriable(err) {
		t.Fatalf("%s: got %v (outcome %v, retriable %v), want non-retriable NotWritten matching %v", what, err, d.Outcome(), keel.IsRetriable(err), want)
	}
}

// TestACLProducerWithoutWrite: a producer allowed to write one topic and
// only to see another gets TOPIC_AUTHORIZATION_FAILED for the second,
// promptly and as NotWritten, while its records to the first are all
// delivered, exactly once and in order.
func TestACLProducerWithoutWrite(t *testing.T) {
	cl := aclCluster(t, keeltest.SASLUser(keeltest.SCRAMSHA256, "writer", "writer-pw",
		keeltest.AllowTopic("open", kmsg.ACLOperationWrite),
		keeltest.AllowTopic("secret", kmsg.ACLOperationDescribe)))
	c := scramClient(t, cl, "writer", "writer-pw")
	p, err := keel.NewProducer(c, keel.DeliveryTimeout(longDelivery), keel.Linger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })

	const n = 500
	reports := make(chan keel.Delivery, n)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the allowed topic, concurrently with the refused one
		defer wg.Done()
		for i := range n {
			p.Produce(testCtx(t, time.Minute), &keel.Message{Topic: "open", Key: []byte{byte(i % 7)}, Value: fmt.Appendf(nil, "%d", i)}, reports)
		}
	}()
	for _, topic := range []string{"secret", "hidden"} {
		// "secret" is visible (DESCRIBE): Produce answers 29. "hidden" is
		// not even visible: Metadata answers 29.
		start := time.Now()
		d, err := p.Send(testCtx(t, promptAuthz), &keel.Message{Topic: topic, Value: []byte("x")})
		checkNotWrittenAuthz(t, topic, d, err, keel.ErrTopicAuthorization)
		t.Logf("%s: refused after %v: %v", topic, time.Since(start), err)
	}
	wg.Wait()
	for range n {
		if d := <-reports; d.Err != nil {
			t.Fatalf("record to the allowed topic: %v", d.Err)
		}
	}
	if rep := checkExactlyOnce(readTopicAsAdmin(t, cl, "open"), n); rep.Lost+rep.Duplicated+rep.Reordered != 0 || rep.Found != n {
		t.Fatalf("allowed topic: %v", rep)
	}
}

// readTopicAsAdmin is readTopic logged in as the superuser.
func readTopicAsAdmin(t *testing.T, cl *keeltest.Cluster, topic string) map[int32][]record.Record {
	t.Helper()
	cfg := connConfig()
	cfg.SASL = conn.Scram{User: aclAdmin, Pass: aclAdminPass}
	return readTopicWith(t, cl, topic, cfg)
}

// TestACLIdempotentProducerWithoutAnyWrite: a user that may write no topic
// cannot get a producer id (CLUSTER_AUTHORIZATION_FAILED on
// InitProducerId). Records waiting for the id fail promptly with that
// cause, as NotWritten, instead of waiting out the delivery timeout while
// the request is retried.
func TestACLIdempotentProducerWithoutAnyWrite(t *testing.T) {
	cl := aclCluster(t, keeltest.SASLUser(keeltest.SCRAMSHA256, "reader", "reader-pw",
		keeltest.AllowTopic("open", kmsg.ACLOperationDescribe)))
	c := scramClient(t, cl, "reader", "reader-pw")
	p, err := keel.NewProducer(c, keel.DeliveryTimeout(longDelivery))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	for i := range 2 { // the second record must not wait either
		start := time.Now()
		d, err := p.Send(testCtx(t, promptAuthz), &keel.Message{Topic: "open", Value: []byte("x")})
		if keel.ErrorCode(err) != errs.CodeClusterAuthorizationFailed {
			t.Fatalf("record %d: got %v, want CLUSTER_AUTHORIZATION_FAILED", i, err)
		}
		checkNotWrittenAuthz(t, "open", d, err, err)
		t.Logf("record %d refused after %v: %v", i, time.Since(start), err)
	}
}

// consumerCase is a consumer user's grants and the error it must get.
type consumerCase struct {
	name   string
	grants []keeltest.Grant
	want   error
}

var consumerCases = []consumerCase{
	// It sees the topic and may use its group, but may not read.
	{"no READ on the topic", []keeltest.Grant{
		keeltest.AllowTopic("secret", kmsg.ACLOperationDescribe),
		keeltest.AllowGroup("billing", kmsg.ACLOperationRead),
	}, keel.ErrTopicAuthorization},
	// It may read the topic but not use the group.
	{"no access to the group", []keeltest.Grant{
		keeltest.AllowTopic("secret", kmsg.ACLOperationRead),
	}, keel.ErrGroupAuthorization},
}

// TestACLGroupConsumerRun: Run returns a typed authorization error instead
// of retrying forever.
func TestACLGroupConsumerRun(t *testing.T) {
	for _, tc := range consumerCases {
		t.Run(tc.name, func(t *testing.T) {
			cl := aclCluster(t, keeltest.SASLUser(keeltest.SCRAMSHA256, "consumer", "consumer-pw", tc.grants...))
			produceAsAdmin(t, cl, "secret", 10)
			c := scramClient(t, cl, "consumer", "consumer-pw")
			g, err := keel.NewGroupConsumer(c, "billing", []string{"secret"}, keel.ResetOffset(keel.ResetEarliest))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { g.Close(context.Background()) })
			var handled int
			start := time.Now()
			err = g.Run(testCtx(t, promptAuthz), keel.HandlerFunc(func(context.Context, *keel.Message) error {
				handled++
				return nil
			}))
			if !errors.Is(err, tc.want) || keel.IsRetriable(err) {
				t.Fatalf("Run: %v (retriable %v), want a non-retriable error matching %v", err, keel.IsRetriable(err), tc.want)
			}
			if handled != 0 {
				t.Fatalf("%d records handled without the right to read them", handled)
			}
			t.Logf("Run returned after %v: %v", time.Since(start), err)
		})
	}
}

// TestACLGroupConsumerPoll: Poll returns the same typed errors.
func TestACLGroupConsumerPoll(t *testing.T) {
	for _, tc := range consumerCases {
		t.Run(tc.name, func(t *testing.T) {
			cl := aclCluster(t, keeltest.SASLUser(keeltest.SCRAMSHA256, "consumer", "consumer-pw", tc.grants...))
			produceAsAdmin(t, cl, "secret", 10)
			c := scramClient(t, cl, "consumer", "consumer-pw")
			g, err := keel.NewGroupPoller(c, "billing", []string{"secret"}, keel.ResetOffset(keel.ResetEarliest))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { g.Close(context.Background()) })
			start := time.Now()
			msgs, err := g.Poll(testCtx(t, promptAuthz))
			if !errors.Is(err, tc.want) || keel.IsRetriable(err) || len(msgs) != 0 {
				t.Fatalf("Poll: %d messages, %v (retriable %v), want a non-retriable error matching %v", len(msgs), err, keel.IsRetriable(err), tc.want)
			}
			t.Logf("Poll returned after %v: %v", time.Since(start), err)
		})
	}
}

// produceAsAdmin stores n records ("0".."n-1") in topic as the superuser.
func produceAsAdmin(t *testing.T, cl *keeltest.Cluster, topic string, n int) {
	t.Helper()
	c := scramClient(t, cl, aclAdmin, aclAdminPass)
	p, err := keel.NewProducer(c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	for i := range n {
		if _, err := p.Send(testCtx(t, 30*time.Second), &keel.Message{Topic: topic, Value: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestACLAdminWithoutRights: administrative calls the principal may not
// make end at once in typed, non-retriable errors, one per refused
// resource, and what it may do still works.
func TestACLAdminWithoutRights(t *testing.T) {
	cl := aclCluster(t, keeltest.SASLUser(keeltest.SCRAMSHA256, "ops", "ops-pw",
		keeltest.AllowTopic("open", kmsg.ACLOperationDescribe),
		keeltest.AllowTopic("open", kmsg.ACLOperationDescribeConfigs), // so AlterConfigs gets past its describe
		keeltest.AllowTopic("secret", kmsg.ACLOperationDescribe),
		keeltest.AllowGroup("billing", kmsg.ACLOperationDescribe)))
	a, err := admin.New(scramClient(t, cl, "ops", "ops-pw"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, promptAuthz)
	if ts, err := a.ListTopics(ctx); err != nil || len(ts) != 2 {
		t.Fatalf("ListTopics with DESCRIBE on two topics: %v, %v", ts, err)
	}
	for _, tc := range []struct {
		op   string
		call func() error
		want error
	}{
		{"CreateTopics without CREATE", func() error {
			return a.CreateTopics(ctx, admin.TopicSpec{Name: "new-topic", Partitions: 1, ReplicationFactor: 1})
		}, keel.ErrTopicAuthorization},
		{"DeleteTopics without DELETE", func() error { return a.DeleteTopics(ctx, "secret") }, keel.ErrTopicAuthorization},
		{"DeleteGroups without DELETE", func() error { return a.DeleteGroups(ctx, "billing") }, keel.ErrGroupAuthorization},
		{"GroupOffsets without group DESCRIBE", func() error { _, err := a.GroupOffsets(ctx, "payroll"); return err }, keel.ErrGroupAuthorization},
		{"CreatePartitions without ALTER", func() error { return a.CreatePartitions(ctx, "secret", 4, false) }, keel.ErrTopicAuthorization},
		{"AlterConfigs without ALTER_CONFIGS", func() error {
			return a.AlterConfigs(ctx, admin.ConfigResource{Type: admin.TopicConfigs, Name: "open"}, false, admin.ConfigOp{Name: "retention.ms", Value: "1000"})
		}, keel.ErrTopicAuthorization},
		{"CreateACLs without cluster ALTER", func() error {
			return a.CreateACLs(ctx, admin.ACL{Principal: "User:ops", Host: "*", Operation: "WRITE", Permission: "ALLOW",
				ResourceType: "TOPIC", ResourceName: "secret", PatternType: "LITERAL"})
		}, admin.ErrClusterAuthorization},
	} {
		start := time.Now()
		err := tc.call()
		if !errors.Is(err, tc.want) || keel.IsRetriable(err) {
			t.Errorf("%s: %v (retriable %v), want a non-retriable error matching %v", tc.op, err, keel.IsRetriable(err), tc.want)
			continue
		}
		t.Logf("%s: refused after %v: %v", tc.op, time.Since(start), err)
	}
	if cl.Partitions("new-topic") != 0 || cl.Partitions("secret") != 2 {
		t.Fatal("a refused admin call changed the cluster")
	}
}

// secretCapture collects everything a user could see of keel: its log at
// debug level, the errors it returned and the events it emitted.
type secretCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *secretCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *secretCapture) add(format string, args ...any) { fmt.Fprintf(c, format+"\n", args...) }

func (c *secretCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// TestSASLWrongPasswordFailsFastAndNothingLeaks: for PLAIN and SCRAM, a
// wrong password fails the first request promptly with an error matching
// ErrAuthentication and an AuthFailed event, the right one works, and
// neither password appears in the debug log, in any error or in any event.
func TestSASLWrongPasswordFailsFastAndNothingLeaks(t *testing.T) {
	const (
		plainPass = "plain-pw-5b1e7c"
		scramPass = "scram-pw-d93a04"
		wrongPass = "wrong-pw-77f2aa"
	)
	cl := startCluster(t, keeltest.SASL(keeltest.PLAIN, "alice", plainPass),
		keeltest.SASL(keeltest.SCRAMSHA512, "bob", scramPass), keeltest.Topic("t", 1))
	seen := new(secretCapture)
	logger := slog.New(slog.NewTextHandler(seen, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, tc := range []struct {
		name         string
		wrong, right keel.ClientOption
	}{
		{"PLAIN", keel.SASLPlain("alice", wrongPass), keel.SASLPlain("alice", plainPass)},
		{"SCRAM-SHA-512", keel.SASLScramSHA512("bob", wrongPass), keel.SASLScramSHA512("bob", scramPass)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, good := range []bool{false, true} {
				opt := tc.wrong
				if good {
					opt = tc.right
				}
				c := newClient(t, cl, opt, keel.Logger(logger), keel.ReconnectBackoff(10*time.Millisecond, 50*time.Millisecond))
				p, err := keel.NewProducer(c, keel.DeliveryTimeout(longDelivery), keel.EventsBuffer(1000))
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				d, err := p.Send(testCtx(t, promptAuthz), &keel.Message{Topic: "t", Value: []byte("v")})
				elapsed := time.Since(start)
				if err != nil {
					seen.add("send error: %v | %+v | %#v", err, err, d)
				}
				_, merr := c.Metadata(testCtx(t, promptAuthz))
				if merr != nil {
					seen.add("metadata error: %v | %+v", merr, merr)
				}
				p.Close(testCtx(t, 10*time.Second))
				var authEvents int
				for ev := range p.Events() {
					seen.add("event %T: %+v", ev, ev)
					if af, ok := ev.(keel.AuthFailed); ok {
						authEvents++
						seen.add("event error: %v", af.Err)
						if !errors.Is(af.Err, keel.ErrAuthentication) {
							t.Errorf("AuthFailed event error %v does not match ErrAuthentication", af.Err)
						}
					}
				}
				switch {
				case good && (err != nil || merr != nil):
					t.Fatalf("right password: send %v, metadata %v", err, merr)
				case !good && (!errors.Is(err, keel.ErrAuthentication) || !errors.Is(err, keel.ErrNotWritten) || !errors.Is(merr, keel.ErrAuthentication)):
					t.Fatalf("wrong password: send %v, metadata %v; want errors matching ErrAuthentication (and NotWritten)", err, merr)
				case !good && authEvents == 0:
					t.Fatal("wrong password: no AuthFailed event")
				case good && authEvents != 0:
					t.Fatalf("right password: %d AuthFailed events", authEvents)
				}
				t.Logf("good=%v: answer after %v: %v", good, elapsed, err)
			}
		})
	}
	out := seen.String()
	if len(out) == 0 || !strings.Contains(out, "authentication failed") {
		t.Fatalf("captured nothing useful (%d bytes): the check below would prove nothing", len(out))
	}
	for _, pw := range []string{plainPass, scramPass, wrongPass} {
		if strings.Contains(out, pw) {
			t.Errorf("password %q appears in what keel logged, returned or emitted:\n%s", pw, out)
		}
	}
	t.Logf("checked %d bytes of logs, errors and events", len(out))
}

// TestTLSVerificationOnByDefault: TLS without a CA uses the system roots
// and verifies, so a cluster with a self-signed CA is refused, promptly
// and without retries, with an error saying what to configure; a host
// name the certificate does not list is refused naming that host; with the
// CA and a listed name the same cluster works.
func TestTLSVerificationOnByDefault(t *testing.T) {
	cl := startCluster(t, keeltest.GeneratedTLS(), keeltest.Brokers(1), keeltest.Topic("t", 1))
	trusted := cl.ClientTLSConfig()
	wrongName := cl.ClientTLSConfig()
	wrongName.ServerName = "kafka.example.com"
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		want []string
	}{
		{"no CA configured", nil, []string{"authority", "RootCAs"}},
		{"empty config", &tls.Config{}, []string{"authority", "RootCAs"}},
		{"host name mismatch", wrongName, []string{`"kafka.example.com"`, "127.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, cl, keel.TLS(tc.cfg))
			start := time.Now()
			_, err := c.Metadata(testCtx(t, promptAuthz))
			if !errors.Is(err, keel.ErrTLSVerification) || keel.IsRetriable(err) {
				t.Fatalf("got %v (retriable %v), want a non-retriable ErrTLSVerification", err, keel.IsRetriable(err))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
			t.Logf("refused after %v: %v", time.Since(start), err)
		})
	}
	c := newClient(t, cl, keel.TLS(trusted))
	if _, err := c.Metadata(testCtx(t, promptAuthz)); err != nil {
		t.Fatalf("trusted CA: %v", err)
	}
}

// TestSASLWrongPasswordStopsGroupConsumer: a group consumer with a wrong
// password returns an authentication error from Run and Poll instead of
// retrying the login forever.
func TestSASLWrongPasswordStopsGroupConsumer(t *testing.T) {
	cl := startCluster(t, keeltest.SASL(keeltest.SCRAMSHA256, "carol", "carol-pw"), keeltest.Topic("t", 1))
	for _, mode := range []string{"Run", "Poll"} {
		t.Run(mode, func(t *testing.T) {
			c := newClient(t, cl, keel.SASLScramSHA256("carol", "not-carols-pw"))
			start := time.Now()
			var err error
			if mode == "Run" {
				g, nerr := keel.NewGroupConsumer(c, "g", []string{"t"})
				if nerr != nil {
					t.Fatal(nerr)
				}
				t.Cleanup(func() { g.Close(context.Background()) })
				err = g.Run(testCtx(t, promptAuthz), keel.HandlerFunc(func(context.Context, *keel.Message) error { return nil }))
			} else {
				g, nerr := keel.NewGroupPoller(c, "g", []string{"t"})
				if nerr != nil {
					t.Fatal(nerr)
				}
				t.Cleanup(func() { g.Close(context.Background()) })
				_, err = g.Poll(testCtx(t, promptAuthz))
			}
			if !errors.Is(err, keel.ErrAuthentication) {
				t.Fatalf("%s: %v, want ErrAuthentication", mode, err)
			}
			t.Logf("%s returned after %v: %v", mode, time.Since(start), err)
		})
	}
}
