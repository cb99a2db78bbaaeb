// Package group runs one member of a Kafka consumer group on the classic
// protocol: FindCoordinator, JoinGroup (with the member id the broker
// requires, KIP-394), SyncGroup with the leader's assignment, heartbeats in
// the background, and LeaveGroup. With the cooperative-sticky assignor it
// rebalances incrementally (KIP-429): partitions that stay are never
// revoked, and a partition moves in two rounds so that it never has two
// owners at once.
//
// The consumer above it owns processing: the member tells it, through
// Callbacks, which partitions are revoked, assigned or lost, and waits for
// Revoke to return (processing finished and offsets committed) before it
// completes the rebalance.
package group
