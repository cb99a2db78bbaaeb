package retry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
)

const s = time.Second

func mustPolicy(t *testing.T, topics []string, opts ...Option) *Policy {
	t.Helper()
	p, err := newPolicy(nil, "g", topics, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDelays(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		want []time.Duration
	}{
		{"defaults", nil, []time.Duration{s, 10 * s, 60 * s}},
		{"default tiers cut to the retries", []Option{MaxAttempts(2)}, []time.Duration{s}},
		{"no retries", []Option{MaxAttempts(1)}, nil},
		{"tiers", []Option{Tiers(s, 5*s), MaxAttempts(6)}, []time.Duration{s, 5 * s}},
		{"exponential to the cap", []Option{Exponential(s, 2, 10*s), MaxAttempts(9)}, []time.Duration{s, 2 * s, 4 * s, 8 * s, 10 * s}},
		{"exponential cut by attempts", []Option{Exponential(s, 3, time.Hour), MaxAttempts(4)}, []time.Duration{s, 3 * s, 9 * s}},
		{"exponential factor 1", []Option{Exponential(s, 1, time.Hour), MaxAttempts(5)}, []time.Duration{s}},
		{"later option wins", []Option{Exponential(s, 2, 4*s), Tiers(7 * s), MaxAttempts(3)}, []time.Duration{7 * s}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, []string{"orders"}, tc.opts...)
			if got := p.Delays(); !slices.Equal(got, tc.want) {
				t.Fatalf("delays %v, want %v", got, tc.want)
			}
		})
	}
}

// next: attempt k's failure goes to tier min(k, tiers), the last tier
// repeating, until MaxAttempts; permanent errors skip to the dead-letter
// topic.
func TestTierSelection(t *testing.T) {
	p := mustPolicy(t, []string{"orders"}, Tiers(s, 5*s), MaxAttempts(5))
	plain := errors.New("boom")
	for _, tc := range []struct {
		attempt int
		tier    int
		delay   time.Duration
		dead    string
	}{
		{1, 1, s, ""}, {2, 2, 5 * s, ""}, {3, 2, 5 * s, ""}, {4, 2, 5 * s, ""}, {5, 0, 0, ReasonExhausted}, {9, 0, 0, ReasonExhausted},
	} {
		tier, delay, dead := p.next(tc.attempt, plain)
		if tier != tc.tier || delay != tc.delay || dead != tc.dead {
			t.Errorf("attempt %d: tier %d delay %v dead %q; want %d %v %q", tc.attempt, tier, delay, dead, tc.tier, tc.delay, tc.dead)
		}
	}
	if _, _, dead := p.next(1, fmt.Errorf("wrapped: %w", Permanent(plain))); dead != ReasonPermanent {
		t.Errorf("permanent error: %q", dead)
	}
	one := mustPolicy(t, []string{"orders"}, MaxAttempts(1))
	if _, _, dead := one.next(1, plain); dead != ReasonExhausted {
		t.Errorf("MaxAttempts(1): %q", dead)
	}
}

func TestNaming(t *testing.T) {
	p := mustPolicy(t, []string{"orders", "payments"}, Tiers(s, 10*s), MaxAttempts(3))
	want := []string{"orders", "payments", "orders.retry.1", "orders.retry.2", "payments.retry.1", "payments.retry.2"}
	if got := p.Topics(); !slices.Equal(got, want) {
		t.Fatalf("Topics %v", got)
	}
	if p.DeadLetterTopic("orders") != "orders.dlt" {
		t.Fatal(p.DeadLetterTopic("orders"))
	}
	if r := p.roles["payments.retry.2"]; r.source != "payments" || r.tier != 2 {
		t.Fatalf("role %+v", r)
	}

	custom := mustPolicy(t, []string{"orders"}, Tiers(s), MaxAttempts(2),
		RetryTopicName(func(src string, tier int) string { return fmt.Sprintf("billing-%s-retry-%d", src, tier) }),
		DeadLetterTopicName(func(src string) string { return "billing-" + src + "-dlt" }))
	if got := custom.Topics(); !slices.Equal(got, []string{"orders", "billing-orders-retry-1"}) || custom.DeadLetterTopic("orders") != "billing-orders-dlt" {
		t.Fatalf("custom names: %v, %s", got, custom.DeadLetterTopic("orders"))
	}

	blocking := mustPolicy(t, []string{"orders"}, Blocking())
	if got := blocking.Topics(); !slices.Equal(got, []string{"orders"}) || len(blocking.RetryTopics("orders")) != 0 {
		t.Fatalf("blocking subscribes to %v", got)
	}
}

func TestInvalidOptions(t *testing.T) {
	same := func(string, int) string { return "orders" }
	for _, tc := range []struct {
		name   string
		group  string
		topics []string
		opts   []Option
		says   string
	}{
		{"no group", "", []string{"o"}, nil, "empty consumer group"},
		{"no topics", "g", nil, nil, "no source topics"},
		{"zero attempts", "g", []string{"o"}, []Option{MaxAttempts(0)}, "MaxAttempts"},
		{"negative tier", "g", []string{"o"}, []Option{Tiers(s, -s)}, "not positive"},
		{"no tiers", "g", []string{"o"}, []Option{Tiers()}, "no delays"},
		{"unused tiers", "g", []string{"o"}, []Option{Tiers(s, 2*s, 3*s), MaxAttempts(3)}, "never be used"},
		{"expo factor", "g", []string{"o"}, []Option{Exponential(s, 0.5, 10*s)}, "factor"},
		{"expo cap", "g", []string{"o"}, []Option{Exponential(10*s, 2, s)}, "cap"},
		{"retry topic is the source", "g", []string{"orders"}, []Option{RetryTopicName(same)}, "is both"},
		{"bad characters", "g", []string{"orders"}, []Option{DeadLetterTopicName(func(string) string { return "orders dlt" })}, "not a legal Kafka topic name"},
		{"bad backoff", "g", []string{"o"}, []Option{ProduceBackoff(s, 0)}, "ProduceBackoff"},
		{"bad replication", "g", []string{"o"}, []Option{CreateMissingTopics(0, nil)}, "replication factor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newPolicy(nil, tc.group, tc.topics, tc.opts)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, keel.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	if _, err := NewPolicy(nil, "g", []string{"o"}); !errors.Is(err, keel.ErrInvalidConfig) {
		t.Fatalf("nil client: %v", err)
	}
}

func TestClassifier(t *testing.T) {
	if Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is not nil")
	}
	base := errors.New("bad json")
	perm := fmt.Errorf("order 7: %w", Permanent(base))
	if !IsPermanent(perm) || !errors.Is(perm, base) || perm.Error() != "order 7: bad json" {
		t.Fatalf("wrapping: %v", perm)
	}
	if IsPermanent(base) || IsPermanent(nil) {
		t.Fatal("plain error is permanent")
	}
	notFound := errors.New("not found")
	p := mustPolicy(t, []string{"o"}, PermanentIf(func(err error) bool { return errors.Is(err, notFound) }))
	if !p.cfg.permanent(fmt.Errorf("customer 3: %w", notFound)) || p.cfg.permanent(base) || !p.cfg.permanent(perm) {
		t.Fatal("PermanentIf not applied, or it overrides Permanent")
	}
}
