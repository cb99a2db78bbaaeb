package conn

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOAuthBearerInitialResponse(t *testing.T) {
	for _, tc := range []struct {
		tok  OAuthToken
		want string
	}{
		{OAuthToken{Token: "abc.def"}, "n,,\x01auth=Bearer abc.def\x01\x01"},
		{OAuthToken{Token: "t", AuthzID: "a=b,c", Extensions: map[string]string{"z": "1", "logicalCluster": "lkc-1"}},
			"n,a=a=3Db=2Cc,\x01auth=Bearer t\x01logicalCluster=lkc-1\x01z=1\x01\x01"},
	} {
		o := &OAuthBearer{Source: func(context.Context) (OAuthToken, error) { return tc.tok, nil }}
		_, msg, err := o.Start(context.Background())
		if err != nil || string(msg) != tc.want {
			t.Errorf("got %q, %v; want %q", msg, err, tc.want)
		}
	}
}

// A token is reused until 80% of its lifetime, then fetched again; a token
// of unknown lifetime is fetched for every login.
func TestOAuthBearerTokenRefresh(t *testing.T) {
	calls := 0
	lifetime := time.Hour
	o := &OAuthBearer{Source: func(context.Context) (OAuthToken, error) {
		calls++
		return OAuthToken{Token: "t", Lifetime: lifetime}, nil
	}}
	for range 3 {
		if _, _, err := o.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("%d source calls for one long-lived token", calls)
	}
	o.mu.Lock()
	o.refresh = time.Now().Add(-time.Millisecond) // 80% of the lifetime has passed
	o.mu.Unlock()
	lifetime = 0
	for range 2 {
		o.Start(context.Background())
	}
	if calls != 3 {
		t.Fatalf("%d source calls, want 3 (one refresh, then every login for an unknown lifetime)", calls)
	}
}

func TestOAuthBearerRefusesBadTokensWithoutShowingThem(t *testing.T) {
	const secret = "s3cr3t-token-value"
	for _, tok := range []OAuthToken{
		{},
		{Token: secret + "\x01"},
		{Token: secret + " "},
		{Token: secret, Lifetime: -time.Second},
		{Token: secret, Extensions: map[string]string{"auth": "x"}},
		{Token: secret, Extensions: map[string]string{"bad-key": "x"}},
		{Token: secret, Extensions: map[string]string{"k": "\x01"}},
		{Token: secret, AuthzID: "\x01"},
	} {
		o := &OAuthBearer{Source: func(context.Context) (OAuthToken, error) { return tok, nil }}
		_, msg, err := o.Start(context.Background())
		if err == nil {
			t.Errorf("%+q: accepted, message %q", tok.Token, msg)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the token: %v", err)
		}
	}
	o := &OAuthBearer{Source: func(context.Context) (OAuthToken, error) { return OAuthToken{}, errors.New("idp down") }}
	if _, _, err := o.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "idp down") {
		t.Fatalf("source error: %v", err)
	}
}

// RFC 7628 section 3.2.2: the server's error status is answered with a
// lone kvsep and kept for the final error.
func TestOAuthBearerServerRefusal(t *testing.T) {
	o := &OAuthBearer{Source: func(context.Context) (OAuthToken, error) { return OAuthToken{Token: "t"}, nil }}
	sess, _, _ := o.Start(context.Background())
	done, next, err := sess.Next([]byte(`{"status":"invalid_token","scope":"kafka"}`))
	if done || err != nil || string(next) != "\x01" {
		t.Fatalf("got done=%v next=%q err=%v, want the kvsep", done, next, err)
	}
	r := sess.(serverRefusal).refusal()
	if r == nil || !strings.Contains(r.Error(), `"invalid_token"`) || !strings.Contains(r.Error(), `"kafka"`) {
		t.Fatalf("refusal %v", r)
	}
	if _, _, err := sess.Next(nil); err == nil {
		t.Fatal("the exchange went on after a refusal")
	}
	sess, _, _ = o.Start(context.Background())
	if done, _, err := sess.Next(nil); !done || err != nil {
		t.Fatalf("empty server message: done=%v err=%v", done, err)
	}
}
