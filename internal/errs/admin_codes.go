package errs

// Sentinels for the Kafka errors of administrative requests (topics,
// configs, groups). Like the ones in errs.go they match any *Error with
// their code, so the admin package can re-export them and errors.Is works
// on the *Error a broker answer turned into.
var (
	ErrInvalidTopic             = codeSentinel(17) // INVALID_TOPIC_EXCEPTION
	ErrInvalidPartitions        = codeSentinel(37) // INVALID_PARTITIONS
	ErrInvalidReplicationFactor = codeSentinel(38) // INVALID_REPLICATION_FACTOR
	ErrInvalidReplicaAssignment = codeSentinel(39) // INVALID_REPLICA_ASSIGNMENT
	ErrInvalidTopicConfig       = codeSentinel(40) // INVALID_CONFIG
	ErrNotController            = codeSentinel(41) // NOT_CONTROLLER
	ErrPolicyViolation          = codeSentinel(44) // POLICY_VIOLATION
	ErrNonEmptyGroup            = codeSentinel(68) // NON_EMPTY_GROUP
	ErrGroupIDNotFound          = codeSentinel(69) // GROUP_ID_NOT_FOUND
	ErrTopicDeletionDisabled    = codeSentinel(73) // TOPIC_DELETION_DISABLED
	ErrGroupSubscribedToTopic   = codeSentinel(86) // GROUP_SUBSCRIBED_TO_TOPIC
	ErrClusterAuthorization     = codeSentinel(31) // CLUSTER_AUTHORIZATION_FAILED
	ErrSecurityDisabled         = codeSentinel(54) // SECURITY_DISABLED
	ErrInvalidRequest           = codeSentinel(42) // INVALID_REQUEST
)
