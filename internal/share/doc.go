// Package share is keel's member of a KIP-932 share group: a queue over
// Kafka topics, where any number of members read the same partitions and
// the broker hands each record to one member at a time under an
// acquisition lock, until the member acknowledges it.
//
// The pieces, each in its own file:
//
//   - member.go: membership through ShareGroupHeartbeat. The member id is
//     generated here (KIP-932 makes it the client's), epoch 0 joins, -1
//     leaves; the broker's answer sets the heartbeat interval and carries
//     the assignment, which is reconciled against the cluster metadata
//     (topic ids to names, partitions to leaders). FENCED_MEMBER_EPOCH and
//     UNKNOWN_MEMBER_ID drop everything held and rejoin at epoch 0.
//   - source.go, request.go, response.go: one goroutine per leader broker
//     runs that broker's share session, strictly one request at a time,
//     since each request must carry the session epoch the previous answer
//     moved to (epoch 0 opens a session, -1 closes it). ShareFetch
//     acquires records and carries acknowledgements piggybacked; a
//     ShareAcknowledge goes alone when there is nothing to fetch, or when
//     locks must be renewed (KIP-1222: a renewal may not ride on a fetch).
//   - held.go: the records this member holds (acquired and not yet
//     acknowledged), with their lock deadlines, the session they were
//     acquired in, and whether the user has them; renewals are chosen
//     here.
//   - decode.go: a ShareFetch answer's batches, narrowed to the acquired
//     offsets; acquired offsets with no record (control records,
//     compaction) are acknowledged as gaps at once.
//   - acks.go: acknowledgements waiting to be sent, coalesced into the
//     ranges the protocol carries.
//
// The session rules that matter for correctness: a new session (epoch 0)
// releases whatever the old one had acquired, so every held record
// remembers the session generation it came from and an acknowledgement of
// a record from an older generation is failed locally instead of sent
// (the broker would refuse it, and the record is already back in the
// queue). A connection lost mid-request leaves the epoch unknown, so the
// session is started again.
package share
