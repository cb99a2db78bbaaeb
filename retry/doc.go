// Package retry retries records whose handler failed, through retry
// topics with delays, and sends those that keep failing to a dead-letter
// topic — without ever losing one between the source topic, the retry
// topics and the dead-letter topic.
//
// A Policy wraps a keel.Handler. When the handler fails, the record is
// written to the next retry topic (by default "<topic>.retry.<n>", one
// per delay tier) with headers saying which attempt comes next, when
// (HeaderRetryAfter, an absolute time), where the record came from and
// why it failed; only once that write is acknowledged does the source
// offset count as processed. The same group consumes the retry topics:
// a record is not handled before its retry-after, its partition is paused
// while it waits, and the wait ends at once on a revoke or Close, leaving
// the record uncommitted for its next owner. After the last attempt, or
// on an error marked Permanent, the record goes to the dead-letter topic
// ("<topic>.dlt") and OnDeadLetter is called. Replay (and `keel dlq
// replay`) moves dead letters back to their topic.
//
// Non-blocking retries reorder the records of a key: the failed one comes
// back after later ones were handled. For order-sensitive topics, Blocking
// retries in place instead. docs/RETRIES.md explains the choice, the
// headers and the failure semantics.
//
//	c, err := retry.NewGroupConsumer(client, "billing", []string{"orders"},
//		retry.Tiers(time.Second, 10*time.Second, time.Minute),
//		retry.MaxAttempts(4),
//		retry.CreateMissingTopics(-1, nil),
//		retry.OnDeadLetter(func(ctx context.Context, dl retry.DeadLetter) {
//			log.Printf("order %s dead-lettered after %d attempts: %v", dl.Message.Key, dl.Info.Attempt, dl.Err)
//		}))
//	if err != nil { ... }
//	defer c.Close(context.Background())
//	err = c.Run(ctx, keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
//		order, err := parse(m.Value)
//		if err != nil {
//			return retry.Permanent(err) // retrying will not help
//		}
//		return bill(ctx, order) // an error here is retried in 1s, 10s, 1m
//	}))
package retry
