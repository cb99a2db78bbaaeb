//go:build !cgo

package main

// Without cgo there is no librdkafka: the confluent rows are reported as
// skipped, and the rest of the bench builds and runs as usual.
func init() {
	register(&clientImpl{name: "confluent", unavailable: "built without cgo (confluent-kafka-go wraps librdkafka, a C library): install a C compiler and run with CGO_ENABLED=1"})
}

func confluentVersion() string { return "not built (no cgo)" }
