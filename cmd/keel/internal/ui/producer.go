package ui

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keel-go/keel"
)

// lazyProducer makes the console's producers on first use: a read-only
// console, or one nobody produces from, never opens one. manual honours
// the partition the form names; auto partitions by key.
type lazyProducer struct {
	client       *keel.Client
	mu           sync.Mutex
	auto, manual *keel.Producer
}

func (l *lazyProducer) get(manual bool) (*keel.Producer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	slot, opts := &l.auto, []keel.ProducerOption{keel.ProduceRequestTimeout(10 * time.Second), keel.DeliveryTimeout(20 * time.Second)}
	if manual {
		slot, opts = &l.manual, append(opts, keel.ManualPartitioner())
	}
	if *slot == nil {
		p, err := keel.NewProducer(l.client, opts...)
		if err != nil {
			return nil, err
		}
		*slot = p
	}
	return *slot, nil
}

func (l *lazyProducer) close(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, p := range []*keel.Producer{l.auto, l.manual} {
		if p != nil {
			errs = append(errs, p.Close(ctx))
		}
	}
	l.auto, l.manual = nil, nil
	return errors.Join(errs...)
}
