// Package assign implements the client side of Kafka's classic "consumer"
// group protocol that the broker treats as opaque bytes: the Subscription a
// member sends in JoinGroup, the Assignment the leader hands out in
// SyncGroup, and the partition assignors the leader runs in between.
//
// The wire formats and assignor names match the Java client and librdkafka
// so that keel members can share a group with them, and a keel leader can
// assign partitions to them (and the other way round):
//
//   - "range" and "roundrobin" reproduce the Java assignors' output exactly
//     (including the static-member ordering rule), except for Java's
//     rack-aware variant, which needs replica racks this package is not given.
//   - "sticky" (eager) and "cooperative-sticky" (KIP-429) produce a balanced
//     assignment that keeps as many previously owned partitions as possible.
//     Their output is not byte-for-byte the Java output: any balanced, sticky
//     plan is valid, since only the leader's plan is ever used.
//
// Everything here is pure computation; the membership state machine that
// drives JoinGroup/SyncGroup lives in the parent package.
package assign
