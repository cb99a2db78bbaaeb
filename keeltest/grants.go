package keeltest

import (
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Grant is one ACL entry given to a user of [SASLUser]: allow (or deny)
// one operation on one resource. Make them with [AllowTopic],
// [AllowTopicPrefix], [AllowGroup], [AllowCluster] or [Deny]. Its
// Principal field is ignored: the user's name is used.
type Grant = kfake.ACL

// SASLUser adds a SASL user, like [SASL], that starts with grants, for
// clusters with [EnableACLs], so a test needs no admin calls to set up
// what the user may do:
//
//	keeltest.SASLUser(keeltest.SCRAMSHA256, "billing", "pw",
//		keeltest.AllowTopic("invoices", kmsg.ACLOperationWrite),
//		keeltest.AllowGroup("billing", kmsg.ACLOperationRead))
//
// The usual implications hold: READ, WRITE, DELETE and ALTER on a topic
// imply DESCRIBE (so Metadata shows it), and an idempotent producer needs
// WRITE on some topic (or IDEMPOTENT_WRITE on the cluster) for its
// InitProducerId.
func SASLUser(mechanism, user, password string, grants ...Grant) Option {
	return func(c *config) {
		switch mechanism {
		case PLAIN, SCRAMSHA256, SCRAMSHA512:
		default:
			c.fail("SASLUser: unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", mechanism)
			return
		}
		if user == "" {
			c.fail("SASLUser: empty user name")
			return
		}
		c.kfakeOpts = append(c.kfakeOpts, kfake.EnableSASL(), kfake.User(mechanism, user, password, grants...))
	}
}

// AllowTopic grants op on the topic named name ("*" for every topic).
func AllowTopic(name string, op kmsg.ACLOperation) Grant {
	return allow(kmsg.ACLResourceTypeTopic, name, kmsg.ACLResourcePatternTypeLiteral, op)
}

// AllowTopicPrefix grants op on every topic whose name starts with prefix.
func AllowTopicPrefix(prefix string, op kmsg.ACLOperation) Grant {
	return allow(kmsg.ACLResourceTypeTopic, prefix, kmsg.ACLResourcePatternTypePrefixed, op)
}

// AllowGroup grants op on the consumer group named name ("*" for every
// group).
func AllowGroup(name string, op kmsg.ACLOperation) Grant {
	return allow(kmsg.ACLResourceTypeGroup, name, kmsg.ACLResourcePatternTypeLiteral, op)
}

// AllowCluster grants a cluster-wide op (CREATE, ALTER, IDEMPOTENT_WRITE,
// DESCRIBE, ...).
func AllowCluster(op kmsg.ACLOperation) Grant {
	return allow(kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLResourcePatternTypeLiteral, op)
}

// Deny turns g into a DENY entry, which wins over any ALLOW.
func Deny(g Grant) Grant {
	g.Allow = false
	return g
}

func allow(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, op kmsg.ACLOperation) Grant {
	return Grant{Resource: rt, Name: name, Pattern: pt, Operation: op, Allow: true}
}
