package keeltest

import "github.com/twmb/franz-go/pkg/kfake"

// EnableACLs makes every broker enforce ACLs, as a Kafka cluster with an
// authorizer does: a request is allowed only when an ACL allows its
// principal the operation on the resource, or the principal is a
// superuser. With no ACL, every ordinary user is refused everything, so
// combine it with [Superuser] (to create ACLs: admin.CreateACLs, keel
// acls create) and [SASL] users (subject to the ACLs).
//
// Refusals are Kafka's: TOPIC_AUTHORIZATION_FAILED on produce, fetch and
// metadata for a topic; GROUP_AUTHORIZATION_FAILED for a group;
// CLUSTER_AUTHORIZATION_FAILED for cluster operations (creating topics,
// managing ACLs). An idempotent producer needs IDEMPOTENT_WRITE on the
// cluster or WRITE on some topic.
func EnableACLs() Option {
	return func(c *config) { c.kfakeOpts = append(c.kfakeOpts, kfake.EnableACLs()) }
}

// Superuser enables SASL (as [SASL] does) and adds user with password for
// mechanism ([PLAIN], [SCRAMSHA256] or [SCRAMSHA512]) as a superuser, whom
// [EnableACLs] never refuses anything. Use it to set up ACLs for the
// users under test.
func Superuser(mechanism, user, password string) Option {
	return func(c *config) {
		switch mechanism {
		case PLAIN, SCRAMSHA256, SCRAMSHA512:
		default:
			c.fail("Superuser: unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", mechanism)
			return
		}
		if user == "" {
			c.fail("Superuser: empty user name")
			return
		}
		c.kfakeOpts = append(c.kfakeOpts, kfake.EnableSASL(), kfake.Superuser(mechanism, user, password))
	}
}
