package keel

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/keel-go/keel/internal/conn"
)

// ClientOption configures a Client. Options are checked together once, in
// NewClient, which says what to change when they do not fit.
type ClientOption func(*clientConfig)

type clientConfig struct {
	seeds          []string
	clientID       string
	dialTimeout    time.Duration
	requestTimeout time.Duration
	tls            *tls.Config
	sasl           []conn.Mechanism
	logger         *slog.Logger

	metadataMaxAge      time.Duration
	metadataMinRefresh  time.Duration
	unknownTopicRetries int
	autoCreateTopics    bool
	idleTimeout         time.Duration
	reconnectMin        time.Duration
	reconnectMax        time.Duration
	maxVersions         map[int16]int16
	hooks               []any // WithHooks
	stallAfter          time.Duration
}

func defaultClientConfig() clientConfig {
	return clientConfig{
		clientID:            "keel",
		dialTimeout:         10 * time.Second, // Java socket.connection.setup.timeout.ms
		requestTimeout:      30 * time.Second, // Java request.timeout.ms
		metadataMaxAge:      5 * time.Minute,  // Java metadata.max.age.ms
		metadataMinRefresh:  100 * time.Millisecond,
		unknownTopicRetries: 4,
		idleTimeout:         9 * time.Minute, // Java connections.max.idle.ms
		reconnectMin:        50 * time.Millisecond,
		reconnectMax:        time.Second,
		stallAfter:          time.Minute,
	}
}

// StallAfter is how long something may go without progress before keel
// reports a stall (default 1 minute; 0 turns detection off): a handler
// still running on one record, a consumed partition whose position does
// not move while it has lag, a produced partition with records waiting
// and nothing acknowledged. Each stall is reported once, as a Stall in
// the producer's or consumer's Events(), to StallHooks, in Stats
// (Stalled) and logged at Warn. It applies to every producer and consumer
// of the client.
func StallAfter(d time.Duration) ClientOption {
	return func(c *clientConfig) { c.stallAfter = max(d, 0) }
}

// SeedBrokers sets the brokers to bootstrap from, as "host:port" (port 9092
// when omitted). Any one reachable seed is enough.
func SeedBrokers(addrs ...string) ClientOption {
	return func(c *clientConfig) { c.seeds = append(c.seeds, addrs...) }
}

// ClientID names this client in broker logs and quotas (default "keel").
func ClientID(id string) ClientOption { return func(c *clientConfig) { c.clientID = id } }

// DialTimeout bounds connecting to a broker, including TLS, API version
// negotiation and SASL (default 10s).
func DialTimeout(d time.Duration) ClientOption {
	return func(c *clientConfig) { c.dialTimeout = d }
}

// RequestTimeout bounds the wait for a broker's answer, beyond whatever the
// request itself asks the broker to wait (default 30s). A broker that does
// not answer in time has its connection closed and the request fails with
// an error matching ErrRequestTimeout.
func RequestTimeout(d time.Duration) ClientOption {
	return func(c *clientConfig) { c.requestTimeout = d }
}

// TLS enables TLS with cfg (nil: system roots, verification on).
func TLS(cfg *tls.Config) ClientOption {
	return func(c *clientConfig) {
		if cfg == nil {
			cfg = &tls.Config{}
		}
		c.tls = cfg
	}
}

// SASLPlain authenticates with SASL PLAIN. Use it with TLS: PLAIN sends the
// password as is.
func SASLPlain(user, password string) ClientOption {
	return func(c *clientConfig) { c.sasl = append(c.sasl, conn.Plain{User: user, Pass: password}) }
}

// SASLScramSHA256 authenticates with SASL SCRAM-SHA-256.
func SASLScramSHA256(user, password string) ClientOption {
	return func(c *clientConfig) { c.sasl = append(c.sasl, conn.Scram{User: user, Pass: password}) }
}

// SASLScramSHA512 authenticates with SASL SCRAM-SHA-512.
func SASLScramSHA512(user, password string) ClientOption {
	return func(c *clientConfig) {
		c.sasl = append(c.sasl, conn.Scram{User: user, Pass: password, SHA512: true})
	}
}

// Logger sets where keel logs (default: nowhere). Connection changes are
// logged at Debug, recoverable trouble at Warn, failures at Error.
func Logger(l *slog.Logger) ClientOption { return func(c *clientConfig) { c.logger = l } }

// MetadataMaxAge is how old the cluster view may get before it is refreshed
// even without errors (default 5m).
func MetadataMaxAge(d time.Duration) ClientOption {
	return func(c *clientConfig) { c.metadataMaxAge = d }
}

// MetadataMinRefreshInterval spaces refreshes caused by errors (default
// 100ms), so a burst of stale-leader answers costs one metadata request.
func MetadataMinRefreshInterval(d time.Duration) ClientOption {
	return func(c *clientConfig) { c.metadataMinRefresh = d }
}

// UnknownTopicRetries is how many metadata answers saying a topic does not
// exist keel waits through before failing with ErrUnknownTopic (default 4,
// about 1.5s with the default backoff).
func UnknownTopicRetries(n int) ClientOption {
	return func(c *clientConfig) { c.unknownTopicRetries = n }
}

