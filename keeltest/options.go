package keeltest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Mechanism names accepted by [SASL].
const (
	PLAIN       = "PLAIN"
	SCRAMSHA256 = "SCRAM-SHA-256"
	SCRAMSHA512 = "SCRAM-SHA-512"
)

// DefaultBrokers is the number of brokers a cluster starts with when neither
// [Brokers] nor [Ports] is given.
const DefaultBrokers = 3

// An Option configures a cluster started by [NewCluster] or [Start].
// Options are applied in order; nonsense values (zero brokers, negative
// partitions, an unknown SASL mechanism, ...) make Start return an error.
type Option func(*config)

// saslUser is one user added by the SASL option.
type saslUser struct{ mechanism, user, password string }

// seedTopic is one topic added by Topic or Topics.
type seedTopic struct {
	name       string
	partitions int32
}

// config collects the options before the cluster starts.
type config struct {
	errs []error

	brokers    int
	brokersSet bool
	ports      []int

	topics         []seedTopic
	autoCreate     bool
	defaultParts   int32
	defaultPartSet bool

	dataDir   string
	clusterID string

	sasl []saslUser

	tls          *tls.Config
	generatedTLS bool

	maxVersions *kversion.Versions

	logW     io.Writer
	logDebug bool

	minSession, maxSession time.Duration
	sessionSet             bool

	brokerConfigs map[string]string

	// kfakeOpts are kfake options that Options in other files (acl.go)
	// pass straight through, after those built from the fields above.
	kfakeOpts []kfake.Opt
}

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("keeltest: "+format, args...))
}

// Brokers sets how many brokers the cluster starts with (default 3). Node
// IDs are 0 to n-1. n must be at least 1.
func Brokers(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("Brokers(%d): need at least one broker", n)
			return
		}
		c.brokers, c.brokersSet = n, true
	}
}

// Topic creates the topic name with the given number of partitions when the
// cluster starts. A partition count of 0 means the default (see
// [DefaultPartitions]); negative counts are an error. Repeat the option for
// more topics; if a name is given twice the last one wins.
//
// Seed topics are ignored when [DataDir] restores a previous cluster's state.
func Topic(name string, partitions int32) Option {
	return Topics(partitions, name)
}

// Topics creates each named topic with the given number of partitions when
// the cluster starts. See [Topic].
func Topics(partitions int32, names ...string) Option {
	return func(c *config) {
		if partitions < 0 {
			c.fail("Topics(%d, %q): negative partition count", partitions, names)
			return
		}
		for _, n := range names {
			if n == "" {
				c.fail("Topics: empty topic name")
				return
			}
			c.topics = append(c.topics, seedTopic{n, partitions})
		}
	}
}

// AutoCreateTopics makes the cluster create a topic when a Metadata request
// names an unknown topic and sets AllowAutoTopicCreation, the way
// auto.create.topics.enable=true does on a real broker. The new topic gets
// [DefaultPartitions] partitions.
func AutoCreateTopics() Option {
	return func(c *config) { c.autoCreate = true }
}

// DefaultPartitions sets the partition count of auto-created topics, of
// CreateTopics requests asking for -1 partitions, and of seed topics given 0
// partitions. The default is 10. n must be at least 1.
func DefaultPartitions(n int32) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("DefaultPartitions(%d): need at least one partition", n)
			return
		}
		c.defaultParts, c.defaultPartSet = n, true
	}
}

// Ports makes broker i listen on 127.0.0.1:ports[i] instead of a random
// port; the number of ports is the number of brokers (if [Brokers] is also
// given it must agree). A port of 0 picks a random port for that broker.
// `keel dev` uses Ports(9092, 9093, 9094).
func Ports(ports ...int) Option {
	return func(c *config) {
		if len(ports) == 0 {
			c.fail("Ports: no ports given")
			return
		}
		seen := make(map[int]bool)
		for _, p := range ports {
			if p < 0 || p > 65535 {
				c.fail("Ports: invalid port %d", p)
				return
			}
			if p != 0 && seen[p] {
				c.fail("Ports: port %d given twice", p)
				return
			}
			seen[p] = true
		}
		c.ports = append([]int(nil), ports...)
	}
}

// DataDir makes the cluster persist its state (topics, records, committed
// offsets, producer IDs) under dir and, if dir already holds state from an
// earlier cluster, restore it on start. The directory is created if needed.
// Without DataDir everything lives in memory and vanishes on Close.
func DataDir(dir string) Option {
	return func(c *config) {
		if dir == "" {
			c.fail("DataDir: empty directory")
			return
		}
		c.dataDir = dir
	}
}

// SyncWrites makes a [DataDir] cluster fsync every appended batch before
// it answers the Produce, so that what was acknowledged survives a crash of
// the process too, not only a Close (which saves everything anyway). It
// costs throughput; without DataDir it has no effect.
func SyncWrites() Option {
	return func(c *config) { c.kfakeOpts = append(c.kfakeOpts, kfake.SyncWrites()) }
}

// ClusterID sets the cluster ID reported in Metadata and DescribeCluster
// responses (default "kfake").
func ClusterID(id string) Option {
	return func(c *config) { c.clusterID = id }
}

