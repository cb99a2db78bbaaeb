package conn

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
)

// versionRange is the span of versions of one API that keel's code handles.
type versionRange struct{ min, max int16 }

// supported lists, per API key, the versions keel knows how to use. The
// minimums are what keel's code needs (record batch v2, group member ids,
// ...) and all lie at or below what Kafka 2.1 offers, so any broker from 2.1
// on works. The maximums stop before versions whose semantics keel's code
// does not handle yet (for example Fetch v13 and Produce v13, which address
// topics by id instead of name).
var supported = map[int16]versionRange{
	int16(kmsg.Produce):         {3, 12},
	int16(kmsg.Fetch):           {4, 12},
	int16(kmsg.ListOffsets):     {1, 8},
	int16(kmsg.Metadata):        {1, 12},
	int16(kmsg.OffsetCommit):    {2, 9}, // v9: KIP-848 member epochs (same fields as v8)
	int16(kmsg.OffsetFetch):     {1, 7},
	int16(kmsg.FindCoordinator): {0, 4},
	int16(kmsg.JoinGroup):       {2, 9},
	int16(kmsg.Heartbeat):       {0, 4},
	int16(kmsg.LeaveGroup):      {0, 5},
	int16(kmsg.SyncGroup):       {0, 5},
	int16(kmsg.DescribeGroups):  {0, 5},
	int16(kmsg.ListGroups):      {0, 4},
	int16(kmsg.SASLHandshake):   {1, 1},
	int16(kmsg.ApiVersions):     {0, 3},
	int16(kmsg.CreateTopics):    {2, 7},
	int16(kmsg.DeleteTopics):    {1, 6},
	int16(kmsg.InitProducerID):  {0, 5},
	// Transactions without KIP-890 (v5 of EndTxn bumps the epoch per
	// transaction, v4 of AddPartitionsToTxn is for brokers only).
	int16(kmsg.AddPartitionsToTxn):   {0, 3},
	int16(kmsg.AddOffsetsToTxn):      {0, 3},
	int16(kmsg.EndTxn):               {0, 4},
	int16(kmsg.TxnOffsetCommit):      {0, 4},
	int16(kmsg.SASLAuthenticate):     {0, 2},
	int16(kmsg.DeleteGroups):         {0, 2},
	int16(kmsg.DescribeConfigs):      {0, 4},
	int16(kmsg.OffsetForLeaderEpoch): {2, 4},
}

// required are the APIs every keel producer and consumer depends on. A
// broker that does not offer keel's minimum version of each is refused at
// connect time with an error naming the API, rather than failing later in
// some confusing way.
var required = []int16{
	int16(kmsg.Produce), int16(kmsg.Fetch), int16(kmsg.ListOffsets), int16(kmsg.Metadata),
	int16(kmsg.OffsetCommit), int16(kmsg.OffsetFetch), int16(kmsg.FindCoordinator),
	int16(kmsg.JoinGroup), int16(kmsg.Heartbeat), int16(kmsg.LeaveGroup), int16(kmsg.SyncGroup),
}

// Versions holds, per API key, the version chosen for a broker: the highest
// both sides support, or -1 when there is none.
type Versions struct {
	v [maxKey + 1]int16
}

const maxKey = 100

// Version returns the negotiated version of key, or -1 if the API cannot be
// used with this broker.
func (vs *Versions) Version(key int16) int16 {
	if key < 0 || key > maxKey {
		return -1
	}
	return vs.v[key]
}

// negotiate picks, for each API the broker offers, the highest version both
// keel and the broker support, bounded by caps (optional, for tests and for
// users pinning old versions). It fails naming the broker and the API when a
// required API is too old.
func negotiate(addr string, resp *kmsg.ApiVersionsResponse, caps map[int16]int16) (*Versions, error) {
	vs := new(Versions)
	for i := range vs.v {
		vs.v[i] = -1
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey < 0 || k.ApiKey > maxKey {
			continue
		}
		ours, ok := supported[k.ApiKey]
		if !ok {
			req := kmsg.RequestForKey(k.ApiKey)
			if req == nil {
				continue
			}
			ours = versionRange{0, req.MaxVersion()}
		}
		hi := min(ours.max, k.MaxVersion)
		if c, ok := caps[k.ApiKey]; ok {
			hi = min(hi, c)
		}
		if hi < ours.min || hi < k.MinVersion {
			continue
		}
		vs.v[k.ApiKey] = hi
	}
	for _, key := range required {
		if vs.v[key] >= 0 {
			continue
		}
		var brokerMax int16 = -1
		for _, k := range resp.ApiKeys {
			if k.ApiKey == key {
				brokerMax = k.MaxVersion
			}
		}
		offer := "does not offer it at all"
		if brokerMax >= 0 {
			offer = fmt.Sprintf("offers at most v%d", brokerMax)
		}
		return nil, &errs.Error{
			Broker: addr,
			Detail: fmt.Sprintf("broker is too old for keel: keel needs %s (API key %d) at version %d or later (Kafka 2.1+), the broker %s",
				kmsg.NameForKey(key), key, supported[key].min, offer),
			Err: errs.ErrUnsupportedBroker,
		}
	}
	return vs, nil
}
