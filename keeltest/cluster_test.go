package keeltest

import (
	"bytes"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestStartClose starts the default three brokers, checks their addresses
// and node IDs against Metadata, and checks Close is idempotent and leaves
// the methods harmless.
func TestStartClose(t *testing.T) {
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	addrs := c.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("Addrs() = %v, want 3", addrs)
	}
	if c.Addr() != addrs[0] {
		t.Errorf("Addr() = %s, want %s", c.Addr(), addrs[0])
	}
	if ids := c.NodeIDs(); !slices.Equal(ids, []int32{0, 1, 2}) {
		t.Errorf("NodeIDs() = %v", ids)
	}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" {
			t.Errorf("address %q is not on 127.0.0.1", a)
		}
	}
	// Metadata from any broker lists every broker at the address we report.
	resp := metadata(t, addrs[1])
	for _, b := range resp.Brokers {
		if got, want := net.JoinHostPort(b.Host, itoa(b.Port)), c.AddrOf(b.NodeID); got != want {
			t.Errorf("metadata node %d at %s, AddrOf says %s", b.NodeID, got, want)
		}
	}
	if len(resp.Brokers) != 3 {
		t.Errorf("metadata has %d brokers", len(resp.Brokers))
	}

	done := make(chan struct{})
	go func() {
		c.Close()
		c.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("Close hung")
	}
	if _, err := net.DialTimeout("tcp", addrs[0], time.Second); err == nil {
		t.Error("broker still accepting after Close")
	}
	if err := c.CreateTopic("x", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("CreateTopic after Close: %v, want ErrClosed", err)
	}
	if l := c.Leader("x", 0); l != -1 {
		t.Errorf("Leader after Close = %d", l)
	}
	if h := c.HighWatermark("x", 0); h != -1 {
		t.Errorf("HighWatermark after Close = %d", h)
	}
	c.StopAnswering(kmsg.Produce, -1)() // must not hang or panic
}

// TestNewClusterCleanup checks NewCluster closes the cluster at the end of
// the test.
func TestNewClusterCleanup(t *testing.T) {
	var c *Cluster
	t.Run("inner", func(t *testing.T) {
		c = NewCluster(t, Brokers(1))
		if len(c.Addrs()) != 1 {
			t.Fatalf("Addrs() = %v", c.Addrs())
		}
	})
	if err := c.CreateTopic("x", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("cluster still open after its test ended: %v", err)
	}
}

