package keeltest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TestACLGrants checks SASLUser's grants with franz-go as the client: a
// grant allows exactly its operation, the superuser everything.
func TestACLGrants(t *testing.T) {
	c := NewCluster(t, EnableACLs(), Topic("allowed", 1), Topic("denied", 1),
		Superuser(SCRAMSHA256, "root", "root-pw"),
		SASLUser(SCRAMSHA256, "app", "app-pw", AllowTopic("allowed", kmsg.ACLOperationWrite),
			AllowTopic("denied", kmsg.ACLOperationDescribe)))
	app := newClient(t, c, kgo.SASL(scram.Auth{User: "app", Pass: "app-pw"}.AsSha256Mechanism()))
	produce(t, app, "allowed")
	_, err := app.ProduceSync(testCtx(t), &kgo.Record{Topic: "denied", Value: []byte("v")}).First()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce without WRITE: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	root := newClient(t, c, kgo.SASL(scram.Auth{User: "root", Pass: "root-pw"}.AsSha256Mechanism()))
	produce(t, root, "denied")

	if _, err := Start(SASLUser("DIGEST-MD5", "u", "p")); err == nil {
		t.Fatal("SASLUser accepted an unknown mechanism")
	}
}

// TestAcceptOAuthBearer checks the broker side of OAUTHBEARER with
// franz-go's client: a good token logs in and gets the session lifetime,
// after which the client re-authenticates; a bad one is refused with the
// check's status.
func TestAcceptOAuthBearer(t *testing.T) {
	c := NewCluster(t, Topic("t", 1), Brokers(1))
	ob := c.AcceptOAuthBearer(func(token string, ext map[string]string) (time.Duration, error) {
		if token != "good" || ext["k"] != "v" {
			return 0, errors.New("invalid_token")
		}
		return time.Hour, nil
	})
	good := newClient(t, c, kgo.SASL(oauth.Auth{Token: "good", Extensions: map[string]string{"k": "v"}}.AsMechanism()))
	produce(t, good, "t")
	if ob.Logins() < 1 || ob.Refusals() != 0 || ob.Tokens()[0] != "good" {
		t.Fatalf("logins %d, refusals %d, tokens %v", ob.Logins(), ob.Refusals(), ob.Tokens())
	}
	bad := newClient(t, c, kgo.SASL(oauth.Auth{Token: "bad"}.AsMechanism()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// franz-go fails at the RFC 7628 error status itself ("unexpected
	// data") instead of answering it; either way the login must fail.
	if _, err := bad.Request(ctx, metadataReq()); err == nil {
		t.Fatal("a bad token logged in")
	}
	if ob.Refusals() == 0 {
		t.Fatal("no refusal counted")
	}
}
