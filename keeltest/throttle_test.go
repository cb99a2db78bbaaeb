package keeltest

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestThrottle checks a throttled answer is the broker's real answer with
// throttle_time_ms set: Metadata still lists the topic, a Produce is
// appended once; unthrottled nodes and Remove give 0 again.
func TestThrottle(t *testing.T) {
	c := NewCluster(t, Brokers(2), Topic("t", 1))
	h := c.Throttle(kmsg.Metadata, 250*time.Millisecond, 0)
	resp := dialRaw(t, c.AddrOf(0)).mustDo(metadataReq("t")).(*kmsg.MetadataResponse)
	if resp.ThrottleMillis != 250 || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("throttled metadata: throttle %d, topics %+v", resp.ThrottleMillis, resp.Topics)
	}
	if other := dialRaw(t, c.AddrOf(1)).mustDo(metadataReq("t")).(*kmsg.MetadataResponse); other.ThrottleMillis != 0 {
		t.Fatalf("node 1 is not throttled but answered %d", other.ThrottleMillis)
	}
	if h.Throttled() != 1 {
		t.Fatalf("Throttled() = %d, want 1", h.Throttled())
	}
	h.Remove()
	if again := dialRaw(t, c.AddrOf(0)).mustDo(metadataReq("t")).(*kmsg.MetadataResponse); again.ThrottleMillis != 0 {
		t.Fatalf("after Remove: throttle %d", again.ThrottleMillis)
	}

	pt := c.Throttle(kmsg.Produce, 100*time.Millisecond)
	cl := newClient(t, c)
	for range 3 {
		produce(t, cl, "t")
	}
	if hw := c.HighWatermark("t", 0); hw != 3 {
		t.Fatalf("high watermark %d after 3 throttled produces, want 3 (each appended once)", hw)
	}
	if pt.Throttled() < 1 {
		t.Fatal("no produce answer was throttled")
	}
}

// TestThrottleRefusesBadArguments checks the panics.
func TestThrottleRefusesBadArguments(t *testing.T) {
	c := NewCluster(t, Brokers(1))
	for name, fn := range map[string]func(){
		"zero":        func() { c.Throttle(kmsg.Produce, 0) },
		"no throttle": func() { c.Throttle(kmsg.SASLHandshake, time.Second) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}
