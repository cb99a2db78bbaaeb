package conn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

const oauthBearerName = "OAUTHBEARER"

// OAuthToken is what an OAuthBearer token source returns.
type OAuthToken struct {
	// Token is the bearer token (usually a JWT), sent as is.
	Token string
	// Lifetime is how long the token stays valid from when the source
	// returned it; 0 means unknown, and the source is then asked again
	// for every authentication.
	Lifetime time.Duration
	// Extensions are SASL extensions (RFC 7628 section 3.1, KIP-342)
	// sent with the token, e.g. a logical cluster id. Keys are letters
	// only; "auth" is reserved.
	Extensions map[string]string
	// AuthzID, when set, is sent as the authorization identity.
	AuthzID string
}

// OAuthBearer is SASL OAUTHBEARER (RFC 7628) as Kafka uses it (KIP-255):
// the client sends a bearer token from Source, which the broker validates.
// A token is reused by every connection until 80% of its lifetime has
// passed (Java's sasl.login.refresh.window.factor), then the next
// authentication or re-authentication asks Source for a new one.
type OAuthBearer struct {
	Source func(ctx context.Context) (OAuthToken, error)

	mu      sync.Mutex
	cached  OAuthToken
	refresh time.Time // when the cached token must be replaced
}

// Name implements Mechanism.
func (*OAuthBearer) Name() string { return oauthBearerName }

// Start implements Mechanism: it sends the client's initial response,
//
//	gs2-header kvsep "auth=Bearer " token kvsep *(key "=" value kvsep) kvsep
//
// with kvsep 0x01 and gs2-header "n," ["a=" authzid] ",".
func (o *OAuthBearer) Start(ctx context.Context) (Session, []byte, error) {
	tok, err := o.token(ctx)
	if err != nil {
		return nil, nil, err
	}
	var b strings.Builder
	b.WriteString("n,")
	if tok.AuthzID != "" {
		b.WriteString("a=" + saslName(tok.AuthzID))
	}
	b.WriteString(",\x01auth=Bearer " + tok.Token + "\x01")
	for _, k := range slices.Sorted(maps.Keys(tok.Extensions)) {
		b.WriteString(k + "=" + tok.Extensions[k] + "\x01")
	}
	b.WriteString("\x01")
	return &oauthSession{}, []byte(b.String()), nil
}

// token returns the cached token, or a new one from Source when there is
// none or it is due for refresh.
func (o *OAuthBearer) token(ctx context.Context) (OAuthToken, error) {
	o.mu.Lock()
	defer o.mu.Unlock() // one Source call at a time: connections share its answer
	if o.cached.Token != "" && time.Now().Before(o.refresh) {
		return o.cached, nil
	}
	if o.Source == nil {
		return OAuthToken{}, errors.New("OAUTHBEARER: no token source")
	}
	tok, err := o.Source(ctx)
	if err != nil {
		return OAuthToken{}, fmt.Errorf("OAUTHBEARER: the token source failed: %w", err)
	}
	if err := validToken(tok); err != nil {
		return OAuthToken{}, err
	}
	o.cached = tok
	o.refresh = time.Time{}
	if tok.Lifetime > 0 {
		o.refresh = time.Now().Add(tok.Lifetime * 8 / 10)
	}
	return tok, nil
}

// validToken checks what RFC 7628 allows, so that a bad token or extension
// is refused here with a reason rather than by the broker without one.
// The token's value is never put in the error.
func validToken(t OAuthToken) error {
	if t.Token == "" {
		return errors.New("OAUTHBEARER: the token source returned an empty token")
	}
	if t.Lifetime < 0 {
		return fmt.Errorf("OAUTHBEARER: the token source returned a negative lifetime (%v)", t.Lifetime)
	}
	for _, r := range t.Token { // b64token: RFC 6750 section 2.1
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~+/=", r)) {
			return errors.New("OAUTHBEARER: the token has a character a bearer token cannot hold (RFC 6750 b64token)")
		}
	}
	for k, v := range t.Extensions {
		if k == "" || k == "auth" || strings.IndexFunc(k, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }) >= 0 {
			return fmt.Errorf("OAUTHBEARER: extension name %q is not letters only, or is the reserved \"auth\"", printable(k))
		}
		if strings.IndexFunc(v, func(r rune) bool { return !(r >= 0x21 && r <= 0x7e || r == ' ' || r == '\t' || r == '\r' || r == '\n') }) >= 0 {
			return fmt.Errorf("OAUTHBEARER: the value of extension %q has a character RFC 7628 does not allow", k)
		}
	}
	if strings.ContainsAny(t.AuthzID, "\x00\x01") {
		return errors.New("OAUTHBEARER: the authorization id has a control character")
	}
	return nil
}

// saslName escapes an authzid for the gs2 header (RFC 5801).
func saslName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// oauthSession is one OAUTHBEARER exchange. A broker that accepts the
// token answers with an empty message. One that refuses it sends a JSON
// error status (RFC 7628 section 3.2.2); the client must answer with a
// lone kvsep, after which the broker fails the exchange
// (SASL_AUTHENTICATION_FAILED). The status is kept to say why.
type oauthSession struct {
	refused error
}

func (s *oauthSession) Next(server []byte) (bool, []byte, error) {
	if s.refused != nil {
		return false, nil, s.refused // the broker went on after refusing
	}
	if len(server) == 0 {
		return true, nil, nil
	}
	s.refused = oauthRefusal(server)
	return false, []byte{0x01}, nil
}

func (s *oauthSession) refusal() error { return s.refused }

// oauthRefusal describes the server's error challenge.
func oauthRefusal(msg []byte) error {
	var st struct {
		Status string `json:"status"`
		Scope  string `json:"scope"`
	}
	if err := json.Unmarshal(msg, &st); err != nil || st.Status == "" {
		return fmt.Errorf("OAUTHBEARER: the broker refused the token (%d bytes of error that are not an RFC 7628 status)", len(msg))
	}
	if st.Scope != "" {
		return fmt.Errorf("OAUTHBEARER: the broker refused the token: status %q, scope %q", printable(st.Status), printable(st.Scope))
	}
	return fmt.Errorf("OAUTHBEARER: the broker refused the token: status %q", printable(st.Status))
}
