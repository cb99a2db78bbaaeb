package keeltest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/keel-go/keel/keeltest"
)

// TestEnableACLsEnforces: with ACLs on, a SASL user with no ACL is refused
// a produce, a superuser is not, and an ACL the superuser creates lets
// the user produce to that topic only.
func TestEnableACLsEnforces(t *testing.T) {
	c := keeltest.NewCluster(t, keeltest.Brokers(1), keeltest.Topics(1, "open", "closed"), keeltest.EnableACLs(),
		keeltest.Superuser(keeltest.PLAIN, "root", "rootpw"), keeltest.SASL(keeltest.PLAIN, "alice", "alicepw"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := func(user, pass string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()),
			kgo.RecordRetries(1), kgo.RequestRetries(1), kgo.DisableIdempotentWrite())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	alice, root := client("alice", "alicepw"), client("root", "rootpw")
	produce := func(cl *kgo.Client, topic string) error {
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
	}
	if err := produce(alice, "open"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice without an ACL: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := produce(root, "closed"); err != nil {
		t.Fatalf("superuser: %v", err)
	}
	req := kmsg.NewPtrCreateACLsRequest()
	cr := kmsg.NewCreateACLsRequestCreation()
	cr.ResourceType, cr.ResourceName, cr.ResourcePatternType = kmsg.ACLResourceTypeTopic, "open", kmsg.ACLResourcePatternTypeLiteral
	cr.Principal, cr.Host, cr.Operation, cr.PermissionType = "User:alice", "*", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow
	req.Creations = append(req.Creations, cr)
	resp, err := req.RequestWith(ctx, root)
	if err != nil || resp.Results[0].ErrorCode != 0 {
		t.Fatalf("creating the ACL: %v %+v", err, resp)
	}
	if err := produce(alice, "open"); err != nil {
		t.Errorf("alice with WRITE on open: %v", err)
	}
	if err := produce(alice, "closed"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("alice on closed: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}

func TestSuperuserBadMechanism(t *testing.T) {
	if _, err := keeltest.Start(keeltest.Superuser("GSSAPI", "u", "p")); err == nil {
		t.Error("Superuser with an unknown mechanism started a cluster")
	}
}
