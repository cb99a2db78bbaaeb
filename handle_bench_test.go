package keel

import (
	"context"
	"testing"
)

// BenchmarkHandlerCall measures what the Run path adds per record around
// a handler for Stats and stall detection (memberCore.handle: two clock
// reads, the watch slot's stores, the handler counters) against calling
// the handler alone, with no hook installed; and, for scale, one
// markCell.mark, which every processed record already pays.
//
//	go test -run '^$' -bench HandlerCall -count 5 .
func BenchmarkHandlerCall(b *testing.B) {
	h := HandlerFunc(func(context.Context, *Message) error { return nil })
	ctx := context.Background()
	m := &Message{Topic: "t", Offset: 1}
	b.Run("bare", func(b *testing.B) {
		for range b.N {
			if err := callHandler(h, ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("watched", func(b *testing.B) {
		c := &memberCore{}
		var slots handlerSlots
		slot := slots.add(TopicPartition{Topic: "t"})
		for range b.N {
			if err := c.handle(slot, h, ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	// For scale: the mark every processed record already pays (one CAS).
	b.Run("mark", func(b *testing.B) {
		var mc markCell
		for i := range b.N {
			mc.mark(int64(i), 0)
		}
	})
}
