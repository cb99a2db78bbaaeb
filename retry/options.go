package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/keel-go/keel"
)

// Option configures a Policy. NewPolicy checks them together.
type Option func(*config)

type config struct {
	tiers       []time.Duration
	tiersSet    bool
	expo        *exponential
	maxAttempts int
	permanentIf func(error) bool
	retryName   func(source string, tier int) string
	dltName     func(source string) string
	create      bool
	createRF    int16
	createConf  map[string]string
	onDead      func(context.Context, DeadLetter)
	onRetry     func(context.Context, Retried)
	blocking    bool
	producer    *keel.Producer
	groupOpts   []keel.GroupOption
	backoffMin  time.Duration
	backoffMax  time.Duration
	logger      *slog.Logger
}

type exponential struct {
	initial time.Duration
	factor  float64
	max     time.Duration
}

func defaultConfig() config {
	return config{
		tiers:       []time.Duration{time.Second, 10 * time.Second, time.Minute},
		maxAttempts: 4,
		retryName:   DefaultRetryTopic,
		dltName:     DefaultDeadLetterTopic,
		createRF:    -1,
		backoffMin:  100 * time.Millisecond,
		backoffMax:  5 * time.Second,
	}
}

// DefaultRetryTopic names the retry topic of tier n (1 for the first
// delay) of source: "<source>.retry.<n>".
func DefaultRetryTopic(source string, tier int) string {
	return source + ".retry." + strconv.Itoa(tier)
}

// DefaultDeadLetterTopic names the dead-letter topic of source:
// "<source>.dlt".
func DefaultDeadLetterTopic(source string) string { return source + ".dlt" }

// Tiers sets the delays between attempts: after attempt k fails, the
// record waits delays[k-1]; the last delay repeats until MaxAttempts
// (default 1s, 10s, 1m). Each delay has its own retry topic, so records
// in one topic wait about the same time and none waits behind a longer
// one. Tiers beyond what MaxAttempts uses are an error.
func Tiers(delays ...time.Duration) Option {
	return func(c *config) {
		c.tiers = append([]time.Duration(nil), delays...)
		c.tiersSet = true
		c.expo = nil
	}
}

// Exponential sets the delays to initial, initial*factor, ... capped at
// max: one retry topic per distinct delay, the capped one repeating until
// MaxAttempts.
func Exponential(initial time.Duration, factor float64, max time.Duration) Option {
	return func(c *config) {
		c.expo = &exponential{initial: initial, factor: factor, max: max}
		c.tiersSet = false
	}
}

// MaxAttempts bounds how many times a record is handled, the first time
// included (default 4: the first attempt and three retries). After the
// last failed attempt the record goes to the dead-letter topic. 1 means
// no retries.
func MaxAttempts(n int) Option { return func(c *config) { c.maxAttempts = n } }

// PermanentIf classifies handler errors: when fn returns true the record
// goes to the dead-letter topic at once. Errors made with Permanent are
// permanent whatever fn says.
func PermanentIf(fn func(err error) bool) Option { return func(c *config) { c.permanentIf = fn } }

// RetryTopicName overrides the retry topics' names (default
// DefaultRetryTopic, "<source>.retry.<tier>"). Names must be distinct.
func RetryTopicName(fn func(source string, tier int) string) Option {
	return func(c *config) { c.retryName = fn }
}

// DeadLetterTopicName overrides the dead-letter topics' names (default
// DefaultDeadLetterTopic, "<source>.dlt").
func DeadLetterTopicName(fn func(source string) string) Option {
	return func(c *config) { c.dltName = fn }
}

// CreateMissingTopics makes EnsureTopics (and Consumer.Run, which calls
// it) create retry and dead-letter topics that do not exist, with their
// source topic's partition count, replicationFactor (-1: the broker's
// default) and configs (for example "retention.ms").
func CreateMissingTopics(replicationFactor int16, configs map[string]string) Option {
	return func(c *config) {
		c.create, c.createRF = true, replicationFactor
		c.createConf = make(map[string]string, len(configs))
		for k, v := range configs {
			c.createConf[k] = v
		}
	}
}

// OnDeadLetter is called after a record was written to a dead-letter topic
// and before its source offset is marked processed. It runs on the
// partition's worker (concurrently with other partitions' calls): keep it
// short. A panic in it is logged; the record counts as dead-lettered.
func OnDeadLetter(fn func(ctx context.Context, dl DeadLetter)) Option {
	return func(c *config) { c.onDead = fn }
}

// OnRetry is called after a failed record was written to a retry topic
// (or, in blocking mode, before it waits in place), on the partition's
// worker like OnDeadLetter.
func OnRetry(fn func(ctx context.Context, r Retried)) Option {
	return func(c *config) { c.onRetry = fn }
}

