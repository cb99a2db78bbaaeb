package otel

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/keel-go/keel"
)

func TestErrorType(t *testing.T) {
	pe := &keel.ProduceError{Topic: "t", Partition: 1, Outcome: keel.NotWritten, Err: keel.ErrBufferFull}
	for _, c := range []struct {
		err  error
		want string
	}{
		{pe, "*keel.ProduceError"},
		{fmt.Errorf("handling: %w", pe), "*keel.ProduceError"},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", pe)), "*keel.ProduceError"},
		{fmt.Errorf("handling: %w", context.Canceled), "canceled"},
		{context.DeadlineExceeded, "timeout"},
		{errors.New("plain"), "*errors.errorString"},
		{fmt.Errorf("not wrapping %v", pe), "*errors.errorString"},
	} {
		if got := errorType(c.err); got != c.want {
			t.Errorf("errorType(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
