package keel

import (
	"errors"
	"strings"
	"testing"
)

// An option of the other kind of consumer is refused at construction,
// naming the option and the constructor it belongs to, instead of being
// ignored.
func TestGroupOptionsOfTheOtherKindAreRefused(t *testing.T) {
	c, err := NewClient(SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	_, err = NewGroupConsumer(c, "g", []string{"t"}, BlockRebalanceOnPoll())
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "NewGroupPoller") {
		t.Errorf("BlockRebalanceOnPoll on a GroupConsumer: %v", err)
	}
	for name, opt := range map[string]GroupOption{
		"MaxConcurrency": MaxConcurrency(2),
		"OnHandlerError": OnHandlerError(func(*Message, error) HandlerAction { return SkipMessage }),
	} {
		_, err := NewGroupPoller(c, "g", []string{"t"}, opt)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "NewGroupConsumer") {
			t.Errorf("%s on a GroupPoller: %v", name, err)
		}
	}
	g, err := NewGroupPoller(c, "g", []string{"t"}, BlockRebalanceOnPoll())
	if err != nil {
		t.Fatal(err)
	}
	g.Close(t.Context())
}
