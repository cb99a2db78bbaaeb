package keel

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"
)

// The delivery count of share group records lives in Message's padding:
// ordinary consumers, producers and every kept *Message pay nothing for it.
func TestMessageDeliveryCountCostsNoSpace(t *testing.T) {
	type messageWithoutDeliveryCount struct {
		Topic       string
		Partition   int32
		Key         []byte
		Value       []byte
		Headers     []Header
		Timestamp   time.Time
		Offset      int64
		leaderEpoch int32
	}
	if got, want := unsafe.Sizeof(Message{}), unsafe.Sizeof(messageWithoutDeliveryCount{}); got != want {
		t.Fatalf("Message is %d bytes, %d without its delivery count: keep the field in the padding", got, want)
	}
	if (&Message{}).DeliveryCount() != 0 {
		t.Error("a message not read through a share group has delivery count 0")
	}
}

// permanentMarker is another package's way of saying "permanent".
type permanentMarker struct{ permanent bool }

func (e permanentMarker) Error() string   { return "marker" }
func (e permanentMarker) Permanent() bool { return e.permanent }

// A handler's result decides the acknowledgement: success accepts, an
// error made with Permanent (wrapped or not, or any error saying
// Permanent() true) rejects, anything else releases.
func TestShareAckForHandlerResults(t *testing.T) {
	base := errors.New("boom")
	cases := []struct {
		err  error
		want AckType
	}{
		{nil, AckAccept},
		{base, AckRelease},
		{context.Canceled, AckRelease},
		{Permanent(base), AckReject},
		{fmt.Errorf("handling: %w", Permanent(base)), AckReject},
		{permanentMarker{true}, AckReject},
		{permanentMarker{false}, AckRelease},
		{errors.Join(base, Permanent(base)), AckReject},
	}
	for _, c := range cases {
		if got := shareAckFor(c.err); got != c.want {
			t.Errorf("shareAckFor(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) must be nil")
	}
	if !errors.Is(Permanent(base), base) {
		t.Error("Permanent must wrap its error")
	}
}

// Bad options are refused up front, all at once, with what to change.
func TestNewShareConsumerValidates(t *testing.T) {
	c, err := NewClient(SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := NewShareConsumer(nil, "g", []string{"t"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil client: %v", err)
	}
	_, err = NewShareConsumer(c, " ", []string{"bad name!"}, ShareConcurrency(0), ShareMaxRecords(-1), ShareFetchMaxWait(0))
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad options: %v", err)
	}
	for _, what := range []string{"group", "topics", "ShareConcurrency", "ShareMaxRecords", "ShareFetchMaxWait"} {
		var found bool
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var ce *ConfigError
			if errors.As(e, &ce) && ce.Option == what {
				found = true
			}
		}
		if !found {
			t.Errorf("the error does not name %s: %v", what, err)
		}
	}
	if _, err := NewShareConsumer(c, "g", nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no topics: %v", err)
	}
	sc, err := NewShareConsumer(c, "g", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	var nilCtx context.Context
	if _, err := sc.Poll(nilCtx); !errors.Is(err, ErrNilContext) {
		t.Errorf("Poll(nil): %v", err)
	}
	if err := sc.Run(nilCtx, HandlerFunc(func(context.Context, *Message) error { return nil })); !errors.Is(err, ErrNilContext) {
		t.Errorf("Run(nil): %v", err)
	}
	if err := sc.Run(context.Background(), nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Run with a nil handler: %v", err)
	}
	if err := sc.Accept(&Message{Topic: "t"}); !errors.Is(err, ErrShareRecordNotHeld) {
		t.Errorf("Accept before Poll: %v", err)
	}
	if err := sc.Close(context.Background()); err != nil {
		t.Errorf("closing a share consumer that never started: %v", err)
	}
	if _, err := sc.Poll(context.Background()); !errors.Is(err, ErrConsumerClosed) {
		t.Errorf("Poll after Close: %v", err)
	}
}
