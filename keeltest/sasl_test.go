package keeltest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TestSASL checks each mechanism logs in with the right password and fails
// with a wrong one, and that an unauthenticated request closes the
// connection.
func TestSASL(t *testing.T) {
	c := NewCluster(t,
		SASL(PLAIN, "alice", "alice-pw"),
		SASL(SCRAMSHA256, "bob", "bob-pw"),
		SASL(SCRAMSHA512, "carol", "carol-pw"),
		Topic("t", 1),
	)
	for _, tc := range []struct {
		name      string
		good, bad sasl.Mechanism
	}{
		{PLAIN, plain.Auth{User: "alice", Pass: "alice-pw"}.AsMechanism(), plain.Auth{User: "alice", Pass: "nope"}.AsMechanism()},
		{SCRAMSHA256, scram.Auth{User: "bob", Pass: "bob-pw"}.AsSha256Mechanism(), scram.Auth{User: "bob", Pass: "nope"}.AsSha256Mechanism()},
		{SCRAMSHA512, scram.Auth{User: "carol", Pass: "carol-pw"}.AsSha512Mechanism(), scram.Auth{User: "carol", Pass: "nope"}.AsSha512Mechanism()},
		// A user exists only for the mechanism it was added with.
		{"wrong mechanism", nil, scram.Auth{User: "alice", Pass: "alice-pw"}.AsSha256Mechanism()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.good != nil {
				cl := newClient(t, c, kgo.SASL(tc.good))
				if _, err := cl.Request(testCtx(t), metadataReq()); err != nil {
					t.Fatalf("login failed: %v", err)
				}
				produce(t, cl, "t")
			}
			cl := newClient(t, c, kgo.SASL(tc.bad))
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			if _, err := cl.Request(ctx, metadataReq()); err == nil {
				t.Fatal("login with bad credentials succeeded")
			}
		})
	}

	// ApiVersions is allowed before authenticating; Metadata closes the
	// connection.
	r := dialRaw(t, c.Addr())
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(0)
	r.mustDo(av)
	if _, err := r.do(metadataReq()); !isClosed(err) {
		t.Fatalf("unauthenticated metadata: %v, want closed connection", err)
	}
}

// TestSASLOverTLS checks SASL and GeneratedTLS combine (SASL_SSL).
func TestSASLOverTLS(t *testing.T) {
	c := NewCluster(t, GeneratedTLS(), SASL(SCRAMSHA512, "u", "p"))
	cl := newClient(t, c,
		kgo.DialTLSConfig(c.ClientTLSConfig()),
		kgo.SASL(scram.Auth{User: "u", Pass: "p"}.AsSha512Mechanism()))
	if _, err := cl.Request(testCtx(t), metadataReq()); err != nil {
		t.Fatalf("SASL_SSL login: %v", err)
	}
}