// AllowAutoTopicCreation lets brokers that allow it create topics this
// client asks for. Off by default: a typo should be an error, not a topic.
func AllowAutoTopicCreation() ClientOption {
	return func(c *clientConfig) { c.autoCreateTopics = true }
}

// ConnIdleTimeout closes connections with nothing in flight for this long
// (default 9m, as the Java client; the broker closes them at 10m).
func ConnIdleTimeout(d time.Duration) ClientOption {
	return func(c *clientConfig) { c.idleTimeout = d }
}

// ReconnectBackoff sets the wait before redialing a broker that failed: it
// starts at min, doubles per failure up to max, with ±20% jitter (default
// 50ms to 1s).
func ReconnectBackoff(min, max time.Duration) ClientOption {
	return func(c *clientConfig) { c.reconnectMin, c.reconnectMax = min, max }
}

// MaxAPIVersion caps the protocol version keel uses for one API key, e.g. to
// reproduce an old broker's behaviour. Rarely needed: keel picks the highest
// version both sides support.
func MaxAPIVersion(key int16, version int16) ClientOption {
	return func(c *clientConfig) {
		if c.maxVersions == nil {
			c.maxVersions = make(map[int16]int16)
		}
		c.maxVersions[key] = version
	}
}

// validate checks the options together and says what to change.
func (c *clientConfig) validate() error {
	var problems []error
	bad := func(opt, problem, fix string) {
		problems = append(problems, &ConfigError{Option: opt, Problem: problem, Fix: fix})
	}
	if len(c.seeds) == 0 {
		bad("SeedBrokers", "no seed brokers given", `pass SeedBrokers("host:9092") with at least one broker address`)
	}
	for i, s := range c.seeds {
		norm, err := normalizeAddr(s)
		if err != nil {
			bad("SeedBrokers", fmt.Sprintf("address %q: %v", s, err), `use "host:port", e.g. "127.0.0.1:9092"`)
			continue
		}
		c.seeds[i] = norm
	}
	if c.dialTimeout <= 0 {
		bad("DialTimeout", fmt.Sprintf("%v is not positive", c.dialTimeout), "use e.g. DialTimeout(10*time.Second)")
	}
	if c.requestTimeout <= 0 {
		bad("RequestTimeout", fmt.Sprintf("%v is not positive", c.requestTimeout), "use e.g. RequestTimeout(30*time.Second)")
	}
	if len(c.sasl) > 1 {
		names := make([]string, len(c.sasl))
		for i, m := range c.sasl {
			names[i] = m.Name()
		}
		bad("SASL", "several SASL mechanisms given ("+strings.Join(names, ", ")+")", "a connection authenticates with one mechanism: keep one SASL option")
	}
	for _, m := range c.sasl {
		switch m := m.(type) {
		case nilOAuthSource:
			bad("SASLOAuthBearer", "nil token source", "pass a function that returns a token from your identity provider")
		case conn.Plain:
			if m.User == "" {
				bad("SASLPlain", "empty user name", "pass the user the broker knows")
			}
		case conn.Scram:
			if m.User == "" {
				bad("SASLScram", "empty user name", "pass the user the broker knows")
			}
		}
	}
	if c.metadataMaxAge <= 0 {
		bad("MetadataMaxAge", fmt.Sprintf("%v is not positive", c.metadataMaxAge), "use e.g. MetadataMaxAge(5*time.Minute)")
	}
	if c.metadataMinRefresh < 0 || c.metadataMinRefresh > c.metadataMaxAge {
		bad("MetadataMinRefreshInterval", fmt.Sprintf("%v must be between 0 and MetadataMaxAge (%v)", c.metadataMinRefresh, c.metadataMaxAge), "lower it or raise MetadataMaxAge")
	}
	if c.unknownTopicRetries < 0 {
		bad("UnknownTopicRetries", fmt.Sprintf("%d is negative", c.unknownTopicRetries), "use 0 to fail at the first answer")
	}
	if c.idleTimeout < 0 {
		bad("ConnIdleTimeout", fmt.Sprintf("%v is negative", c.idleTimeout), "use 0 to keep idle connections open")
	}
	if c.reconnectMin <= 0 || c.reconnectMax < c.reconnectMin {
		bad("ReconnectBackoff", fmt.Sprintf("min %v, max %v: need 0 < min <= max", c.reconnectMin, c.reconnectMax), "use e.g. ReconnectBackoff(50*time.Millisecond, time.Second)")
	}
	if c.clientID == "" {
		bad("ClientID", "empty client id", "omit ClientID to use \"keel\"")
	}
	return errors.Join(problems...)
}

func normalizeAddr(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// A bare host (no colon, or a bracketed IPv6 literal) gets 9092.
		if !strings.Contains(s, ":") || (strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]")) {
			host, port = strings.Trim(s, "[]"), "9092"
		} else {
			return "", err
		}
	}
	if host == "" {
		return "", errors.New("missing host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return net.JoinHostPort(host, port), nil
}
