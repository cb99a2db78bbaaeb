// Package keeltest starts in-process Kafka clusters for tests, the way
// net/http/httptest starts HTTP servers.
//
// A [Cluster] is a set of fake brokers (franz-go's kfake) listening on
// 127.0.0.1, speaking the Kafka protocol well enough for producers,
// consumers, groups, transactions and admin requests. It needs no Docker,
// no JVM and no network beyond loopback, starts in milliseconds, and can be
// made to fail on purpose.
//
// # Starting a cluster
//
// In a test, NewCluster starts a cluster and closes it when the test ends:
//
//	func TestOrders(t *testing.T) {
//		c := keeltest.NewCluster(t, keeltest.Topic("orders", 3))
//		// Point the client under test at c.Addrs() (or c.Addr()).
//		...
//	}
//
// Outside tests (for example `keel dev`), Start returns a cluster the caller
// must Close. Options choose the number of brokers ([Brokers], default 3),
// fixed [Ports], seed topics ([Topic], [Topics]), [AutoCreateTopics],
// persistence ([DataDir]), authentication ([SASL]), authorization ([EnableACLs],
// [Superuser], [SASLUser] with grants), encryption ([TLS],
// [GeneratedTLS]), an older protocol ([MaxVersions]), logging ([Logger])
// and group and broker settings ([GroupSessionTimeouts], [BrokerConfigs]).
//
// # Injecting faults
//
// The point of the package is to make brokers misbehave in exactly the way
// a test needs, at exactly the moment it needs:
//
//   - [Cluster.FailRequests] answers the next requests of a kind with a
//     Kafka error code, optionally only for one topic, partition, group or
//     broker. [Cluster.Fault] exposes every kfake fault setting.
//   - [Cluster.DropConnections] makes the broker close the connection
//     instead of answering.
//   - [Cluster.StopAnswering] and [Cluster.HoldRequests] make a broker go
//     silent for a kind of request until resumed.
//   - [Cluster.MoveLeader], [Cluster.ShuffleLeaders],
//     [Cluster.MoveCoordinators], [Cluster.AddBroker] and
//     [Cluster.RemoveBroker] change the topology under a running client.
//   - [Cluster.Control] runs arbitrary code on requests as they arrive;
//     [Cluster.AcceptOAuthBearer] uses it to play the broker side of SASL
//     OAUTHBEARER, which kfake lacks.
//
// For example, to check that a producer survives a leader change:
//
//	c := keeltest.NewCluster(t, keeltest.Topic("t", 1))
//	c.FailRequests(kmsg.Produce, kerr.NotLeaderForPartition.Code, 1, keeltest.OnTopic("t"))
//	c.MoveLeader("t", 0, (c.Leader("t", 0)+1)%3)
//	// produce: the first attempt fails, the retry goes to the new leader.
//
// Whether a failed request still did its work matters for "outcome unknown"
// tests: by default a faulted request does nothing, but REQUEST_TIMED_OUT
// and NOT_ENOUGH_REPLICAS_AFTER_APPEND on Produce are answered after the
// records were appended, and held requests ([Cluster.HoldRequests]) are
// handled when resumed even if the client has given up.
//
// # Connections are serial
//
// Like a real broker, a fake broker handles one request per connection at a
// time and answers in order. A held or swallowed request therefore also
// holds everything sent after it on the same connection, but not other
// connections, even to the same broker.
package keeltest
