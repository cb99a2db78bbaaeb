package keeltest

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fault installs kfake faults: matching requests are answered with an
// error code instead of their real answer. Every field of [kfake.Fault] is
// an AND filter; the common ones are:
//
//   - Keys: the request kinds to fail (kmsg.Produce, kmsg.Fetch, ...); nil
//     means every kind.
//   - Nodes: the brokers that fail them; nil means all.
//   - Topic, Partitions: fail only these entities inside the request (other
//     partitions of the same request are answered normally). A fault naming
//     a topic never matches a request without topics, such as Heartbeat.
//   - Group, TxnID: likewise for group and transactional requests
//     (FindCoordinator included).
//   - TopLevel: set the response's top-level ErrorCode instead of the
//     per-entity ones. Requests with nothing to select on (ApiVersions,
//     SASL, DescribeCluster, ListGroups, ...) always fail at the top level.
//   - Err: the error to answer; nil means UNKNOWN_SERVER_ERROR.
//   - Count: how many requests to fail; 0 means one, -1 until Remove. A
//     request counts once however many of its partitions fail.
//   - When: a further filter on the request body; Observe: count matching
//     requests in Hits and Wait without failing them.
//
// A failed entity is normally rejected before the broker acts on it. The
// exceptions matter for "outcome unknown" tests: REQUEST_TIMED_OUT and
// NOT_ENOUGH_REPLICAS_AFTER_APPEND on Produce (and REQUEST_TIMED_OUT on the
// other requests Kafka can time out after applying, such as OffsetCommit,
// CreateTopics or DeleteRecords) are answered after the work is done: the
// records are appended even though the producer sees an error.
//
// Faults are checked in the order added and the first match answers. A
// control (see [Cluster.Control], [Cluster.DropConnections],
// [Cluster.HoldRequests]) runs before faults, and one that answers a request
// bypasses them. The returned handle reports Hits, can Wait for them, and
// can Remove the faults early.
func (c *Cluster) Fault(faults ...kfake.Fault) *kfake.FaultHandle {
	return c.kc.Fault(faults...)
}

// A FaultOption narrows which requests [Cluster.FailRequests] fails.
type FaultOption func(*kfake.Fault)

// OnTopic fails only the named topic's entities in matching requests.
func OnTopic(topic string) FaultOption {
	return func(f *kfake.Fault) { f.Topic = topic }
}

// OnPartitions fails only these partitions in matching requests; usually
// combined with [OnTopic].
func OnPartitions(partitions ...int32) FaultOption {
	return func(f *kfake.Fault) { f.Partitions = append(f.Partitions, partitions...) }
}

// OnNodes fails only requests sent to these brokers.
func OnNodes(nodes ...int32) FaultOption {
	return func(f *kfake.Fault) { f.Nodes = append(f.Nodes, nodes...) }
}

// OnGroup fails only requests about this consumer group (including
// FindCoordinator for it).
func OnGroup(group string) FaultOption {
	return func(f *kfake.Fault) { f.Group = group }
}

// AtTopLevel sets the response's top-level error code rather than the
// per-topic or per-partition ones, for requests that have one.
func AtTopLevel() FaultOption {
	return func(f *kfake.Fault) { f.TopLevel = true }
}

// FailRequests makes the next count requests of kind key that match opts
// fail with the Kafka error code (for example kerr.NotLeaderForPartition.Code);
// a negative count fails them until the returned handle's Remove. Without
// options, every partition (or group, or the top level for requests with
// nothing else) of a matching request fails, on any broker.
//
//	c.FailRequests(kmsg.Produce, kerr.NotLeaderForPartition.Code, 2, keeltest.OnTopic("orders"))
//
// See [Cluster.Fault] for the details, in particular that REQUEST_TIMED_OUT
// and NOT_ENOUGH_REPLICAS_AFTER_APPEND on Produce are answered after the
// records were appended. FailRequests panics if count or code is 0.
func (c *Cluster) FailRequests(key kmsg.Key, code int16, count int, opts ...FaultOption) *kfake.FaultHandle {
	if count == 0 {
		panic("keeltest: FailRequests with a count of 0")
	}
	if code == 0 {
		panic("keeltest: FailRequests with error code 0 (NONE)")
	}
	f := kfake.Fault{
		Keys:  []kmsg.Key{key},
		Err:   errorForCode(code),
		Count: max(count, -1),
	}
	for _, o := range opts {
		o(&f)
	}
	return c.kc.Fault(f)
}

// errorForCode returns the kerr error for code, making one up for codes
// kerr does not know.
func errorForCode(code int16) *kerr.Error {
	if e, ok := kerr.ErrorForCode(code).(*kerr.Error); ok && e.Code == code {
		return e
	}
	return &kerr.Error{Message: fmt.Sprintf("UNKNOWN_CODE_%d", code), Code: code}
}

// Control installs fn on requests of kind key (or every request for key
// -1), before the broker handles them. fn returns (response, error,
// handled):
//
//   - handled false: the request goes on to the next control and then to
//     the broker as usual (use this to observe);
//   - a response: it is written back instead of the real answer;
//   - an error: the broker closes the connection;
//   - nil and nil: the request is never answered and the connection stays
//     silent forever (it is serial, so nothing else on it is answered
//     either).
//
// A control is removed after it handles one request unless it calls
// [Cluster.KeepControl]; [Cluster.DropControl] removes it without handling.
// Controls run one at a time on the cluster's loop and must not block; use
// [Cluster.SleepControl] to wait. This is kfake's ControlKey.
func (c *Cluster) Control(key kmsg.Key, fn func(kmsg.Request) (kmsg.Response, error, bool)) {
	c.kc.ControlKey(int16(key), fn)
}

// KeepControl, called from a control function, keeps it installed after it
// handles the current request.
func (c *Cluster) KeepControl() { c.kc.KeepControl() }

// DropControl, called from a control function, removes it, whether or not
// it handles the current request.
func (c *Cluster) DropControl() { c.kc.DropControl() }

// SleepControl, called from a control function, lets the cluster serve
// other connections until wakeup returns. Requests behind the sleeping one
// on the same connection wait. [Cluster.Close] waits for wakeup to return,
// so wakeup must return once the test is over (a sleep, or a channel the
// test closes before it ends); after Close has begun, SleepControl returns
// at once. Call this one, not kfake's: kfake's own left a cluster closed
// during a sleep with its loop blocked for good.
func (c *Cluster) SleepControl(wakeup func()) { c.sleep(wakeup) }

// CurrentNode, called from a control function, returns the node ID of the
// broker that received the request.
func (c *Cluster) CurrentNode() int32 { return c.kc.CurrentNode() }
