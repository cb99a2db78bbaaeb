package errs

// The Kafka protocol error codes keel knows about.
//
// Names are the protocol's official names (the Java client's Errors enum).
// Retriable follows the Java client: a code is retriable exactly when the
// exception Java builds for it is a RetriableException (directly or through
// InvalidMetadataException). This was checked against apache/kafka 1eb7644
// (codes -1 to 128); 129 to 133 are newer and follow the names and
// classification published in franz-go's kerr package.
//
// Where franz-go and Java disagree, Java wins, because keel promises Java
// producer semantics:
//   - 8 BROKER_NOT_AVAILABLE is a plain ApiException in Java: not retriable.
//   - 51 CONCURRENT_TRANSACTIONS is a RetriableException in Java: retriable.
//   - 122/123 (share sessions) are RetriableExceptions in Java: retriable.
//
// Metadata marks the codes after which the client must refresh metadata
// before retrying (KAFKA-NOTES sec. 3): 3, 5, 6, 9, 13, 56, 72, 74, 100,
// 103. Those are the InvalidMetadataException codes a producer or consumer
// can get; three more Java InvalidMetadataExceptions (80
// PREFERRED_LEADER_NOT_AVAILABLE, 83 ELIGIBLE_LEADERS_NOT_AVAILABLE, 84
// ELECTION_NOT_NEEDED) are deliberately not marked: they only come back as
// per-partition results of the admin ElectLeaders request and say nothing
// about the staleness of the client's cached metadata.
//
// 75 UNKNOWN_LEADER_EPOCH is retriable but NOT marked: it means the broker is
// behind the epoch the client sent (the client's metadata is newer than the
// broker's), so refreshing cannot help; Java just backs off and retries.
// 74 FENCED_LEADER_EPOCH is the opposite case (the client is behind) and does
// need a refresh.
//
// codes is a plain map literal, not filled in an init function, on purpose:
// the code sentinels in errs.go (ErrNotLeader = codeSentinel(6), ...) read it
// during package variable initialisation, which runs before any init
// function. Go orders package-level variable initialisation by dependency,
// so this literal is guaranteed to be built first.
var codes = map[int16]CodeInfo{
	-1:  fatal("UNKNOWN_SERVER_ERROR", "the broker hit an unexpected error while handling the request"),
	0:   fatal("NONE", "no error"),
	1:   fatal("OFFSET_OUT_OF_RANGE", "the requested offset is outside the range the broker holds for the partition"),
	2:   retry("CORRUPT_MESSAGE", "the message failed its CRC check, is too large, or is otherwise corrupt"),
	3:   stale("UNKNOWN_TOPIC_OR_PARTITION", "this broker does not host the topic or partition"),
	4:   fatal("INVALID_FETCH_SIZE", "the requested fetch size is invalid"),
	5:   stale("LEADER_NOT_AVAILABLE", "the partition has no leader right now, usually because an election is running"),
	6:   stale("NOT_LEADER_OR_FOLLOWER", "this broker is not the leader (or a follower) of the partition"),
	7:   retry("REQUEST_TIMED_OUT", "the request timed out on the broker"),
	8:   fatal("BROKER_NOT_AVAILABLE", "the broker is not available"),
	9:   stale("REPLICA_NOT_AVAILABLE", "the replica is not available for the partition"),
	10:  fatal("MESSAGE_TOO_LARGE", "a message is larger than the broker accepts"),
	11:  fatal("STALE_CONTROLLER_EPOCH", "the controller moved to another broker"),
	12:  fatal("OFFSET_METADATA_TOO_LARGE", "the metadata string of the committed offset is too large"),
	13:  stale("NETWORK_EXCEPTION", "the broker disconnected before sending a response"),
	14:  retry("COORDINATOR_LOAD_IN_PROGRESS", "the coordinator is still loading its state"),
	15:  retry("COORDINATOR_NOT_AVAILABLE", "the coordinator is not available"),
	16:  retry("NOT_COORDINATOR", "this broker is not the coordinator for the group or transaction"),
	17:  fatal("INVALID_TOPIC_EXCEPTION", "the topic name is invalid or the operation is not allowed on this topic"),
	18:  fatal("RECORD_LIST_TOO_LARGE", "the record batch is larger than the broker's segment size"),
	19:  retry("NOT_ENOUGH_REPLICAS", "fewer in-sync replicas than min.insync.replicas: records rejected"),
	20:  retry("NOT_ENOUGH_REPLICAS_AFTER_APPEND", "records were written, but to fewer in-sync replicas than required"),
	21:  fatal("INVALID_REQUIRED_ACKS", "the produce request has an invalid acks value"),
	22:  fatal("ILLEGAL_GENERATION", "the group generation is not the current one"),
	23:  fatal("INCONSISTENT_GROUP_PROTOCOL", "the member's protocols are incompatible with the group's"),
	24:  fatal("INVALID_GROUP_ID", "the group id is invalid"),
	25:  fatal("UNKNOWN_MEMBER_ID", "the coordinator does not know this member"),
	26:  fatal("INVALID_SESSION_TIMEOUT", "the session timeout is outside the broker's allowed range"),
	27:  fatal("REBALANCE_IN_PROGRESS", "the group is rebalancing; the member must rejoin"),
	28:  fatal("INVALID_COMMIT_OFFSET_SIZE", "the offset commit is too large"),
	29:  fatal("TOPIC_AUTHORIZATION_FAILED", "not authorized to access the topic"),
	30:  fatal("GROUP_AUTHORIZATION_FAILED", "not authorized to access the group"),
	31:  fatal("CLUSTER_AUTHORIZATION_FAILED", "not authorized for this cluster operation"),
	32:  fatal("INVALID_TIMESTAMP", "a record timestamp is outside the range the broker accepts"),
	33:  fatal("UNSUPPORTED_SASL_MECHANISM", "the broker does not support the requested SASL mechanism"),
	34:  fatal("ILLEGAL_SASL_STATE", "the request is not valid in the current SASL state"),
	35:  fatal("UNSUPPORTED_VERSION", "the broker does not support this API version"),
	36:  fatal("TOPIC_ALREADY_EXISTS", "a topic with this name already exists"),
	37:  fatal("INVALID_PARTITIONS", "the number of partitions is invalid"),
	38:  fatal("INVALID_REPLICATION_FACTOR", "the replication factor is invalid"),
	39:  fatal("INVALID_REPLICA_ASSIGNMENT", "the replica assignment is invalid"),
	40:  fatal("INVALID_CONFIG", "the configuration is invalid"),
	41:  retry("NOT_CONTROLLER", "this broker is not the active controller"),
	42:  fatal("INVALID_REQUEST", "the broker could not make sense of the request (malformed, or sent to an incompatible broker)"),
	43:  fatal("UNSUPPORTED_FOR_MESSAGE_FORMAT", "the topic's message format does not support the request"),
	44:  fatal("POLICY_VIOLATION", "the request violates a broker-side policy"),
	45:  fatal("OUT_OF_ORDER_SEQUENCE_NUMBER", "the broker received an out-of-order producer sequence number"),
	46:  fatal("DUPLICATE_SEQUENCE_NUMBER", "the broker received a duplicate producer sequence number"),
	47:  fatal("INVALID_PRODUCER_EPOCH", "the producer epoch is old: fenced or expired by the broker"),
	48:  fatal("INVALID_TXN_STATE", "the transactional operation is not valid in the transaction's current state"),
	49:  fatal("INVALID_PRODUCER_ID_MAPPING", "the producer id is not assigned to this transactional id"),
	50:  fatal("INVALID_TRANSACTION_TIMEOUT", "the transaction timeout exceeds the broker's transaction.max.timeout.ms"),
	51:  retry("CONCURRENT_TRANSACTIONS", "another operation on the same transaction is still in progress"),
	52:  fatal("TRANSACTION_COORDINATOR_FENCED", "the transaction coordinator sending the marker is no longer current"),
	53:  fatal("TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "not authorized to use the transactional id"),
	54:  fatal("SECURITY_DISABLED", "security features are disabled on the broker"),
	55:  fatal("OPERATION_NOT_ATTEMPTED", "the broker skipped this operation because another in the same request failed"),
	56:  stale("KAFKA_STORAGE_ERROR", "the broker hit a disk error accessing the log"),
	57:  fatal("LOG_DIR_NOT_FOUND", "the log directory is not in the broker's configuration"),
	58:  fatal("SASL_AUTHENTICATION_FAILED", "SASL authentication failed"),
	59:  fatal("UNKNOWN_PRODUCER_ID", "the broker has no state for this producer id (its records may have been deleted)"),
	60:  fatal("REASSIGNMENT_IN_PROGRESS", "a partition reassignment is in progress"),
	61:  fatal("DELEGATION_TOKEN_AUTH_DISABLED", "delegation tokens are not enabled"),
	62:  fatal("DELEGATION_TOKEN_NOT_FOUND", "the delegation token was not found"),
	63:  fatal("DELEGATION_TOKEN_OWNER_MISMATCH", "the principal is not the token's owner or renewer"),
	64:  fatal("DELEGATION_TOKEN_REQUEST_NOT_ALLOWED", "delegation token requests are not allowed on this kind of connection"),
	65:  fatal("DELEGATION_TOKEN_AUTHORIZATION_FAILED", "not authorized for the delegation token operation"),
	66:  fatal("DELEGATION_TOKEN_EXPIRED", "the delegation token has expired"),
	67:  fatal("INVALID_PRINCIPAL_TYPE", "the principal type is not supported"),
	68:  fatal("NON_EMPTY_GROUP", "the group is not empty"),
	69:  fatal("GROUP_ID_NOT_FOUND", "the group does not exist"),
	70:  retry("FETCH_SESSION_ID_NOT_FOUND", "the fetch session id is unknown to the broker"),
	71:  retry("INVALID_FETCH_SESSION_EPOCH", "the fetch session epoch is not the one the broker expects"),
	72:  stale("LISTENER_NOT_FOUND", "the leader has no listener matching the one the metadata came from"),
	73:  fatal("TOPIC_DELETION_DISABLED", "topic deletion is disabled on the broker"),
	74:  stale("FENCED_LEADER_EPOCH", "the leader epoch in the request is older than the broker's"),
	75:  retry("UNKNOWN_LEADER_EPOCH", "the leader epoch in the request is newer than the broker's"),
	76:  fatal("UNSUPPORTED_COMPRESSION_TYPE", "the client does not support the partition's compression type"),
	77:  fatal("STALE_BROKER_EPOCH", "the broker epoch has changed"),
	78:  retry("OFFSET_NOT_AVAILABLE", "the new leader's high watermark has not caught up yet"),
	79:  fatal("MEMBER_ID_REQUIRED", "the member must rejoin with the member id the coordinator assigned"),
	80:  retry("PREFERRED_LEADER_NOT_AVAILABLE", "the preferred leader is not available"),
	81:  fatal("GROUP_MAX_SIZE_REACHED", "the group has reached its maximum size"),
	82:  fatal("FENCED_INSTANCE_ID", "another member registered the same group.instance.id"),
	83:  retry("ELIGIBLE_LEADERS_NOT_AVAILABLE", "no eligible leader is available for the partition"),
	84:  retry("ELECTION_NOT_NEEDED", "no leader election is needed for the partition"),
	85:  fatal("NO_REASSIGNMENT_IN_PROGRESS", "no partition reassignment is in progress"),
	86:  fatal("GROUP_SUBSCRIBED_TO_TOPIC", "cannot delete offsets of a topic the group is subscribed to"),
	87:  fatal("INVALID_RECORD", "the broker rejected a record as invalid"),
	88:  retry("UNSTABLE_OFFSET_COMMIT", "the partition has pending transactional offsets"),
	89:  retry("THROTTLING_QUOTA_EXCEEDED", "the throttling quota has been exceeded"),
	90:  fatal("PRODUCER_FENCED", "a newer producer with the same transactional id has fenced this one"),
	91:  fatal("RESOURCE_NOT_FOUND", "the request refers to a resource that does not exist"),
	92:  fatal("DUPLICATE_RESOURCE", "the request refers to the same resource twice"),
	93:  fatal("UNACCEPTABLE_CREDENTIAL", "the credential does not meet the broker's criteria"),
	94:  fatal("INCONSISTENT_VOTER_SET", "the sender or receiver is not one of the expected voters"),
	95:  fatal("INVALID_UPDATE_VERSION", "the update version is invalid"),
	96:  fatal("FEATURE_UPDATE_FAILED", "the finalized features could not be updated"),
	97:  fatal("PRINCIPAL_DESERIALIZATION_FAILURE", "the forwarded request's principal could not be deserialized"),
	98:  fatal("SNAPSHOT_NOT_FOUND", "the requested snapshot was not found"),
	99:  fatal("POSITION_OUT_OF_RANGE", "the requested position is outside the snapshot"),
	100: stale("UNKNOWN_TOPIC_ID", "this broker does not host the topic id"),
	101: fatal("DUPLICATE_BROKER_REGISTRATION", "the broker id is already in use"),
	102: fatal("BROKER_ID_NOT_REGISTERED", "the broker id is not registered"),
	103: stale("INCONSISTENT_TOPIC_ID", "the topic id in the request does not match the log's"),
	104: fatal("INCONSISTENT_CLUSTER_ID", "the cluster id in the request does not match the broker's"),
	105: fatal("TRANSACTIONAL_ID_NOT_FOUND", "the transactional id was not found"),
	106: retry("FETCH_SESSION_TOPIC_ID_ERROR", "the fetch session used topic ids inconsistently"),
	107: fatal("INELIGIBLE_REPLICA", "the new ISR contains an ineligible replica"),
	108: fatal("NEW_LEADER_ELECTED", "the partition state was updated but the leader changed"),
	109: fatal("OFFSET_MOVED_TO_TIERED_STORAGE", "the requested offset has moved to tiered storage"),
	110: fatal("FENCED_MEMBER_EPOCH", "the member epoch is fenced; the member must give up its partitions and rejoin"),
	111: fatal("UNRELEASED_INSTANCE_ID", "the instance id is still held by another member"),
	112: fatal("UNSUPPORTED_ASSIGNOR", "the group does not support the assignor or its version"),
	113: fatal("STALE_MEMBER_EPOCH", "the member epoch is stale"),
	114: fatal("MISMATCHED_ENDPOINT_TYPE", "the request was sent to the wrong kind of endpoint"),
	115: fatal("UNSUPPORTED_ENDPOINT_TYPE", "this endpoint type is not supported"),
	116: fatal("UNKNOWN_CONTROLLER_ID", "the controller id is unknown"),
	117: fatal("UNKNOWN_SUBSCRIPTION_ID", "the telemetry subscription id is unknown or outdated"),
	118: fatal("TELEMETRY_TOO_LARGE", "the telemetry push is larger than the broker accepts"),
	119: fatal("INVALID_REGISTRATION", "the controller considers the broker registration invalid"),
	120: fatal("TRANSACTION_ABORTABLE", "the transaction failed; abort it to keep using the transactional id"),
	121: fatal("INVALID_RECORD_STATE", "the record state is invalid; the acknowledgement could not be completed"),
	122: retry("SHARE_SESSION_NOT_FOUND", "the share session was not found"),
	123: retry("INVALID_SHARE_SESSION_EPOCH", "the share session epoch is invalid"),
	124: fatal("FENCED_STATE_EPOCH", "the state epoch did not match the coordinator's"),
	125: fatal("INVALID_VOTER_KEY", "the voter key does not match the receiving replica's"),
	126: fatal("DUPLICATE_VOTER", "the voter is already in the voter set"),
	127: fatal("VOTER_NOT_FOUND", "the voter is not in the voter set"),
	128: fatal("INVALID_REGULAR_EXPRESSION", "the regular expression is invalid"),
	129: fatal("REBOOTSTRAP_REQUIRED", "the client's metadata is stale beyond repair: it must rebootstrap"),
	130: fatal("STREAMS_INVALID_TOPOLOGY", "the streams topology is invalid"),
	131: fatal("STREAMS_INVALID_TOPOLOGY_EPOCH", "the streams topology epoch is invalid"),
	132: fatal("STREAMS_TOPOLOGY_FENCED", "the streams topology epoch is outdated"),
	133: retry("SHARE_SESSION_LIMIT_REACHED", "the broker's share session limit has been reached"),
}

// fatal, retry and stale build table rows; they keep the two booleans from
// being positional and easy to swap.

// fatal is a code that retrying the same request cannot fix.
func fatal(name, text string) CodeInfo { return CodeInfo{Name: name, Text: text} }

// retry is a code that may go away if the same request is retried.
func retry(name, text string) CodeInfo { return CodeInfo{Name: name, Text: text, Retriable: true} }

// stale is a retriable code meaning the client's metadata is out of date:
// refresh it before retrying.
func stale(name, text string) CodeInfo {
	return CodeInfo{Name: name, Text: text, Retriable: true, Metadata: true}
}
