package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

// TestBadInputs (issue 18, "Bad inputs"): every input in the table is
// refused with a typed error that matches all of its sentinels with
// errors.Is and reads as the table says, within its bound; none panics
// (a panic from a keel goroutine would crash this test binary), none
// hangs (every case runs under a ctx twice its bound, and a case that
// returns after its bound fails). The cases share one client and one
// producer, and afterwards that producer's records and a consumer on that
// client must be unaffected: every good record written and read exactly
// once, in order (the checker). The CLI's table is cmd/keel's
// TestCLIBadInputs.
func TestBadInputs(t *testing.T) {
	// Clusters first: each one's leak check runs after the cleanups of
	// what was made after it.
	sasl := startCluster(t, keeltest.SASL(keeltest.SCRAMSHA256, "alice", "alice-pw"), keeltest.Topic("t", 1))
	cl := startCluster(t, keeltest.Brokers(2), keeltest.Topic("ok", 3))
	c := newClient(t, cl, keel.UnknownTopicRetries(2))
	p := newProducer(t, c, keel.DeliveryTimeout(5*time.Second), keel.ProduceRequestTimeout(2*time.Second))
	silent := silentListener(t)
	garbage := garbageListener(t)
	closedPort := closedAddr(t)
	huge := bytes.Repeat([]byte("x"), 2<<20)
	var handler keel.Handler = keel.HandlerFunc(func(context.Context, *keel.Message) error { return nil })
	corrupt := corruptFetches(cl, "corrupt")
	if err := cl.CreateTopic("corrupt", 1); err != nil {
		t.Fatal(err)
	}
	adm, err := admin.New(c)
	if err != nil {
		t.Fatal(err)
	}

	// client makes a client for a case, closed at the end of the test.
	client := func(opts ...keel.ClientOption) (*keel.Client, error) {
		nc, err := keel.NewClient(opts...)
		if err == nil {
			t.Cleanup(func() { nc.Close(context.Background()) })
		}
		return nc, err
	}
	send := func(ctx context.Context, m *keel.Message) error {
		d, err := p.Send(ctx, m)
		if err == nil && d.Err != nil {
			err = d.Err
		}
		return err
	}
	//nolint:staticcheck // a nil ctx is the bad input
	var nilCtx context.Context

	cases := []struct {
		name  string
		bound time.Duration
		want  []error  // errors.Is must hold for each
		says  []string // the message must say each (case-insensitive)
		run   func(ctx context.Context) error
	}{
		// Client configuration.
		{"client without seeds", time.Second, []error{keel.ErrInvalidConfig}, []string{"SeedBrokers"}, func(context.Context) error {
			_, err := client()
			return err
		}},
		{"seed with a bad port", time.Second, []error{keel.ErrInvalidConfig}, nil, func(context.Context) error {
			_, err := client(keel.SeedBrokers("127.0.0.1:notaport"))
			return err
		}},
		{"empty seed", time.Second, []error{keel.ErrInvalidConfig}, nil, func(context.Context) error {
			_, err := client(keel.SeedBrokers(""))
			return err
		}},
		{"negative dial timeout", time.Second, []error{keel.ErrInvalidConfig}, []string{"DialTimeout"}, func(context.Context) error {
			_, err := client(keel.SeedBrokers(cl.Addr()), keel.DialTimeout(-time.Second))
			return err
		}},
		{"reconnect backoff min above max", time.Second, []error{keel.ErrInvalidConfig}, []string{"ReconnectBackoff"}, func(context.Context) error {
			_, err := client(keel.SeedBrokers(cl.Addr()), keel.ReconnectBackoff(time.Second, time.Millisecond))
			return err
		}},

		// Brokers that are not there, or are not Kafka, or refuse us.
		{"unreachable broker", 5 * time.Second, []error{keel.ErrBrokerUnreachable}, nil, func(ctx context.Context) error {
			nc, err := client(keel.SeedBrokers(closedPort), keel.DialTimeout(300*time.Millisecond))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err = nc.Metadata(ctx)
			return err
		}},
		{"listener that never speaks Kafka", 5 * time.Second, []error{keel.ErrBrokerUnreachable}, []string{"ApiVersions"}, func(ctx context.Context) error {
			nc, err := client(keel.SeedBrokers(silent), keel.DialTimeout(300*time.Millisecond), keel.UnknownTopicRetries(1))
			if err != nil {
				return err
			}
			_, err = nc.Metadata(ctx)
			return err
		}},
		{"listener that answers garbage", 5 * time.Second, []error{keel.ErrProtocol}, []string{"Kafka broker"}, func(ctx context.Context) error {
			nc, err := client(keel.SeedBrokers(garbage), keel.DialTimeout(300*time.Millisecond), keel.UnknownTopicRetries(1))
			if err != nil {
				return err
			}
			_, err = nc.Metadata(ctx)
			return err
		}},
		{"TLS to a plaintext broker", 5 * time.Second, []error{keel.ErrBrokerUnreachable}, nil, func(ctx context.Context) error {
			nc, err := client(keel.SeedBrokers(cl.Addr()), keel.TLS(&tls.Config{MinVersion: tls.VersionTLS12}), keel.DialTimeout(500*time.Millisecond))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err = nc.Metadata(ctx)
			return err
		}},
		{"SASL wrong password", 5 * time.Second, []error{keel.ErrAuthentication}, nil, func(ctx context.Context) error {
			nc, err := client(keel.SeedBrokers(sasl.Addr()), keel.SASLScramSHA256("alice", "wrong"))
			if err != nil {
				return err
			}
			_, err = nc.Metadata(ctx)
			return err
		}},
		{"SASL missing against a SASL broker", 5 * time.Second, nil, nil, func(ctx context.Context) error {
			nc, err := client(keel.SeedBrokers(sasl.Addr()), keel.DialTimeout(500*time.Millisecond))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err = nc.Metadata(ctx)
			return err
		}},
		{"SASL PLAIN with an empty user", time.Second, []error{keel.ErrInvalidConfig}, nil, func(context.Context) error {
			_, err := client(keel.SeedBrokers(cl.Addr()), keel.SASLPlain("", "pw"))
			return err
		}},
		{"metadata of an illegal topic name", time.Second, []error{keel.ErrInvalidTopic}, nil, func(ctx context.Context) error {
			_, err := c.Metadata(ctx, "bad/topic")
			return err
		}},
		{"metadata with a nil ctx", time.Second, []error{keel.ErrNilContext}, []string{"Metadata"}, func(context.Context) error {
			_, err := c.Metadata(nilCtx)
			return err
		}},

		// Producer configuration.
		{"producer of a nil client", time.Second, []error{keel.ErrInvalidConfig}, nil, func(context.Context) error {
			_, err := keel.NewProducer(nil)
			return err
		}},
		{"nil PartitionerFunc", time.Second, []error{keel.ErrInvalidConfig}, []string{"PartitionerFunc"}, func(context.Context) error {
			_, err := keel.NewProducer(c, keel.PartitionerFunc(nil))
			return err
		}},
		{"MaxInFlight 0", time.Second, []error{keel.ErrInvalidConfig}, []string{"MaxInFlight"}, func(context.Context) error {
			_, err := keel.NewProducer(c, keel.MaxInFlight(0))
			return err
		}},
		{"idempotence with 6 in flight", time.Second, []error{keel.ErrInvalidConfig}, nil, func(context.Context) error {
			_, err := keel.NewProducer(c, keel.MaxInFlight(6))
			return err
		}},
		{"negative linger", time.Second, []error{keel.ErrInvalidConfig}, []string{"Linger"}, func(context.Context) error {
			_, err := keel.NewProducer(c, keel.Linger(-time.Second))
			return err
		}},
		{"batch larger than a request", time.Second, []error{keel.ErrInvalidConfig}, nil, func(context.Context) error {
			_, err := keel.NewProducer(c, keel.MaxBatchBytes(2<<20), keel.MaxRequestBytes(1<<20))
			return err
		}},
		{"unknown codec", time.Second, []error{keel.ErrInvalidConfig}, []string{"Compression"}, func(context.Context) error {
			_, err := keel.NewProducer(c, keel.Compression(keel.Codec(42), 0))
			return err
		}},

		// Records.
		{"nil message", time.Second, []error{keel.ErrInvalidMessage, keel.ErrNotWritten}, nil, func(ctx context.Context) error {
			return send(ctx, nil)
		}},
		{"empty topic", time.Second, []error{keel.ErrNotWritten}, []string{"topic"}, func(ctx context.Context) error {
			return send(ctx, &keel.Message{Value: []byte("v")})
		}},
		{"illegal topic name", time.Second, []error{keel.ErrInvalidTopic, keel.ErrNotWritten}, nil, func(ctx context.Context) error {
			return send(ctx, &keel.Message{Topic: "bad/topic", Value: []byte("v")})
		}},
		{"topic name of 250 characters", time.Second, []error{keel.ErrInvalidTopic, keel.ErrNotWritten}, nil, func(ctx context.Context) error {
			return send(ctx, &keel.Message{Topic: strings.Repeat("a", 250), Value: []byte("v")})
		}},
		{"topic that does not exist", 5 * time.Second, []error{keel.ErrUnknownTopic, keel.ErrNotWritten}, nil, func(ctx context.Context) error {
			return send(ctx, &keel.Message{Topic: "nosuch", Value: []byte("v")})
		}},
		{"oversize record", 2 * time.Second, []error{keel.ErrNotWritten}, []string{"large"}, func(ctx context.Context) error {
			return send(ctx, &keel.Message{Topic: "ok", Value: huge})
		}},
		{"manual partition that does not exist", 5 * time.Second, []error{keel.ErrNotWritten}, []string{"partition"}, func(ctx context.Context) error {
			mp, err := keel.NewProducer(c, keel.ManualPartitioner())
			if err != nil {
				return err
			}
			defer mp.Close(ctx)
			d, err := mp.Send(ctx, &keel.Message{Topic: "ok", Partition: 99, Value: []byte("v")})
			if err == nil {
				err = d.Err
			}
			return err
		}},
		{"negative manual partition", 5 * time.Second, []error{keel.ErrNotWritten}, []string{"partition"}, func(ctx context.Context) error {
			mp, err := keel.NewProducer(c, keel.ManualPartitioner())
			if err != nil {
				return err
			}
			defer mp.Close(ctx)
			d, err := mp.Send(ctx, &keel.Message{Topic: "ok", Partition: -5, Value: []byte("v")})
			if err == nil {
				err = d.Err
			}
			return err
		}},
		{"panicking PartitionerFunc", 2 * time.Second, []error{keel.ErrPanicked, keel.ErrNotWritten}, nil, func(ctx context.Context) error {
			pp, err := keel.NewProducer(c, keel.PartitionerFunc(func(string, []byte, int32) int32 { panic("boom") }))
			if err != nil {
				return err
			}
			defer pp.Close(ctx)
			d, err := pp.Send(ctx, &keel.Message{Topic: "ok", Value: []byte("v")})
			if err == nil {
				err = d.Err
			}
			return err
		}},
		{"PartitionerFunc out of range", 2 * time.Second, []error{keel.ErrNotWritten}, []string{"partition"}, func(ctx context.Context) error {
			pp, err := keel.NewProducer(c, keel.PartitionerFunc(func(string, []byte, int32) int32 { return 1000 }))
			if err != nil {
				return err
			}
			defer pp.Close(ctx)
			d, err := pp.Send(ctx, &keel.Message{Topic: "ok", Value: []byte("v")})
			if err == nil {
				err = d.Err
			}
			return err
		}},
		{"send with a nil ctx", time.Second, []error{keel.ErrNilContext}, []string{"Send"}, func(context.Context) error {
			_, err := p.Send(nilCtx, &keel.Message{Topic: "ok", Value: []byte("v")})
			return err
		}},
		{"send with a ctx already ended", time.Second, []error{context.Canceled, keel.ErrNotWritten}, nil, func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := p.Send(ctx, &keel.Message{Topic: "ok", Value: []byte("v")})
			return err
		}},
		{"send after Close", 2 * time.Second, []error{keel.ErrProducerClosed, keel.ErrNotWritten}, nil, func(ctx context.Context) error {
			cp, err := keel.NewProducer(c)
			if err != nil {
				return err
			}
			if err := cp.Close(ctx); err != nil {
				return err
			}
			_, err = cp.Send(ctx, &keel.Message{Topic: "ok", Value: []byte("v")})
			return err
		}},

		// Consumers.
		{"consumer of a nil client", time.Second, []error{keel.ErrInvalidConfig}, nil, func(context.Context) error {
			_, err := keel.NewConsumer(nil)
			return err
		}},
		{"AtOffset(-3)", time.Second, []error{keel.ErrInvalidConfig}, []string{"offset"}, func(ctx context.Context) error {
			cons, err := keel.NewConsumer(c)
			if err != nil {
				return err
			}
			defer cons.Close(ctx)
			return cons.Assign(keel.TopicPartition{Topic: "ok", Partition: 0}, keel.AtOffset(-3))
		}},
		{"assign an illegal topic name", time.Second, []error{keel.ErrInvalidTopic}, nil, func(ctx context.Context) error {
			cons, err := keel.NewConsumer(c)
			if err != nil {
				return err
			}
			defer cons.Close(ctx)
			return cons.Assign(keel.TopicPartition{Topic: "..", Partition: 0}, keel.AtEarliest())
		}},
		{"assign a partition that does not exist", 5 * time.Second, []error{keel.ErrUnknownTopic}, nil, func(ctx context.Context) error {
			cons, err := keel.NewConsumer(c)
			if err != nil {
				return err
			}
			defer cons.Close(ctx)
			if err := cons.Assign(keel.TopicPartition{Topic: "ok", Partition: 7}, keel.AtEarliest()); err != nil {
				return err
			}
			_, err = cons.Poll(ctx)
			return err
		}},
		{"poll with a nil ctx", time.Second, []error{keel.ErrNilContext}, []string{"Poll"}, func(ctx context.Context) error {
			cons, err := keel.NewConsumer(c)
			if err != nil {
				return err
			}
			defer cons.Close(ctx)
			_, err = cons.Poll(nilCtx)
			return err
		}},
		{"corrupt batch in a fetch", 5 * time.Second, []error{keel.ErrCorruptMessage}, nil, func(ctx context.Context) error {
			if _, err := p.Send(ctx, &keel.Message{Topic: "corrupt", Value: []byte("will be corrupted in the answer")}); err != nil {
				return fmt.Errorf("setup: %w", err)
			}
			corrupt.Store(true)
			cons, err := keel.NewConsumer(c)
			if err != nil {
				return err
			}
			defer cons.Close(ctx)
			if err := cons.Assign(keel.TopicPartition{Topic: "corrupt", Partition: 0}, keel.AtEarliest()); err != nil {
				return err
			}
			for {
				ms, err := cons.Poll(ctx)
				if err != nil || len(ms) > 0 {
					if len(ms) > 0 {
						return fmt.Errorf("a corrupt batch gave %d records", len(ms))
					}
					return err
				}
			}
		}},
		{"group consumer with an empty group", time.Second, []error{keel.ErrInvalidConfig}, []string{"group"}, func(context.Context) error {
			_, err := keel.NewGroupConsumer(c, "", []string{"ok"})
			return err
		}},
		{"group consumer without topics", time.Second, []error{keel.ErrInvalidConfig}, []string{"topic"}, func(context.Context) error {
			_, err := keel.NewGroupConsumer(c, "g", nil)
			return err
		}},
		{"Run without a handler", time.Second, []error{keel.ErrInvalidConfig}, []string{"handler"}, func(ctx context.Context) error {
			g, err := keel.NewGroupConsumer(c, "g", []string{"ok"})
			if err != nil {
				return err
			}
			defer g.Close(ctx)
			return g.Run(ctx, nil)
		}},
		{"Run with a nil ctx", time.Second, []error{keel.ErrNilContext}, []string{"Run"}, func(ctx context.Context) error {
			g, err := keel.NewGroupConsumer(c, "g", []string{"ok"})
			if err != nil {
				return err
			}
			defer g.Close(ctx)
			return g.Run(nilCtx, handler)
		}},
		{"group consumer of an illegal topic", time.Second, []error{keel.ErrInvalidTopic}, nil, func(context.Context) error {
			_, err := keel.NewGroupConsumer(c, "g", []string{"bad topic"})
			return err
		}},
		{"poller option given to a GroupConsumer", time.Second, []error{keel.ErrInvalidConfig}, []string{"BlockRebalanceOnPoll"}, func(context.Context) error {
			_, err := keel.NewGroupConsumer(c, "g", []string{"ok"}, keel.BlockRebalanceOnPoll())
			return err
		}},
		{"session timeout below heartbeat", time.Second, []error{keel.ErrInvalidConfig}, nil, func(context.Context) error {
			_, err := keel.NewGroupConsumer(c, "g", []string{"ok"},
				keel.SessionTimeout(time.Second), keel.HeartbeatInterval(5*time.Second))
			return err
		}},

		// Admin.
		{"admin of a nil client", time.Second, []error{keel.ErrInvalidConfig}, nil, func(context.Context) error {
			_, err := admin.New(nil)
			return err
		}},
		{"create a topic with 0 partitions", 2 * time.Second, []error{keel.ErrInvalidConfig}, []string{"partition"}, func(ctx context.Context) error {
			return adm.CreateTopics(ctx, admin.TopicSpec{Name: "zero", Partitions: 0, ReplicationFactor: 1})
		}},
		{"create a topic with an illegal name", 2 * time.Second, []error{keel.ErrInvalidTopic}, nil, func(ctx context.Context) error {
			return adm.CreateTopics(ctx, admin.TopicSpec{Name: "bad/topic", Partitions: 1, ReplicationFactor: 1})
		}},
		{"delete a topic that does not exist", 2 * time.Second, []error{keel.ErrUnknownTopic}, nil, func(ctx context.Context) error {
			return adm.DeleteTopics(ctx, "nosuch-topic")
		}},
	}

	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*tc.bound+time.Second)
			defer cancel()
			start := time.Now()
			err := tc.run(ctx)
			took := time.Since(start)
			if err == nil {
				t.Fatalf("no error")
			}
			var ke *keel.Error
			var ce *keel.ConfigError
			if !errors.As(err, &ke) && !errors.As(err, &ce) && !isSentinelOnly(err) {
				t.Errorf("error %T is neither a *keel.Error, a *keel.ConfigError nor a keel sentinel: %v", err, err)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error does not match %q: %v", w, err)
				}
			}
			for _, s := range tc.says {
				if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(s)) {
					t.Errorf("error does not say %q: %v", s, err)
				}
			}
			if took > tc.bound {
				t.Errorf("took %v, bound %v: %v", took, tc.bound, err)
			}
			t.Logf("%v in %v", err, took.Round(time.Millisecond))
		})
	}
	if len(cases) < 40 {
		t.Fatalf("only %d bad inputs in the table", len(cases))
	}

	// The good records of the same producer and a consumer of the same
	// client are unaffected by all of the above.
	ctx := testCtx(t, 30*time.Second)
	const n = 300
	if failed := produceIDs(t, ctx, p, "ok", n, nil); len(failed) > 0 {
		t.Fatalf("%d good records failed after the bad inputs: %v", len(failed), failed[0].Err)
	}
	if rep := checkExactlyOnce(readTopic(t, cl, "ok"), n); rep.Lost+rep.Duplicated+rep.Reordered != 0 {
		t.Fatalf("good records after the bad inputs: %v", rep)
	}
}

