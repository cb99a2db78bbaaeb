package keeltest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

func apiVersions(t *testing.T, addr string) map[int16]int16 {
	t.Helper()
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(0) // Kafka 2.1 caps ApiVersions at v2
	resp := dialRaw(t, addr).mustDo(req).(*kmsg.ApiVersionsResponse)
	if resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions error %d", resp.ErrorCode)
	}
	got := make(map[int16]int16)
	for _, k := range resp.ApiKeys {
		got[k.ApiKey] = k.MaxVersion
	}
	return got
}

// TestMaxVersions checks the cap shows in ApiVersions, a key left out is
// not advertised, a request above the cap closes the connection, and a
// client negotiating down still works.
func TestMaxVersions(t *testing.T) {
	v := kversion.V2_1_0()
	v.SetMaxKeyVersion(int16(kmsg.Produce), 5)
	c := NewCluster(t, MaxVersions(v), Topic("t", 1))

	got := apiVersions(t, c.Addr())
	if got[int16(kmsg.Produce)] != 5 {
		t.Errorf("Produce max %d, want 5", got[int16(kmsg.Produce)])
	}
	if want, _ := v.LookupMaxKeyVersion(int16(kmsg.Metadata)); got[int16(kmsg.Metadata)] != want {
		t.Errorf("Metadata max %d, want %d", got[int16(kmsg.Metadata)], want)
	}
	if _, ok := got[int16(kmsg.DescribeCluster)]; ok {
		t.Error("DescribeCluster (not in Kafka 2.1) advertised")
	}

	// Metadata v9 is above 2.1's v7: the broker closes the connection.
	if _, err := dialRaw(t, c.Addr()).do(metadataReq()); !isClosed(err) {
		t.Errorf("metadata v9: %v, want closed connection", err)
	}
	// A key 2.1 lacks is also refused by closing.
	dc := kmsg.NewPtrDescribeClusterRequest()
	if _, err := dialRaw(t, c.Addr()).do(dc); !isClosed(err) {
		t.Errorf("DescribeCluster: %v, want closed connection", err)
	}
	// A client that negotiates versions works.
	cl := newClient(t, c)
	produce(t, cl, "t")

	// Without the option everything is advertised.
	full := apiVersions(t, NewCluster(t, Brokers(1)).Addr())
	if full[int16(kmsg.Produce)] <= 5 || len(full) <= len(got) {
		t.Errorf("uncapped cluster advertises Produce v%d and %d keys", full[int16(kmsg.Produce)], len(full))
	}
}
