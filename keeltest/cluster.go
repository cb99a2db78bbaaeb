package keeltest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// ErrClosed is returned by methods of a [Cluster] that has been closed.
var ErrClosed = errors.New("keeltest: cluster closed")

// Cluster is a running in-process Kafka cluster. Its brokers listen on
// 127.0.0.1 only. All methods are safe for concurrent use.
type Cluster struct {
	kc *kfake.Cluster
	ca *generatedCA // non-nil with GeneratedTLS

	// loopMu is held for reading around every call that needs the
	// cluster's event loop, which stops for good on Close: a kfake admin
	// call after Close would block forever. Close takes it for writing.
	loopMu sync.RWMutex
	closed bool

	closeOnce sync.Once

	// forwards counts Throttle's requests in flight to a broker: Close
	// waits for them before stopping the brokers, since kfake leaves a
	// control that is asleep at Close blocked for good.
	forwards sync.WaitGroup
	// sleeps counts controls asleep in SleepControl (HoldRequests', and
	// tests' own): Close waits until each has been woken and continued
	// by the cluster's loop before stopping it (see Cluster.sleep).
	sleeps sync.WaitGroup

	// mu guards the fields below. It is never held across a call into
	// kfake, so control functions may take it.
	mu      sync.Mutex
	nodes   map[int32]string // node ID -> listen address
	maxNode int32            // highest node ID ever used; IDs are not reused
	removed map[int32]bool   // nodes removed by RemoveBroker
	holds   map[*Hold]struct{}
	deadCtl bool // the control closing connections to removed nodes is installed
}

// NewCluster starts a cluster configured by opts and closes it when the
// test and its subtests finish (through t.Cleanup). It calls t.Fatal if the
// cluster cannot start.
func NewCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	c, err := Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Start starts a cluster configured by opts. The caller must Close it.
// Start returns an error if the options make no sense or a listener cannot
// be opened (for example a fixed port in use).
func Start(opts ...Option) (*Cluster, error) {
	cfg, err := build(opts)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		nodes:   make(map[int32]string),
		removed: make(map[int32]bool),
		holds:   make(map[*Hold]struct{}),
	}
	kopts := []kfake.Opt{kfake.NumBrokers(cfg.brokers)}
	if len(cfg.ports) > 0 {
		kopts = append(kopts, kfake.Ports(cfg.ports...))
	}
	for _, t := range cfg.topics {
		kopts = append(kopts, kfake.SeedTopics(t.partitions, t.name))
	}
	if cfg.autoCreate {
		kopts = append(kopts, kfake.AllowAutoTopicCreation())
	}
	if cfg.defaultPartSet {
		kopts = append(kopts, kfake.DefaultNumPartitions(int(cfg.defaultParts)))
	}
	if cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
	}
	if cfg.clusterID != "" {
		kopts = append(kopts, kfake.ClusterID(cfg.clusterID))
	}
	if len(cfg.sasl) > 0 {
		kopts = append(kopts, kfake.EnableSASL())
		for _, u := range cfg.sasl {
			kopts = append(kopts, kfake.User(u.mechanism, u.user, u.password))
		}
	}
	switch {
	case cfg.tls != nil:
		kopts = append(kopts, kfake.TLS(cfg.tls))
	case cfg.generatedTLS:
		if c.ca, err = generateTLS(); err != nil {
			return nil, fmt.Errorf("keeltest: generating TLS certificates: %w", err)
		}
		kopts = append(kopts, kfake.TLS(c.ca.server))
	}
	if cfg.maxVersions != nil {
		kopts = append(kopts, kfake.MaxVersions(cfg.maxVersions))
	}
	if cfg.logW != nil {
		level := kfake.LogLevelInfo
		if cfg.logDebug {
			level = kfake.LogLevelDebug
		}
		kopts = append(kopts, kfake.WithLogger(kfake.BasicLogger(&lockedWriter{w: cfg.logW}, level)))
	}
	if cfg.sessionSet {
		kopts = append(kopts,
			kfake.GroupMinSessionTimeout(cfg.minSession),
			kfake.GroupMaxSessionTimeout(cfg.maxSession))
	}
	if len(cfg.brokerConfigs) > 0 {
		kopts = append(kopts, kfake.BrokerConfigs(cfg.brokerConfigs))
	}
	kopts = append(kopts, cfg.kfakeOpts...)

	kc, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("keeltest: starting cluster: %w", err)
	}
	c.kc = kc
	// A new cluster's brokers are nodes 0..n-1, listed in node order.
	for i, addr := range kc.ListenAddrs() {
		c.nodes[int32(i)] = addr
		c.maxNode = int32(i)
	}
	return c, nil
}

