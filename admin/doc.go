// Package admin manages a Kafka cluster through a keel.Client: topics and
// their configs, consumer groups, offsets and lag.
//
//	client, _ := keel.NewClient(keel.SeedBrokers("localhost:9092"))
//	adm, _ := admin.New(client)
//	err := adm.CreateTopics(ctx, admin.TopicSpec{Name: "orders", Partitions: 6, ReplicationFactor: 3})
//	if errors.Is(err, admin.ErrTopicExists) { ... }
//	lag, _ := adm.Lag(ctx, "billing")
//
// Requests go where the Java AdminClient sends them: topic creation and
// deletion to the controller, group requests to the group's coordinator,
// offset lookups to each partition's leader. Answers that say the request
// went to the wrong broker (NOT_CONTROLLER, NOT_COORDINATOR, NOT_LEADER,
// coordinator loading) are retried after refreshing what keel knows, a
// bounded number of times and never past the caller's ctx.
//
// Errors are *keel.Error values naming the topic or group; test them with
// errors.Is against this package's sentinels (ErrTopicExists,
// ErrGroupNotFound, ...) or keel's (keel.ErrUnknownTopic, ...).
package admin
