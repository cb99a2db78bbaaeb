package keeltest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testServerTLS returns a server config signed by a fresh throwaway CA.
func testServerTLS(t *testing.T) *tls.Config {
	t.Helper()
	ca, err := generateTLS()
	if err != nil {
		t.Fatal(err)
	}
	return ca.server
}

// TestGeneratedTLS checks a client with ClientTLSConfig talks to every
// broker, that the CA is what makes it work, and that plaintext fails.
func TestGeneratedTLS(t *testing.T) {
	c := NewCluster(t, GeneratedTLS(), Topic("t", 1))
	cfg := c.ClientTLSConfig()
	if cfg == nil || cfg.RootCAs == nil {
		t.Fatal("ClientTLSConfig has no RootCAs")
	}
	if c.ClientTLSConfig() == cfg {
		t.Error("ClientTLSConfig returned a shared config")
	}

	cl := newClient(t, c, kgo.DialTLSConfig(cfg))
	for _, node := range c.NodeIDs() {
		resp, err := cl.Broker(int(node)).Request(testCtx(t), metadataReq())
		if err != nil {
			t.Fatalf("metadata over TLS from node %d: %v", node, err)
		}
		if n := len(resp.(*kmsg.MetadataResponse).Brokers); n != 3 {
			t.Errorf("node %d lists %d brokers", node, n)
		}
	}
	produce(t, cl, "t")

	// localhost is in the certificate too.
	_, port, _ := net.SplitHostPort(c.Addr())
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout}, "tcp", net.JoinHostPort("localhost", port), cfg)
	if err == nil {
		conn.Close()
	} else if !isNoLocalhost(err) {
		t.Errorf("TLS to localhost: %v", err)
	}

	// Without the CA the handshake fails.
	_, err = tls.DialWithDialer(&net.Dialer{Timeout: testTimeout}, "tcp", c.Addr(), &tls.Config{MinVersion: tls.VersionTLS12})
	var unknown x509.UnknownAuthorityError
	if !asError(err, &unknown) {
		t.Errorf("TLS without the CA: %v, want unknown authority", err)
	}

	// Plaintext gets no answer.
	r := dialRaw(t, c.Addr())
	if _, err := r.recv(metadataReq(), r.send(metadataReq()), 2*time.Second); err == nil {
		t.Error("plaintext request answered on a TLS listener")
	}

	// The PEM round-trips into a pool that verifies the broker.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.CACertPEM()) {
		t.Fatal("CACertPEM does not parse")
	}
	conn, err = tls.DialWithDialer(&net.Dialer{Timeout: testTimeout}, "tcp", c.Addr(), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS with CACertPEM: %v", err)
	}
	conn.Close()
}

// TestTLSOption checks a caller-supplied server config is used, and that
// ClientTLSConfig is then nil.
func TestTLSOption(t *testing.T) {
	ca, err := generateTLS()
	if err != nil {
		t.Fatal(err)
	}
	c := NewCluster(t, Brokers(1), TLS(ca.server))
	if c.ClientTLSConfig() != nil || c.CACertPEM() != nil {
		t.Error("ClientTLSConfig or CACertPEM set for a caller-supplied TLS config")
	}
	ctx, cancel := context.WithTimeout(testCtx(t), testTimeout)
	defer cancel()
	cl := newClient(t, c, kgo.DialTLSConfig(ca.clientConfig()))
	if _, err := cl.Request(ctx, metadataReq()); err != nil {
		t.Fatalf("metadata over TLS: %v", err)
	}
}

// isNoLocalhost reports whether err is only that localhost does not
// resolve on this machine.
func isNoLocalhost(err error) bool {
	var dnsErr *net.DNSError
	return asError(err, &dnsErr)
}
