package keeltest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// rawConn speaks the Kafka protocol over one plain TCP connection, one
// request at a time, so tests see exactly what the broker does.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	corr int32
	f    *kmsg.RequestFormatter
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, conn: conn, f: kmsg.NewRequestFormatter(kmsg.FormatterClientID("keeltest"))}
}

// send writes req and returns its correlation ID.
func (r *rawConn) send(req kmsg.Request) int32 {
	r.t.Helper()
	r.corr++
	if err := r.conn.SetWriteDeadline(time.Now().Add(testTimeout)); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.conn.Write(r.f.AppendRequest(nil, req, r.corr)); err != nil {
		r.t.Fatalf("write %s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return r.corr
}

// recv reads the response to req, waiting at most d. It returns the read
// error (io.EOF when the broker closed the connection, a timeout error when
// nothing came).
func (r *rawConn) recv(req kmsg.Request, corr int32, d time.Duration) (kmsg.Response, error) {
	r.t.Helper()
	if err := r.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		r.t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(r.conn, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r.conn, body); err != nil {
		return nil, err
	}
	rd := kbin.Reader{Src: body}
	if got := rd.Int32(); got != corr {
		return nil, fmt.Errorf("correlation ID %d, want %d", got, corr)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != int16(kmsg.ApiVersions) {
		kmsg.SkipTags(&rd)
	}
	if err := resp.ReadFrom(rd.Src); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// do sends req and waits for its response.
func (r *rawConn) do(req kmsg.Request) (kmsg.Response, error) {
	r.t.Helper()
	return r.recv(req, r.send(req), testTimeout)
}

// mustDo is do that fails the test on error.
func (r *rawConn) mustDo(req kmsg.Request) kmsg.Response {
	r.t.Helper()
	resp, err := r.do(req)
	if err != nil {
		r.t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// isClosed reports whether err means the broker closed the connection.
func isClosed(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

// isTimeout reports whether err is a read deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// metadataReq asks for all topics (nil) or the given ones, at v9.
func metadataReq(topics ...string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(9)
	if topics != nil {
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
	}
	return req
}

func metadata(t *testing.T, addr string, topics ...string) *kmsg.MetadataResponse {
	t.Helper()
	return dialRaw(t, addr).mustDo(metadataReq(topics...)).(*kmsg.MetadataResponse)
}

func listOffsetsReq(topic string, partitions ...int32) *kmsg.ListOffsetsRequest {
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(4)
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.CurrentLeaderEpoch = -1
		rp.Timestamp = -1 // latest
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// newClient returns a kgo client seeded with the cluster, closed at the end
// of the test.
func newClient(t *testing.T, c *Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(c.Addrs()...),
		kgo.RetryTimeout(testTimeout),
		kgo.RecordDeliveryTimeout(testTimeout),
		kgo.MetadataMinAge(50 * time.Millisecond), // refresh quickly after NOT_LEADER
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce produces one record to topic/partition 0 through kgo.
func produce(t *testing.T, cl *kgo.Client, topic string) *kgo.Record {
	t.Helper()
	r, err := cl.ProduceSync(testCtx(t), &kgo.Record{Topic: topic, Value: []byte("v")}).First()
	if err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	return r
}

// asError is errors.As.
func asError(err error, target any) bool { return errors.As(err, target) }
