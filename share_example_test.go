package keel_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/keel-go/keel"
)

var errNoSuchAddress = errors.New("no such address")

func sendMail(ctx context.Context, m *keel.Message) error { return nil }

// A share group as a queue of jobs: 16 handlers in this process (any
// number of processes may join), each record acknowledged by its
// handler's result. Slow handlers keep their records: keel renews the
// acquisition locks while they run.
func ExampleShareConsumer_Run() {
	ctx := context.Background()
	client, err := keel.NewClient(keel.SeedBrokers(seeds()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)
	sc, err := keel.NewShareConsumer(client, "mailers", []string{"emails"}, keel.ShareConcurrency(16))
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		sc.Close(cctx) // finishes running handlers, acknowledges, leaves
	}()
	err = sc.Run(ctx, keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error {
		if m.DeliveryCount() > 1 {
			log.Printf("email %s: attempt %d", m.Key, m.DeliveryCount())
		}
		err := sendMail(ctx, m)
		if errors.Is(err, errNoSuchAddress) {
			return keel.Permanent(err) // rejected: never delivered again
		}
		return err // nil accepts; any other error releases it for another delivery
	}))
	if err != nil {
		log.Print(err)
	}
}

// Explicit acknowledgement with Poll: each record is accepted, released
// or rejected by the application.
func ExampleShareConsumer_Poll() {
	ctx := context.Background()
	client, err := keel.NewClient(keel.SeedBrokers(seeds()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)
	sc, err := keel.NewShareConsumer(client, "mailers", []string{"emails"})
	if err != nil {
		log.Fatal(err)
	}
	defer sc.Close(ctx)
	for {
		msgs, err := sc.Poll(ctx)
		if err != nil {
			log.Print(err)
			return
		}
		for _, m := range msgs {
			switch err := sendMail(ctx, m); {
			case err == nil:
				sc.Accept(m)
			case errors.Is(err, errNoSuchAddress):
				sc.Reject(m)
			default:
				sc.Release(m)
			}
		}
		if err := sc.Flush(ctx); err != nil { // optional: acknowledge now, not with the next fetch
			fmt.Println("some acknowledgements failed; those records come again:", err)
		}
	}
}
