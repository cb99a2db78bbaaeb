package keel

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/errs"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/meta"
)

// Client is the part of keel that producers and consumers share: the seed
// brokers, one pool of broker connections and one view of the cluster. Make
// one per cluster and close it last, after its producers and consumers.
type Client struct {
	cfg    clientConfig
	logger *slog.Logger
	pool   *conn.Pool
	meta   *meta.Meta
	events listeners
	// hooks are WithHooks' (nil without): see hookset.go.
	hooks *hookSet

	closeOnce sync.Once
}

// NewClient checks the options and returns a client. It does not connect:
// the first request does, so a client can be made before the cluster is up.
// Invalid options give an error matching ErrInvalidConfig that says what to
// change.
func NewClient(opts ...ClientOption) (*Client, error) {
	cfg := defaultClientConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.seeds = slices.Clone(cfg.seeds)
	logger := cfg.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	hooks, err := newHookSet(cfg.hooks, logger)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, logger: logger, hooks: hooks}

	connCfg := &conn.Config{
		ClientID:       cfg.clientID,
		DialTimeout:    cfg.dialTimeout,
		RequestTimeout: cfg.requestTimeout,
		TLS:            cfg.tls,
		MaxVersions:    cfg.maxVersions,
		Logger:         logger,
		Hooks: conn.Hooks{
			OnConnect: func(addr string) {
				logger.Debug("keel: connected", "broker", addr)
				c.events.emit(BrokerConnected{Broker: addr})
				if hooks != nil && len(hooks.connect) > 0 {
					hooks.onConnect(addr)
				}
			},
			OnDisconnect: func(addr string, err error) {
				logger.Debug("keel: disconnected", "broker", addr, "err", err)
				c.events.emit(BrokerDisconnected{Broker: addr, Err: err})
				if hooks != nil && len(hooks.disconnect) > 0 {
					hooks.onDisconnect(addr, err)
				}
			},
			OnThrottle: func(addr string, key int16, d time.Duration) {
				logger.Warn("keel: throttled by broker", "broker", addr, "api", kmsg.NameForKey(key), "for", d)
				c.events.emit(Throttled{Broker: addr, API: kmsg.NameForKey(key), Duration: d})
				if hooks != nil && len(hooks.throttle) > 0 {
					hooks.onThrottle(addr, key, d)
				}
			},
			OnAuthFailure: func(addr string, err error) {
				logger.Error("keel: authentication failed", "broker", addr, "err", err)
				c.events.emit(AuthFailed{Broker: addr, Err: err})
			},
		},
	}
	hooks.connHooks(&connCfg.Hooks)
	if len(cfg.sasl) == 1 {
		connCfg.SASL = cfg.sasl[0]
	}
	backoff := conn.Backoff{Min: cfg.reconnectMin, Max: cfg.reconnectMax}
	c.pool = conn.NewPool(connCfg, backoff, cfg.idleTimeout)
	c.meta = meta.New(meta.Config{
		Seeds:                  cfg.seeds,
		MaxAge:                 cfg.metadataMaxAge,
		MinRefreshInterval:     cfg.metadataMinRefresh,
		UnknownTopicRetries:    cfg.unknownTopicRetries,
		AllowAutoTopicCreation: cfg.autoCreateTopics,
		Backoff:                conn.Backoff{Min: 100 * time.Millisecond, Max: time.Second},
		Logger:                 logger,
		OnChange: func(_, s *meta.Snapshot) {
			c.events.emit(MetadataChanged{Brokers: len(s.Brokers), Topics: len(s.Topics)})
		},
	}, c.pool)
	return c, nil
}

// Close closes every connection and stops the client's background work,
// waiting for its goroutines. Closing sockets does not block on the network,
// so Close returns promptly; ctx is accepted for symmetry with the Close of
// producers and consumers, which flush and commit within it and should be
// closed first. Calling Close again returns nil.
func (c *Client) Close(ctx context.Context) error {
	if ctx == nil {
		return errs.NilContext("Client.Close")
	}
	c.closeOnce.Do(func() {
		c.meta.Close()
		c.pool.Close()
	})
	return nil
}
