package conn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/keel-go/keel/internal/errs"
)

// tlsRefused turns a failed certificate verification into an error that
// says what to change, and that is not retriable: a broker whose
// certificate is not trusted, or is not valid for the name dialed, will
// not become trusted by dialing it again (keel would otherwise retry until
// the caller's deadline and report an unreachable broker). It returns nil
// for other dial failures.
func tlsRefused(addr string, err error) error {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
	)
	var detail string
	switch {
	case errors.As(err, &hostname):
		detail = fmt.Sprintf("TLS: the broker's certificate is not valid for the host name %q (%v); dial a name the certificate lists, or set tls.Config.ServerName to one", hostname.Host, hostnameNames(hostname))
	case errors.As(err, &unknown):
		detail = "TLS: the broker's certificate is signed by an authority this client does not trust; add the cluster's CA to tls.Config.RootCAs"
	case errors.As(err, &invalid):
		detail = "TLS: the broker's certificate is not valid: " + invalid.Error()
	case errors.As(err, &verify):
		detail = "TLS: the broker's certificate was refused"
	default:
		return nil
	}
	return &errs.Error{Broker: addr, Detail: detail, Err: errs.With(errs.ErrTLSVerification, err)}
}

// hostnameNames says which names a certificate is valid for.
func hostnameNames(h x509.HostnameError) string {
	if h.Certificate == nil {
		return "no certificate"
	}
	var names []string
	for _, ip := range h.Certificate.IPAddresses {
		names = append(names, ip.String())
	}
	names = append(names, h.Certificate.DNSNames...)
	if len(names) == 0 {
		return "the certificate lists no names"
	}
	return fmt.Sprintf("it is valid for %v", names)
}
