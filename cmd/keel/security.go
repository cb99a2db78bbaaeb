package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/keel-go/keel"
)

// securityConfig is how a command authenticates to the cluster: SASL
// credentials and TLS, from kcat-style -X key=value flags or an Apache
// Kafka tool --command-config properties file (the same keys in both:
// security.protocol, sasl.mechanism, sasl.username/sasl.password or
// sasl.jaas.config, ssl.ca.location or a PEM ssl.truststore.location).
//
// One keel process runs one command, and that command's flags fill the
// one securityConfig below before it connects; connect reads it.
type securityConfig struct {
	props map[string]string
	src   map[string]string // where each key came from, for error messages
}

var security = &securityConfig{props: map[string]string{}, src: map[string]string{}}

// securityKeys are the properties keel understands; others are refused
// (a misspelt sasl.pasword must not silently connect without it).
var securityKeys = []string{
	"security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password",
	"sasl.jaas.config", "ssl.ca.location", "ssl.truststore.location", "ssl.truststore.type",
}

// addSecurityFlags registers -X and --command-config on fs.
func addSecurityFlags(fs *flag.FlagSet) {
	fs.Func("X", "client `property=value` for security, as kcat: security.protocol, sasl.mechanism, sasl.username, sasl.password, ssl.ca.location (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("want property=value, e.g. -X sasl.mechanism=SCRAM-SHA-256")
		}
		return security.set(strings.TrimSpace(k), v, "-X")
	})
	fs.Func("command-config", "properties `file` with the client's security settings, as Apache Kafka's tools take", func(path string) error {
		return security.load(path)
	})
}

func (s *securityConfig) set(k, v, from string) error {
	if !slices.Contains(securityKeys, k) {
		return fmt.Errorf("%s %s: keel knows only the security properties %s", from, k, strings.Join(securityKeys, ", "))
	}
	if k == "sasl.mechanisms" {
		k = "sasl.mechanism"
	}
	s.props[k], s.src[k] = v, from
	return nil
}

// load reads a Java properties file: key=value (or key: value) lines,
// # and ! comments. Keys keel does not use for connecting (the Kafka
// tools' files often hold client.id, request.timeout.ms...) are skipped.
func (s *securityConfig) load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			return fmt.Errorf("%s line %d: want key=value", path, n)
		}
		k, v := strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:])
		if !slices.Contains(securityKeys, k) {
			continue
		}
		if err := s.set(k, v, path); err != nil {
			return err
		}
	}
	return sc.Err()
}

var jaasField = regexp.MustCompile(`(username|password)\s*=\s*"([^"]*)"`)

// options turns the properties into client options.
func (s *securityConfig) options() ([]keel.ClientOption, error) {
	p := s.props
	if len(p) == 0 {
		return nil, nil
	}
	user, pass := p["sasl.username"], p["sasl.password"]
	if jaas := p["sasl.jaas.config"]; jaas != "" {
		for _, m := range jaasField.FindAllStringSubmatch(jaas, -1) {
			if m[1] == "username" && user == "" {
				user = m[2]
			} else if m[1] == "password" && pass == "" {
				pass = m[2]
			}
		}
	}
	proto := strings.ToUpper(p["security.protocol"])
	mech := strings.ToUpper(p["sasl.mechanism"])
	if proto == "" {
		switch {
		case mech != "" && (p["ssl.ca.location"] != "" || p["ssl.truststore.location"] != ""):
			proto = "SASL_SSL"
		case mech != "":
			proto = "SASL_PLAINTEXT"
		case p["ssl.ca.location"] != "" || p["ssl.truststore.location"] != "":
			proto = "SSL"
		default:
			proto = "PLAINTEXT"
		}
	}
	var opts []keel.ClientOption
	switch proto {
	case "PLAINTEXT", "SSL":
		if mech != "" {
			return nil, fmt.Errorf("sasl.mechanism %s does not go with security.protocol %s: use SASL_PLAINTEXT or SASL_SSL", mech, proto)
		}
	case "SASL_PLAINTEXT", "SASL_SSL":
		if user == "" || pass == "" {
			return nil, fmt.Errorf("security.protocol %s needs sasl.username and sasl.password (or sasl.jaas.config)", proto)
		}
		switch mech {
		case "PLAIN":
			opts = append(opts, keel.SASLPlain(user, pass))
		case "SCRAM-SHA-256":
			opts = append(opts, keel.SASLScramSHA256(user, pass))
		case "SCRAM-SHA-512":
			opts = append(opts, keel.SASLScramSHA512(user, pass))
		case "":
			return nil, fmt.Errorf("security.protocol %s needs sasl.mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", proto)
		default:
			return nil, fmt.Errorf("sasl.mechanism %s: keel speaks PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512", mech)
		}
	default:
		return nil, fmt.Errorf("security.protocol %s: use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", p["security.protocol"])
	}
	if strings.HasSuffix(proto, "SSL") {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		ca := p["ssl.ca.location"]
		if ts := p["ssl.truststore.location"]; ca == "" && ts != "" {
			if t := strings.ToUpper(p["ssl.truststore.type"]); t != "PEM" {
				return nil, fmt.Errorf("ssl.truststore.location %s: keel reads PEM trust stores only (set ssl.truststore.type=PEM, or use ssl.ca.location); JKS and PKCS12 are not supported", ts)
			}
			ca = ts
		}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("reading the CA certificates: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s holds no PEM certificate", ca)
			}
			cfg.RootCAs = pool
		}
		opts = append(opts, keel.TLS(cfg))
	}
	return opts, nil
}