// SASL enables SASL authentication on every broker and adds user with
// password for mechanism, which must be [PLAIN], [SCRAMSHA256] or
// [SCRAMSHA512]. Repeat the option to add more users or mechanisms. Once
// SASL is on, a connection may send only ApiVersions and SASLHandshake (v1)
// until it has authenticated; anything else, and a failed authentication
// (bad password, unknown user), makes the broker close the connection
// rather than answer with an error code.
//
// Combine with [TLS] or [GeneratedTLS] for SASL_SSL.
func SASL(mechanism, user, password string) Option {
	return func(c *config) {
		switch mechanism {
		case PLAIN, SCRAMSHA256, SCRAMSHA512:
		default:
			c.fail("SASL: unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", mechanism)
			return
		}
		if user == "" {
			c.fail("SASL: empty user name")
			return
		}
		c.sasl = append(c.sasl, saslUser{mechanism, user, password})
	}
}

// TLS makes every broker accept only TLS connections, using serverConfig
// (which must hold a certificate). [Cluster.ClientTLSConfig] returns nil
// with this option: the caller owns the CA. See [GeneratedTLS] for a
// ready-made setup.
func TLS(serverConfig *tls.Config) Option {
	return func(c *config) {
		if serverConfig == nil {
			c.fail("TLS: nil config")
			return
		}
		c.tls = serverConfig
	}
}

// GeneratedTLS makes every broker accept only TLS connections, with a
// certificate for 127.0.0.1, ::1 and localhost signed by a throwaway CA
// generated in memory when the cluster starts. Use
// [Cluster.ClientTLSConfig] for a client config that trusts it, or
// [Cluster.CACertPEM] to write the CA out for another process.
func GeneratedTLS() Option {
	return func(c *config) { c.generatedTLS = true }
}

// MaxVersions caps the API versions the cluster advertises in ApiVersions
// and accepts, to imitate an older broker. A key missing from v is not
// advertised and its requests are rejected by closing the connection, so
// start from a complete table and adjust it, for example:
//
//	v := kversion.V2_1_0()         // everything a Kafka 2.1 broker speaks
//	v.SetMaxKeyVersion(0, 6)       // Produce at most v6
//	keeltest.MaxVersions(v)
//
// or kversion.Stable() for the newest release. A request above the cap is
// also answered by closing the connection (ApiVersions excepted: it is
// downgraded as Kafka does). Keep SASLHandshake (17) and SASLAuthenticate
// (36) in v when combining with [SASL].
func MaxVersions(v *kversion.Versions) Option {
	return func(c *config) {
		if v == nil {
			c.fail("MaxVersions: nil versions")
			return
		}
		c.maxVersions = v
	}
}

// Logger writes the cluster's log at info level to w: warnings, errors,
// group membership changes, and why a broker closed a connection (a
// DropConnections drop, a failed SASL login, an unsupported request
// version, ...), which is the first thing to look at when a client sees
// unexpected EOFs. Writes are serialized, so w need not
// be safe for concurrent use. The cluster may still log while Close runs.
func Logger(w io.Writer) Option {
	return func(c *config) { c.logW, c.logDebug = w, false }
}

// DebugLogger is like [Logger] but also writes the cluster's debug log,
// which is verbose.
func DebugLogger(w io.Writer) Option {
	return func(c *config) { c.logW, c.logDebug = w, true }
}

// GroupSessionTimeouts sets the session timeouts the group coordinator
// accepts in JoinGroup (group.min.session.timeout.ms and
// group.max.session.timeout.ms). Kafka's defaults, 6s and 5m, are kept
// unless this is given; tests of fast rebalances usually lower the minimum.
func GroupSessionTimeouts(minTimeout, maxTimeout time.Duration) Option {
	return func(c *config) {
		if minTimeout <= 0 || maxTimeout < minTimeout {
			c.fail("GroupSessionTimeouts(%v, %v): need 0 < min <= max", minTimeout, maxTimeout)
			return
		}
		c.minSession, c.maxSession, c.sessionSet = minTimeout, maxTimeout, true
	}
}

// BrokerConfigs sets broker-level configs, as if from server.properties;
// repeat to add more. Among those the cluster honours are message.max.bytes,
// min.insync.replicas, default.replication.factor, compression.type,
// log.retention.ms, log.retention.bytes, transaction.max.timeout.ms,
// group.consumer.session.timeout.ms and group.consumer.heartbeat.interval.ms.
// An empty value resets a key to its default.
func BrokerConfigs(configs map[string]string) Option {
	return func(c *config) {
		if c.brokerConfigs == nil {
			c.brokerConfigs = make(map[string]string)
		}
		maps.Copy(c.brokerConfigs, configs)
	}
}

// build applies opts and checks that they make sense together.
func build(opts []Option) (*config, error) {
	c := &config{brokers: DefaultBrokers}
	for _, o := range opts {
		if o == nil {
			c.fail("nil Option")
			continue
		}
		o(c)
	}
	if len(c.ports) > 0 {
		if c.brokersSet && c.brokers != len(c.ports) {
			c.fail("Brokers(%d) disagrees with %d Ports", c.brokers, len(c.ports))
		}
		c.brokers = len(c.ports)
	}
	if c.tls != nil && c.generatedTLS {
		c.fail("TLS and GeneratedTLS are exclusive")
	}
	return c, errors.Join(c.errs...)
}
