package retry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/retry"
)

var errDown = errors.New("billing service unavailable")

func bill(ctx context.Context, order map[string]any) error { return errDown }

// The usual set-up: retry after 1s, 10s and 1m through retry topics, then
// the dead-letter topic; records that cannot be parsed go there at once.
func ExampleNewGroupConsumer() {
	client, err := keel.NewClient(keel.SeedBrokers("127.0.0.1:9092"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(context.Background())
	c, err := retry.NewGroupConsumer(client, "billing", []string{"orders"},
		retry.Tiers(time.Second, 10*time.Second, time.Minute),
		retry.MaxAttempts(4),
		retry.CreateMissingTopics(-1, map[string]string{"retention.ms": "604800000"}),
		retry.OnDeadLetter(func(ctx context.Context, dl retry.DeadLetter) {
			log.Printf("order %s dead-lettered (%s) after %d attempts: %v", dl.Message.Key, dl.Reason, dl.Info.Attempt, dl.Err)
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(context.Background())
	err = c.Run(context.Background(), keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		var order map[string]any
		if err := json.Unmarshal(m.Value, &order); err != nil {
			return retry.Permanent(fmt.Errorf("order %s: %w", m.Key, err))
		}
		if n := retry.Attempt(m); n > 1 {
			log.Printf("order %s: attempt %d", m.Key, n)
		}
		return bill(ctx, order)
	}))
	if err != nil {
		log.Fatal(err)
	}
}

// Replaying what failed in the last two hours, once the cause is fixed.
func ExampleReplay() {
	client, err := keel.NewClient(keel.SeedBrokers("127.0.0.1:9092"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(context.Background())
	res, err := retry.Replay(context.Background(), client, retry.ReplayOptions{
		DLT:   "orders.dlt",
		Since: time.Now().Add(-2 * time.Hour),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("replayed %d records; progress kept by group %s\n", res.Replayed, res.Group)
}