// TestOptionErrors checks Start rejects nonsense options.
func TestOptionErrors(t *testing.T) {
	for name, opt := range map[string][]Option{
		"zero brokers":       {Brokers(0)},
		"negative partition": {Topic("t", -1)},
		"empty topic":        {Topic("", 1)},
		"default partitions": {DefaultPartitions(0)},
		"unknown mechanism":  {SASL("GSSAPI", "u", "p")},
		"empty user":         {SASL(PLAIN, "", "p")},
		"brokers vs ports":   {Brokers(2), Ports(0, 0, 0)},
		"bad port":           {Ports(70000)},
		"duplicate port":     {Ports(9092, 9092)},
		"no ports":           {Ports()},
		"nil tls":            {TLS(nil)},
		"both tls":           {TLS(testServerTLS(t)), GeneratedTLS()},
		"nil versions":       {MaxVersions(nil)},
		"session timeouts":   {GroupSessionTimeouts(time.Second, time.Millisecond)},
		"empty data dir":     {DataDir("")},
		"nil option":         {nil},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Start(opt...)
			if err == nil {
				c.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.HasPrefix(err.Error(), "keeltest:") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestSeedTopics checks Topic and Topics create topics visible in Metadata
// with the requested partition counts, and that 0 means the default.
func TestSeedTopics(t *testing.T) {
	c := NewCluster(t,
		Topic("a", 3),
		Topics(2, "b", "c"),
		Topic("d", 0),
		DefaultPartitions(4),
	)
	want := map[string]int{"a": 3, "b": 2, "c": 2, "d": 4}
	for _, addr := range c.Addrs() {
		resp := metadata(t, addr)
		got := make(map[string]int)
		for _, tp := range resp.Topics {
			got[*tp.Topic] = len(tp.Partitions)
			for _, p := range tp.Partitions {
				if p.Leader != c.Leader(*tp.Topic, p.Partition) {
					t.Errorf("%s/%d: metadata leader %d, Leader() %d", *tp.Topic, p.Partition, p.Leader, c.Leader(*tp.Topic, p.Partition))
				}
			}
		}
		if !mapsEqual(got, want) {
			t.Errorf("broker %s: topics %v, want %v", addr, got, want)
		}
	}
	if n := c.Partitions("a"); n != 3 {
		t.Errorf("Partitions(a) = %d", n)
	}
}

// TestAutoCreateTopics checks a Metadata request may create topics, with
// DefaultPartitions partitions, only with AutoCreateTopics.
func TestAutoCreateTopics(t *testing.T) {
	autoReq := func(topic string) *kmsg.MetadataRequest {
		req := metadataReq(topic)
		req.AllowAutoTopicCreation = true
		return req
	}
	c := NewCluster(t, AutoCreateTopics(), DefaultPartitions(5))
	resp := dialRaw(t, c.Addr()).mustDo(autoReq("auto")).(*kmsg.MetadataResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("auto create answered %+v", resp.Topics)
	}
	if n := c.Partitions("auto"); n != 5 {
		t.Errorf("auto-created topic has %d partitions, want 5", n)
	}

	off := NewCluster(t, Brokers(1))
	resp = dialRaw(t, off.Addr()).mustDo(autoReq("auto")).(*kmsg.MetadataResponse)
	if resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("without AutoCreateTopics: error %d", resp.Topics[0].ErrorCode)
	}
}

// TestPorts checks brokers listen on the fixed ports given.
func TestPorts(t *testing.T) {
	ports := freePorts(t, 2)
	c := NewCluster(t, Ports(ports...))
	want := []string{"127.0.0.1:" + itoa(int32(ports[0])), "127.0.0.1:" + itoa(int32(ports[1]))}
	if got := c.Addrs(); !slices.Equal(got, want) {
		t.Fatalf("Addrs() = %v, want %v", got, want)
	}
	metadata(t, want[1])

	// A port in use makes Start fail rather than hang.
	if c2, err := Start(Ports(ports[0])); err == nil {
		c2.Close()
		t.Error("Start on a used port succeeded")
	}
}

// TestDataDir checks records and topics survive a restart with the same
// DataDir.
func TestDataDir(t *testing.T) {
	dir := t.TempDir()
	c, err := Start(DataDir(dir), Topic("kept", 1))
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, c)
	produce(t, cl, "kept")
	produce(t, cl, "kept")
	cl.Close()
	c.Close()

	c = NewCluster(t, DataDir(dir))
	if hw := c.HighWatermark("kept", 0); hw != 2 {
		t.Errorf("after restart high watermark = %d, want 2", hw)
	}
}

// TestClusterID checks the ID shows in Metadata.
func TestClusterID(t *testing.T) {
	c := NewCluster(t, Brokers(1), ClusterID("keel-test"))
	if id := metadata(t, c.Addr()).ClusterID; id == nil || *id != "keel-test" {
		t.Errorf("cluster ID %v", id)
	}
}

// TestLogger checks the cluster logs to the writer why it closed a
// connection.
func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	lw := &lockedWriter{w: &buf}
	c := NewCluster(t, Brokers(1), Logger(lw))
	c.DropConnections(kmsg.Metadata, 1)
	if _, err := dialRaw(t, c.Addr()).do(metadataReq()); !isClosed(err) {
		t.Fatalf("metadata answered: %v", err)
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if !strings.Contains(buf.String(), "connection dropped") {
		t.Errorf("log lacks the drop: %q", buf.String())
	}
}

// TestGroupSessionTimeouts checks JoinGroup enforces the configured bounds.
func TestGroupSessionTimeouts(t *testing.T) {
	join := func(c *Cluster, session time.Duration) int16 {
		t.Helper()
		coord := c.CoordinatorFor("g")
		req := kmsg.NewPtrJoinGroupRequest()
		req.SetVersion(5)
		req.Group = "g"
		req.SessionTimeoutMillis = int32(session / time.Millisecond)
		req.RebalanceTimeoutMillis = 1000
		req.ProtocolType = "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = "range"
		req.Protocols = append(req.Protocols, p)
		return dialRaw(t, c.AddrOf(coord)).mustDo(req).(*kmsg.JoinGroupResponse).ErrorCode
	}
	def := NewCluster(t, Brokers(1))
	if code := join(def, 200*time.Millisecond); code != kerr.InvalidSessionTimeout.Code {
		t.Errorf("default bounds accepted a 200ms session: code %d", code)
	}
	low := NewCluster(t, Brokers(1), GroupSessionTimeouts(100*time.Millisecond, time.Minute))
	if code := join(low, 200*time.Millisecond); code == kerr.InvalidSessionTimeout.Code {
		t.Error("lowered bounds rejected a 200ms session")
	}
	if code := join(low, 2*time.Minute); code != kerr.InvalidSessionTimeout.Code {
		t.Errorf("lowered bounds accepted a 2m session: code %d", code)
	}
}

// TestBrokerConfigs checks a broker config is set and enforced:
// message.max.bytes rejects a larger produce.
func TestBrokerConfigs(t *testing.T) {
	c := NewCluster(t, Brokers(1), BrokerConfigs(map[string]string{"message.max.bytes": "1000"}))
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.SetVersion(1)
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeBroker
	rr.ResourceName = "0"
	rr.ConfigNames = []string{"message.max.bytes"}
	req.Resources = append(req.Resources, rr)
	resp := dialRaw(t, c.Addr()).mustDo(req).(*kmsg.DescribeConfigsResponse)
	if len(resp.Resources) != 1 || len(resp.Resources[0].Configs) != 1 {
		t.Fatalf("DescribeConfigs answered %+v", resp.Resources)
	}
	if v := resp.Resources[0].Configs[0].Value; v == nil || *v != "1000" {
		t.Errorf("message.max.bytes = %v, want 1000", v)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// freePorts finds n ports that are free right now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}
