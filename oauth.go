package keel

import (
	"context"
	"errors"
	"time"

	"github.com/keel-go/keel/internal/conn"
)

// OAuthBearerToken is what the token source of SASLOAuthBearer returns.
type OAuthBearerToken struct {
	// Token is the bearer token, usually a JWT from the identity
	// provider. keel never logs it or puts it in an error.
	Token string
	// Lifetime is how long the token stays valid from now. keel reuses
	// it for new connections until 80% of it has passed, then asks the
	// source again. 0 means unknown: the source is asked for every
	// authentication.
	Lifetime time.Duration
	// Extensions are SASL extensions sent with the token (KIP-342), for
	// brokers that expect them (e.g. "logicalCluster" on Confluent
	// Cloud). Names are letters only.
	Extensions map[string]string
	// AuthzID is an optional authorization identity.
	AuthzID string
}

// SASLOAuthBearer authenticates with SASL OAUTHBEARER (KIP-255, RFC 7628).
// source is called with a context bounded by the dial timeout whenever a
// connection needs a token and the last one is due for refresh; calls are
// serialized and their answer shared by every connection of the client.
// An error from source fails that connection attempt with an error
// matching ErrAuthentication. Use it with TLS: the token is a credential.
//
// Brokers end OAuth sessions when the token expires (KIP-368); keel then
// re-authenticates each connection before its session runs out, with a
// fresh token, without failing the requests in flight on it.
func SASLOAuthBearer(source func(ctx context.Context) (OAuthBearerToken, error)) ClientOption {
	return func(c *clientConfig) {
		if source == nil {
			c.sasl = append(c.sasl, nilOAuthSource{})
			return
		}
		c.sasl = append(c.sasl, &conn.OAuthBearer{Source: func(ctx context.Context) (conn.OAuthToken, error) {
			t, err := source(ctx)
			return conn.OAuthToken{Token: t.Token, Lifetime: t.Lifetime, Extensions: t.Extensions, AuthzID: t.AuthzID}, err
		}})
	}
}

// nilOAuthSource marks SASLOAuthBearer(nil) for validate to refuse.
type nilOAuthSource struct{}

func (nilOAuthSource) Name() string { return "OAUTHBEARER" }

func (nilOAuthSource) Start(context.Context) (conn.Session, []byte, error) {
	return nil, nil, errors.New("OAUTHBEARER: no token source") // NewClient refuses it first
}
