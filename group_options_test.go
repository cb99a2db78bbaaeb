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

// GroupProtocol's options are checked together: each refusal names the
// option and what to use instead.
func TestGroupProtocolOptionsAreChecked(t *testing.T) {
	c, err := NewClient(SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	for _, tc := range []struct {
		opts []GroupOption
		want string
	}{
		{[]GroupOption{GroupProtocol("next")}, "GroupProtocol"},
		{[]GroupOption{ServerAssignor("uniform")}, "ServerAssignor"},
		{[]GroupOption{GroupProtocol(ConsumerProtocol), ServerAssignor("sticky")}, `unknown assignor "sticky"`},
		{[]GroupOption{GroupProtocol(ConsumerProtocol), Assignors("range")}, "ServerAssignor"},
	} {
		if _, err := NewGroupConsumer(c, "g", []string{"t"}, tc.opts...); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d options: %v; want a ConfigError mentioning %q", len(tc.opts), err, tc.want)
		}
	}
	for _, a := range []string{"", "uniform", "range"} {
		g, err := NewGroupPoller(c, "g", []string{"t"}, GroupProtocol(ConsumerProtocol), ServerAssignor(a))
		if err != nil {
			t.Fatalf("ServerAssignor(%q): %v", a, err)
		}
		g.Close(t.Context())
	}
}
