package admin

import "github.com/keel-go/keel/internal/errs"

// Sentinels for the conditions administrative requests most often meet.
// Each stands for a Kafka error code and matches, with errors.Is, any
// *keel.Error that carries that code.
var (
	// ErrTopicExists: CreateTopics found a topic of that name (36
	// TOPIC_ALREADY_EXISTS).
	ErrTopicExists = errs.ErrTopicAlreadyExists
	// ErrInvalidTopic: the name is not a legal topic name, collides with
	// another topic, or the operation is not allowed on it (17).
	ErrInvalidTopic = errs.ErrInvalidTopic
	// ErrInvalidPartitions: the partition count is not valid (37).
	ErrInvalidPartitions = errs.ErrInvalidPartitions
	// ErrInvalidReplicationFactor: the replication factor is larger than
	// the number of brokers, or otherwise invalid (38).
	ErrInvalidReplicationFactor = errs.ErrInvalidReplicationFactor
	// ErrInvalidReplicaAssignment: a manual replica assignment is invalid (39).
	ErrInvalidReplicaAssignment = errs.ErrInvalidReplicaAssignment
	// ErrInvalidConfig: a topic config name or value was rejected (40).
	ErrInvalidConfig = errs.ErrInvalidTopicConfig
	// ErrPolicyViolation: a broker-side create or alter policy refused the
	// request (44).
	ErrPolicyViolation = errs.ErrPolicyViolation
	// ErrTopicDeletionDisabled: the brokers run with
	// delete.topic.enable=false (73).
	ErrTopicDeletionDisabled = errs.ErrTopicDeletionDisabled
	// ErrGroupNotEmpty: the group still has members, so it cannot be
	// deleted (68 NON_EMPTY_GROUP).
	ErrGroupNotEmpty = errs.ErrNonEmptyGroup
	// ErrGroupNotFound: the group does not exist (69 GROUP_ID_NOT_FOUND;
	// also used when DescribeGroups reports the group as Dead).
	ErrGroupNotFound = errs.ErrGroupIDNotFound
)

// ErrGroupSubscribed: the group's offsets on a topic cannot be deleted
// while a member is subscribed to it (86 GROUP_SUBSCRIBED_TO_TOPIC).
var ErrGroupSubscribed = errs.ErrGroupSubscribedToTopic

// ErrSecurityDisabled: the cluster has no authorizer, so it keeps no ACLs
// (54 SECURITY_DISABLED).
var ErrSecurityDisabled = errs.ErrSecurityDisabled

// ErrClusterAuthorization: the principal may not perform a cluster-level
// operation such as managing ACLs (31 CLUSTER_AUTHORIZATION_FAILED).
var ErrClusterAuthorization = errs.ErrClusterAuthorization
