package keeltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OAuthCheck decides on one OAUTHBEARER login: it gets the bearer token
// and the SASL extensions the client sent, and returns the session
// lifetime to grant (0: the session does not expire) or an error to
// refuse the token. The error's text is sent as the RFC 7628 status, e.g.
// errors.New("invalid_token").
type OAuthCheck func(token string, extensions map[string]string) (sessionLifetime time.Duration, err error)

// OAuthBroker is the broker side of SASL OAUTHBEARER installed by
// [Cluster.AcceptOAuthBearer]. Its counters say what clients did.
type OAuthBroker struct {
	handshakes, logins, refusals counter

	mu     sync.Mutex
	tokens []string
}

// Handshakes counts SaslHandshake requests for OAUTHBEARER: one per new
// connection, plus one per re-authentication (KIP-368).
func (o *OAuthBroker) Handshakes() int { return o.handshakes.get() }

// Logins counts tokens accepted.
func (o *OAuthBroker) Logins() int { return o.logins.get() }

// Refusals counts tokens refused.
func (o *OAuthBroker) Refusals() int { return o.refusals.get() }

// WaitLogins blocks until n tokens were accepted or ctx ends.
func (o *OAuthBroker) WaitLogins(ctx context.Context, n int) error { return o.logins.wait(ctx, n) }

// Tokens returns the distinct tokens accepted so far, in the order first
// seen: a client that refreshes its token shows more than one.
func (o *OAuthBroker) Tokens() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.tokens...)
}

// AcceptOAuthBearer makes every broker play the server side of SASL
// OAUTHBEARER (RFC 7628, KIP-255), which kfake does not implement, through
// controls on SaslHandshake and SaslAuthenticate: it offers OAUTHBEARER,
// parses the client's initial response, and asks check about the token.
// An accepted token gets the session lifetime check returned
// (session_lifetime_ms, KIP-368), after which a client must
// re-authenticate on the same connection with a new handshake. A refused
// one gets the RFC 7628 error status, then SASL_AUTHENTICATION_FAILED once
// the client answers it.
//
// Start the cluster without [SASL]: these controls answer the SASL
// requests, but the cluster does not stop a client that skips them, so a
// test should check the counters (a login per connection, a handshake per
// re-authentication) rather than rely on refusals of other requests.
func (c *Cluster) AcceptOAuthBearer(check OAuthCheck) *OAuthBroker {
	o := new(OAuthBroker)
	// A control sees requests, not connections: the client's lone kvsep
	// after a refusal is recognised by its content, and the status to
	// repeat in the final error is the last one refused on that broker.
	var lastRefusal sync.Map // node ID -> status
	c.Control(kmsg.SASLHandshake, func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		hr := req.(*kmsg.SASLHandshakeRequest)
		resp := hr.ResponseKind().(*kmsg.SASLHandshakeResponse)
		resp.SupportedMechanisms = []string{"OAUTHBEARER"}
		if hr.Mechanism != "OAUTHBEARER" {
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
			return resp, nil, true
		}
		o.handshakes.add()
		return resp, nil, true
	})
	c.Control(kmsg.SASLAuthenticate, func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		ar := req.(*kmsg.SASLAuthenticateRequest)
		resp := ar.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		node := c.CurrentNode()
		if bytes.Equal(ar.SASLAuthBytes, []byte{1}) {
			status, _ := lastRefusal.Load(node)
			msg := fmt.Sprintf("OAUTHBEARER token refused: %v", status)
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			resp.ErrorMessage = &msg
			return resp, nil, true
		}
		token, ext, err := parseOAuthInitial(ar.SASLAuthBytes)
		if err == nil {
			var lifetime time.Duration
			if lifetime, err = check(token, ext); err == nil {
				o.logins.add()
				o.mu.Lock()
				if !containsString(o.tokens, token) {
					o.tokens = append(o.tokens, token)
				}
				o.mu.Unlock()
				resp.SessionLifetimeMillis = lifetime.Milliseconds()
				return resp, nil, true
			}
		}
		o.refusals.add()
		status := strings.ReplaceAll(err.Error(), `"`, `'`)
		lastRefusal.Store(node, status)
		resp.SASLAuthBytes = []byte(`{"status":"` + status + `"}`)
		return resp, nil, true
	})
	return o
}

// parseOAuthInitial reads an RFC 7628 client initial response:
// gs2-header kvsep *(key=value kvsep) kvsep, with an auth=Bearer entry.
func parseOAuthInitial(b []byte) (token string, ext map[string]string, err error) {
	gs2, rest, ok := bytes.Cut(b, []byte{1})
	if !ok || !bytes.HasPrefix(gs2, []byte("n,")) || !bytes.HasSuffix(rest, []byte{1, 1}) {
		return "", nil, errors.New("invalid_request")
	}
	for _, kv := range strings.Split(string(rest[:len(rest)-2]), "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return "", nil, errors.New("invalid_request")
		case k == "auth":
			t, ok := strings.CutPrefix(v, "Bearer ")
			if !ok || t == "" {
				return "", nil, errors.New("invalid_request")
			}
			token = t
		default:
			if ext == nil {
				ext = make(map[string]string)
			}
			ext[k] = v
		}
	}
	if token == "" {
		return "", nil, errors.New("invalid_request")
	}
	return token, ext, nil
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
