// Package fetch is the fetching core of keel's consumers:
//
//	Assign/Seek → start offset (ListOffsets for earliest, latest, time)
//	            → per-broker source: one Fetch request in flight, with a
//	              KIP-227 fetch session where the broker supports it
//	            → decode: CRC check, decompression, records below the fetch
//	              offset dropped, control batches and (read_committed)
//	              aborted transactions skipped
//	            → per-partition buffer, bounded client-wide by decompressed
//	              bytes → Poll
//
// A consumer calls Assign for its partitions and Poll in a loop from any
// goroutine; Position says what to commit. Errors that concern a partition
// (offset out of range with ResetNone, corrupt data, authorization) come
// back once as Fetch.Err and stop that partition until Seek or Unassign;
// retriable errors (leader moved, broker down) are handled inside, by
// refreshing metadata and retrying with backoff.
//
// Concurrency: all per-partition state lives in plain structs guarded by
// the Fetcher's mutex. Network I/O and decompression run outside it, on the
// source goroutines, which exist only while their broker has fetchable
// partitions and the budget has room. What runs under the mutex is
// proportional to what changed: a fetch answer touches the partitions of
// its request (each broker's source keeps the partitions it leads), Poll
// the partitions with data (a ready queue); only metadata changes and retry
// timers look at every partition. One mutex rather than one per broker: the
// budget and Poll's queue span brokers, and with these short critical
// sections a second lock would buy less than the lock order it costs
// (BenchmarkFetchAnswer).
//
// Records are of a type the consumer chooses (Of[R], Shape): the keel
// package decodes straight into its Message, which this package cannot
// name (keel imports it), so the generic stays although partitions have one
// type (topicpart.TP) everywhere; without it every record would be decoded
// into a Record and copied into a Message, the copy and allocation issue 6
// removed. Fetcher (Of[Record]) is the instance tests and tools use.
package fetch
