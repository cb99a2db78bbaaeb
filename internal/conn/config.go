// Package conn holds keel's connections to Kafka brokers: dialing with a
// timeout, TLS, SASL, ApiVersions negotiation, and pipelined requests matched
// by correlation id. Pool keeps one connection per broker and purpose and
// reconnects with backoff.
package conn

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"time"
)

// Hooks are called on connection events. Each may be nil. They run on keel's
// goroutines and must not block.
type Hooks struct {
	OnConnect     func(addr string)
	OnDisconnect  func(addr string, err error)
	OnThrottle    func(addr string, key int16, d time.Duration)
	OnAuthFailure func(addr string, err error)
	// OnReauthenticate: a connection renewed its SASL session (KIP-368).
	OnReauthenticate func(addr string)
	// OnRequestWritten: a request was written (bytes with framing; wait
	// from Send to the end of the write), or failed to be (err).
	OnRequestWritten func(addr string, key int16, bytes int, wait time.Duration, err error)
	// OnResponseRead: a response was read (bytes without framing;
	// latency from the end of its request's write).
	OnResponseRead func(addr string, key int16, bytes int, latency time.Duration)
}

// Config is what every connection of a client shares.
type Config struct {
	ClientID        string
	SoftwareName    string
	SoftwareVersion string

	// DialTimeout bounds the whole connection setup: TCP, TLS, ApiVersions
	// and SASL.
	DialTimeout time.Duration
	// RequestTimeout bounds the wait for a response, on top of any time the
	// request itself asks the broker to wait (produce timeout, fetch max
	// wait, join group rebalance timeout). A request that exceeds it
	// closes its connection, as in the Java client: a broker that stopped
	// answering on a connection cannot be trusted to answer later ones.
	RequestTimeout time.Duration
	TLS            *tls.Config
	SASL           Mechanism
	// Dial replaces net.Dialer.DialContext, for tests and proxies.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxVersions caps the version used per API key.
	MaxVersions map[int16]int16
	// MaxResponseBytes refuses responses larger than this, which can only
	// come from a corrupt stream or a non-Kafka peer.
	MaxResponseBytes int32
	Logger           *slog.Logger
	Hooks            Hooks
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}
