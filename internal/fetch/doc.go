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
// partitions and the budget has room.
package fetch
