package keel

import (
	"errors"
	"strings"
	"testing"
)

func TestSASLOAuthBearerNilSourceRefused(t *testing.T) {
	_, err := NewClient(SeedBrokers("127.0.0.1:9092"), SASLOAuthBearer(nil))
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "SASLOAuthBearer") {
		t.Fatalf("got %v, want an invalid-config error naming SASLOAuthBearer", err)
	}
}
