// Package uifixture makes what the console's tests look at: a dead letter
// written by the retry package itself. It is shared by the handler tests
// (package ui) and the browser tests (module uitest).
package uifixture

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/retry"
)

// BadKey is the key whose record DeadLetterOne's handler fails.
const BadKey = "bad"

// DeadLetterOne runs the retry package as consumer group "billing" over
// topic until the record keyed BadKey was dead-lettered (its handler fails
// it permanently with an error saying "price is not a number") and
// returns where the dead letter was written. The dead-letter topic is
// created with the source's partition count.
func DeadLetterOne(client *keel.Client, topic string) (retry.DeadLetter, error) {
	got := make(chan retry.DeadLetter, 1)
	c, err := retry.NewGroupConsumer(client, "billing", []string{topic},
		retry.Tiers(time.Second), retry.MaxAttempts(2), retry.CreateMissingTopics(-1, nil),
		retry.OnDeadLetter(func(ctx context.Context, dl retry.DeadLetter) {
			select {
			case got <- dl:
			default:
			}
		}),
		retry.GroupOptions(keel.ResetOffset(keel.ResetEarliest)))
	if err != nil {
		return retry.DeadLetter{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
			if string(m.Key) == BadKey {
				return retry.Permanent(fmt.Errorf("order %s: price is not a number", m.Key))
			}
			return nil
		}))
	}()
	var dl retry.DeadLetter
	select {
	case dl = <-got:
	case <-ctx.Done():
		err = errors.New("uifixture: no dead letter within 30 s")
	}
	cancel()
	<-done
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer closeCancel()
	_ = c.Close(closeCtx)
	return dl, err
}
