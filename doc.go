// Package keel is a pure-Go client for Apache Kafka whose promise is that
// every message is accounted for: each produced record ends in exactly one
// outcome within a bound the caller chose, and each consumed record is
// committed only after it was processed.
//
// A [Client] holds what producers and consumers share: the seed brokers,
// the pooled broker connections and the cluster metadata.
package keel
