package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-go/keel/keeltest"
)

// TestACLsCreateListEnforceDelete: ACLs created with keel acls (as a
// superuser, credentials given kcat-style with -X) are listed, and the
// cluster enforces them on the user they name (credentials from a Kafka
// tool --command-config file): alice may produce to the topic she was
// granted WRITE on and gets an authorization error elsewhere, may not
// read without READ, may not manage ACLs; after acls delete she may not
// write at all. Bad ACLs and bad credentials fail clearly.
func TestACLsCreateListEnforceDelete(t *testing.T) {
	cl := testCluster(t, keeltest.Brokers(1), keeltest.Topics(1, "allowed", "denied"), keeltest.EnableACLs(),
		keeltest.Superuser(keeltest.PLAIN, "root", "root-secret"), keeltest.SASL(keeltest.SCRAMSHA256, "alice", "alice-secret"))
	b := cl.Addr()
	root := []string{"-b", b, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=root", "-X", "sasl.password=root-secret"}
	props := filepath.Join(t.TempDir(), "alice.properties")
	if err := os.WriteFile(props, []byte(`# as for kafka-console-producer.sh --producer.config
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-secret";
client.id=ignored-by-keel
`), 0o600); err != nil {
		t.Fatal(err)
	}
	alice := []string{"-b", b, "--command-config", props}
	with := func(creds []string, args ...string) []string { return append(append([]string{}, args...), creds...) }
	runIn := func(stdin string, args ...string) binResult {
		t.Helper()
		return runBinary(t, strings.NewReader(stdin), args...)
	}

	r := mustRun(t, with(root, "acls", "list")...)
	if !strings.Contains(r.stdout, "no ACLs match") {
		t.Errorf("acls list on a fresh cluster: %s", r.stdout)
	}
	// Without any ACL alice may not write.
	if r := runIn("x\n", with(alice, "produce", "-t", "allowed")...); r.code != 1 || !strings.Contains(r.stderr, "TOPIC_AUTHORIZATION_FAILED") {
		t.Fatalf("alice before any ACL: exit %d\n%s", r.code, r.stderr)
	}
	r = mustRun(t, with(root, "acls", "create", "--principal", "User:alice", "--operation", "write", "--topic", "allowed")...)
	if !strings.Contains(r.stdout, "created ACL: User:alice ALLOW WRITE on TOPIC allowed (LITERAL) from host *") {
		t.Errorf("acls create: %s", r.stdout)
	}
	r = mustRun(t, with(root, "acls", "list", "--topic", "allowed", "--json")...)
	var listed []aclJSON
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil {
		t.Fatal(err)
	}
	want := aclJSON{Principal: "User:alice", Host: "*", Operation: "WRITE", Permission: "ALLOW", ResourceType: "TOPIC", ResourceName: "allowed", PatternType: "LITERAL"}
	if len(listed) != 1 || listed[0] != want {
		t.Fatalf("acls list --json: %+v, want [%+v]", listed, want)
	}
	if rows := tableRows(t, mustRun(t, with(root, "acls", "list", "--principal", "User:alice")...).stdout, "PRINCIPAL"); len(rows) != 1 {
		t.Errorf("acls list --principal: %v", rows)
	}

	// Enforced: WRITE on allowed only.
	if r := runIn("a1\na2\n", with(alice, "produce", "-t", "allowed", "-q")...); r.code != 0 {
		t.Fatalf("alice producing to allowed: exit %d\n%s", r.code, r.stderr)
	}
	if hw := cl.HighWatermark("allowed", 0); hw != 2 {
		t.Errorf("allowed holds %d records, want alice's 2", hw)
	}
	for _, args := range [][]string{
		{"produce", "-t", "denied"},
		{"consume", "-t", "allowed", "-e"}, // no READ
	} {
		r := runIn("x\n", with(alice, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "AUTHORIZATION_FAILED") || !strings.Contains(r.stderr, "keel acls") {
			t.Errorf("alice: keel %s: exit %d, want 1 and an authorization error with the hint\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if hw := cl.HighWatermark("denied", 0); hw != 0 {
		t.Errorf("denied holds %d records", hw)
	}
	wantFail(t, 1, with(alice, "acls", "create", "--principal", "User:alice", "--operation", "all", "--topic", "denied"), "CLUSTER_AUTHORIZATION_FAILED")

	r = mustRun(t, with(root, "acls", "delete", "--principal", "User:alice", "--topic", "allowed")...)
	if !strings.Contains(r.stdout, "deleted 1 ACL(s)") {
		t.Errorf("acls delete: %s", r.stdout)
	}
	if r := runIn("x\n", with(alice, "produce", "-t", "allowed")...); r.code != 1 || !strings.Contains(r.stderr, "TOPIC_AUTHORIZATION_FAILED") {
		t.Errorf("alice after the ACL was deleted: exit %d\n%s", r.code, r.stderr)
	}

	// Bad input: usage errors before connecting, and bad credentials.
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"acls", "create", "--principal", "User:alice", "--topic", "allowed"}, []string{"which operation?"}},
		{[]string{"acls", "create", "--principal", "User:alice", "--operation", "frobnicate", "--topic", "allowed"}, []string{`operation "frobnicate" is not one of`}},
		{[]string{"acls", "create", "--principal", "alice", "--operation", "read", "--topic", "allowed"}, []string{"needs its type, e.g. User:alice"}},
		{[]string{"acls", "create", "--operation", "read", "--topic", "allowed"}, []string{"who?"}},
		{[]string{"acls", "create", "--principal", "User:a", "--operation", "read"}, []string{"on what?"}},
		{[]string{"acls", "create", "--principal", "User:a", "--operation", "read", "--topic", "t", "--group", "g"}, []string{"name one resource"}},
		{[]string{"acls", "create", "--principal", "User:a", "--operation", "read", "--topic", "t", "--permission", "maybe"}, []string{`permission "maybe"`}},
		{[]string{"acls", "delete"}, []string{"a bare delete would remove every ACL"}},
		{[]string{"acls", "list", "-X", "sasl.pasword=x"}, []string{"keel knows only the security properties"}},
	} {
		wantFail(t, 2, with(root, tc.args...), tc.wants...)
	}
	wantFail(t, 1, []string{"acls", "list", "-b", b, "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=root", "-X", "sasl.password=wrong"}, "refused our credentials")
	wantFail(t, 1, []string{"acls", "list", "-b", b, "-X", "sasl.mechanism=GSSAPI", "-X", "sasl.username=root", "-X", "sasl.password=x"}, "keel speaks PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512")
	wantFail(t, 2, []string{"acls", "list", "-b", b, "--command-config", filepath.Join(t.TempDir(), "missing.properties")}, "missing.properties")
}