// Blocking retries in place instead of through retry topics: the handler
// is called again after each delay, the partition paused meanwhile, so
// the records of a partition stay in order — at the price of holding up
// the records behind the failing one. After the last attempt the record
// goes to the dead-letter topic. See docs/RETRIES.md for the choice.
func Blocking() Option { return func(c *config) { c.blocking = true } }

// WithProducer makes the policy write retry and dead-letter records with
// p instead of a producer of its own. p should keep the defaults the
// guarantees rely on: acks from all replicas and idempotence. The policy
// does not close it.
func WithProducer(p *keel.Producer) Option { return func(c *config) { c.producer = p } }

// GroupOptions are passed to the GroupConsumer that NewGroupConsumer
// makes.
func GroupOptions(opts ...keel.GroupOption) Option {
	return func(c *config) { c.groupOpts = append(c.groupOpts, opts...) }
}

// ProduceBackoff sets the wait before handling a record again after its
// write to a retry or dead-letter topic failed: from min, doubling, up to
// max (default 100ms to 5s).
func ProduceBackoff(min, max time.Duration) Option {
	return func(c *config) { c.backoffMin, c.backoffMax = min, max }
}

// Logger sets where the policy logs (default: the client's logger).
func Logger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// delays returns the tiers in use: the configured ones cut to the
// MaxAttempts-1 retries that can happen, or the exponential series up to
// its cap.
func (c *config) delays() []time.Duration {
	retries := c.maxAttempts - 1
	if retries <= 0 {
		return nil
	}
	if c.expo == nil {
		return c.tiers[:min(len(c.tiers), retries)]
	}
	var out []time.Duration
	d := float64(c.expo.initial)
	for range retries {
		capped := time.Duration(math.Min(d, float64(c.expo.max)))
		if len(out) > 0 && capped == out[len(out)-1] {
			break // the delay no longer grows (the cap, or factor 1): the last tier repeats
		}
		out = append(out, capped)
		d *= c.expo.factor
	}
	return out
}

func (c *config) validate(group string, sources []string) error {
	var problems []error
	bad := func(opt, problem, fix string) {
		problems = append(problems, &keel.ConfigError{Option: "retry." + opt, Problem: problem, Fix: fix})
	}
	if group == "" {
		bad("group", "empty consumer group", "pass the group that consumes the source topics")
	}
	if len(sources) == 0 {
		bad("topics", "no source topics", "pass the topics whose failed records are retried")
	}
	if c.maxAttempts < 1 {
		bad("MaxAttempts", fmt.Sprintf("%d is below 1", c.maxAttempts), "use 1 for no retries, or more")
	}
	if c.expo != nil {
		switch {
		case c.expo.initial <= 0:
			bad("Exponential", "initial delay not positive", "use e.g. time.Second")
		case c.expo.factor < 1 || math.IsNaN(c.expo.factor) || math.IsInf(c.expo.factor, 0):
			bad("Exponential", fmt.Sprintf("factor %v is below 1", c.expo.factor), "use e.g. 2")
		case c.expo.max < c.expo.initial:
			bad("Exponential", fmt.Sprintf("cap %v below the initial delay %v", c.expo.max, c.expo.initial), "raise the cap")
		}
	} else {
		if len(c.tiers) == 0 && c.maxAttempts > 1 {
			bad("Tiers", "no delays", "give at least one delay, e.g. Tiers(time.Second)")
		}
		for _, d := range c.tiers {
			if d <= 0 {
				bad("Tiers", fmt.Sprintf("delay %v is not positive", d), "use delays above zero")
				break
			}
		}
		if c.tiersSet && c.maxAttempts >= 1 && len(c.tiers) > c.maxAttempts-1 {
			bad("Tiers", fmt.Sprintf("%d delays but MaxAttempts(%d) allows only %d retries, so some delays would never be used", len(c.tiers), c.maxAttempts, c.maxAttempts-1),
				fmt.Sprintf("raise MaxAttempts to %d or drop delays", len(c.tiers)+1))
		}
	}
	if c.retryName == nil || c.dltName == nil {
		bad("RetryTopicName", "nil naming function", "pass a function, or leave the default")
	}
	if c.backoffMin <= 0 || c.backoffMax < c.backoffMin {
		bad("ProduceBackoff", fmt.Sprintf("min %v, max %v", c.backoffMin, c.backoffMax), "use a positive min and a max at least as large")
	}
	if c.create && c.createRF == 0 || c.createRF < -1 {
		bad("CreateMissingTopics", fmt.Sprintf("replication factor %d", c.createRF), "use -1 for the broker's default, or 1 or more")
	}
	return errors.Join(problems...)
}

// validTopic checks a topic name as Kafka does (keel.ValidateTopicName).
func validTopic(name string) error { return keel.ValidateTopicName(name) }