// Close stops the cluster: it resumes every request held by
// [Cluster.StopAnswering] or [Cluster.HoldRequests], waits for every
// control asleep in [Cluster.SleepControl] to wake and go on, stops
// listening, and ends every connection. With [DataDir] it first saves the
// cluster's state. Close is idempotent; concurrent calls wait for the
// first.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		c.loopMu.Lock()
		c.closed = true
		c.loopMu.Unlock()

		c.mu.Lock()
		holds := slices.Collect(maps.Keys(c.holds))
		c.mu.Unlock()
		for _, h := range holds {
			h.Resume()
		}
		c.sleeps.Wait()
		c.forwards.Wait()
		c.kc.Close()
	})
}

// sleep is kfake's SleepControl, made safe to Close during. kfake's
// SleepControl gives up waiting once its cluster is stopping, and the
// control function then ends and takes the cluster's control lock,
// expecting the loop to release it; but the loop, still draining, may
// first pick up the sleeper's wake-up (or its going to sleep) and block on
// that lock for good (seen in CI: a run loop stuck in
// continueSleptControl, and every later leak check waiting on it;
// TestCloseWithSleepingControlLeavesNoGoroutine). So Close waits for every
// sleeper to be woken and continued by the loop before stopping it, and a
// control that would sleep once Close has begun goes on at once.
func (c *Cluster) sleep(wakeup func()) {
	c.loopMu.RLock()
	if c.closed {
		c.loopMu.RUnlock()
		return
	}
	c.sleeps.Add(1)
	c.loopMu.RUnlock()
	defer c.sleeps.Done()
	c.kc.SleepControl(wakeup)
}

// withLoop runs fn, which calls into the cluster's event loop, unless the
// cluster is closed.
func (c *Cluster) withLoop(fn func()) error {
	c.loopMu.RLock()
	defer c.loopMu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	fn()
	return nil
}

// Addrs returns the "127.0.0.1:port" listen address of every broker, in
// node ID order. Brokers added by AddBroker are included and removed ones
// are not.
func (c *Cluster) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := slices.Sorted(maps.Keys(c.nodes))
	addrs := make([]string, len(ids))
	for i, id := range ids {
		addrs[i] = c.nodes[id]
	}
	return addrs
}

// Addr returns the address of the broker with the lowest node ID, handy
// as a single seed broker.
func (c *Cluster) Addr() string {
	return c.Addrs()[0]
}

// NodeIDs returns the node IDs of the current brokers, sorted.
func (c *Cluster) NodeIDs() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.nodes))
}

// AddrOf returns the listen address of node, or "" if there is no such
// broker.
func (c *Cluster) AddrOf(node int32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[node]
}

// ClientTLSConfig returns a new client TLS config that trusts the cluster's
// generated CA (RootCAs is set; the certificate is valid for 127.0.0.1, ::1
// and localhost, so ServerName need not be set). It returns nil unless the
// cluster was started with [GeneratedTLS].
func (c *Cluster) ClientTLSConfig() *tls.Config {
	if c.ca == nil {
		return nil
	}
	return c.ca.clientConfig()
}

// CACertPEM returns the PEM encoded certificate of the CA generated by
// [GeneratedTLS], for processes that need it in a file, or nil without
// GeneratedTLS.
func (c *Cluster) CACertPEM() []byte {
	if c.ca == nil {
		return nil
	}
	return slices.Clone(c.ca.caPEM)
}

// Kfake returns the underlying kfake cluster, for what keeltest does not
// wrap (ACLs, group inspection, compaction, SetFollowers, ...). Do not use
// it after Close: its admin methods block forever on a closed cluster. Do
// not add or remove nodes through it either; keeltest would lose track of
// the brokers.
func (c *Cluster) Kfake() *kfake.Cluster { return c.kc }

// lockedWriter serializes writes from the cluster's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