// isSentinelOnly reports whether err is (or wraps) one of keel's code-less
// sentinels, such as ErrNilContext.
func isSentinelOnly(err error) bool {
	for _, s := range []error{keel.ErrNilContext, keel.ErrInvalidConfig, keel.ErrInvalidMessage, keel.ErrNotWritten, keel.ErrClosed, keel.ErrProducerClosed} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// silentListener accepts connections and never answers; garbageListener
// answers every connection with an HTTP error page; closedAddr is an
// address nothing listens on.
func silentListener(t *testing.T) string {
	return fakeListener(t, func(net.Conn) {})
}

func garbageListener(t *testing.T) string {
	return fakeListener(t, func(nc net.Conn) {
		nc.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
	})
}

func fakeListener(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			serve(nc)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, nc := range conns {
			nc.Close()
		}
	})
	return ln.Addr().String()
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type atomicFlag = atomic.Bool

// corruptFetches flips a byte inside the record data of every batch of
// topic in Fetch answers once armed is set, so that the CRC fails.
func corruptFetches(cl *keeltest.Cluster, topic string) *atomicFlag {
	armed := new(atomicFlag)
	cl.Control(kmsg.Fetch, func(kr kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		req := kr.(*kmsg.FetchRequest)
		if !armed.Load() {
			return nil, nil, false
		}
		for _, rt := range req.Topics {
			if rt.Topic != topic {
				return nil, nil, false
			}
		}
		if len(req.Topics) == 0 {
			return nil, nil, false
		}
		// Answer from a raw copy of the partition: one batch, CRC broken.
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.HighWatermark, sp.LastStableOffset = 1, 1
				sp.RecordBatches = corruptBatch(nil)
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return armed
}
