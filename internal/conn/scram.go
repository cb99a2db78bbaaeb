package conn

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// Scram is SASL SCRAM-SHA-256 or SCRAM-SHA-512 (RFC 5802, RFC 7677).
type Scram struct {
	User, Pass string
	SHA512     bool
	// nonce overrides the random client nonce, for tests.
	nonce string
	// maxIters overrides scramMaxIterations, for fuzzing.
	maxIters int
}

// The iteration counts a server may ask for. Below 4096 is refused as the
// Java client refuses it (RFC 7677 asks for at least 4096; fewer would let
// a man in the middle cheapen a dictionary attack on what it captured).
// The key derivation cannot be interrupted, so a count far beyond what any
// broker stores (Kafka caps credentials at 16384 iterations) would let a
// hostile server pin the dialing goroutine, and Close with it, for
// minutes: above 1<<20 (about a second of work) is refused too.
const (
	scramMinIterations = 4096
	scramMaxIterations = 1 << 20
)

// Name implements Mechanism.
func (s Scram) Name() string {
	if s.SHA512 {
		return "SCRAM-SHA-512"
	}
	return "SCRAM-SHA-256"
}

func (s Scram) hash() func() hash.Hash {
	if s.SHA512 {
		return sha512.New
	}
	return sha256.New
}

// Start implements Mechanism: it sends client-first-message.
func (s Scram) Start(context.Context) (Session, []byte, error) {
	nonce := s.nonce
	if nonce == "" {
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, nil, err
		}
		nonce = base64.RawStdEncoding.EncodeToString(b[:])
	}
	bare := "n=" + scramEscape(s.User) + ",r=" + nonce
	return &scramSession{s: s, nonce: nonce, clientBare: bare}, []byte("n,," + bare), nil
}

type scramSession struct {
	s          Scram
	nonce      string
	clientBare string
	serverSig  []byte
	step       int
}

func (ss *scramSession) Next(server []byte) (bool, []byte, error) {
	ss.step++
	switch ss.step {
	case 1:
		return ss.clientFinal(string(server))
	case 2:
		return ss.verifyServer(string(server))
	default:
		return false, nil, errors.New("SCRAM: unexpected extra server message")
	}
}

func (ss *scramSession) clientFinal(serverFirst string) (bool, []byte, error) {
	maxIters := scramMaxIterations
	if ss.s.maxIters > 0 {
		maxIters = ss.s.maxIters
	}
	nonce, salt, iters, err := parseServerFirst(serverFirst, ss.nonce, maxIters)
	if err != nil {
		return false, nil, err
	}
	h := ss.s.hash()
	salted, err := pbkdf2.Key(h, ss.s.Pass, salt, iters, h().Size())
	if err != nil {
		return false, nil, err
	}
	clientKey := hmacSum(h, salted, "Client Key")
	stored := h()
	stored.Write(clientKey)
	storedKey := stored.Sum(nil)

	finalNoProof := "c=biws,r=" + nonce // biws = base64("n,,")
	authMsg := ss.clientBare + "," + serverFirst + "," + finalNoProof
	sig := hmacSum(h, storedKey, authMsg)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	serverKey := hmacSum(h, salted, "Server Key")
	ss.serverSig = hmacSum(h, serverKey, authMsg)
	return false, []byte(finalNoProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func (ss *scramSession) verifyServer(serverFinal string) (bool, []byte, error) {
	// server-final-message = (server-error / verifier) ["," extensions]
	first, _, _ := strings.Cut(serverFinal, ",")
	switch {
	case strings.HasPrefix(first, "e="):
		return false, nil, fmt.Errorf("SCRAM: server error %q", printable(first[2:]))
	case strings.HasPrefix(first, "v="):
	default:
		return false, nil, errors.New("SCRAM: server-final-message has neither a verifier nor an error")
	}
	got, err := base64.StdEncoding.Strict().DecodeString(first[2:])
	if err != nil || !hmac.Equal(got, ss.serverSig) {
		return false, nil, errors.New("SCRAM: server signature does not verify; the broker may not know this password")
	}
	return true, nil, nil
}

// parseServerFirst reads server-first-message (RFC 5802 section 7):
//
//	[reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
//
// in that order, as the Java client does. A mandatory extension (m=) is
// one we cannot know, so it fails the exchange, as the RFC says.
func parseServerFirst(msg, clientNonce string, maxIters int) (nonce string, salt []byte, iters int, err error) {
	attrs := strings.SplitN(msg, ",", 4)
	if strings.HasPrefix(msg, "m=") {
		return "", nil, 0, errors.New("SCRAM: server requires an extension keel does not support")
	}
	if len(attrs) < 3 || !strings.HasPrefix(attrs[0], "r=") || !strings.HasPrefix(attrs[1], "s=") || !strings.HasPrefix(attrs[2], "i=") {
		return "", nil, 0, errors.New("SCRAM: malformed server-first-message (want r=nonce,s=salt,i=iterations)")
	}
	nonce = attrs[0][2:]
	if !strings.HasPrefix(nonce, clientNonce) || len(nonce) == len(clientNonce) {
		return "", nil, 0, errors.New("SCRAM: server nonce does not extend the client nonce")
	}
	if salt, err = base64.StdEncoding.DecodeString(attrs[1][2:]); err != nil || len(salt) == 0 {
		return "", nil, 0, errors.New("SCRAM: server sent an empty or malformed salt")
	}
	iterStr := attrs[2][2:]
	iters, err = strconv.Atoi(iterStr)
	if err != nil || iters < scramMinIterations || iters > maxIters {
		return "", nil, 0, fmt.Errorf("SCRAM: server asked for %q iterations; keel accepts %d to %d", printable(iterStr), scramMinIterations, maxIters)
	}
	return nonce, salt, iters, nil
}

// printable clips a server-sent string for an error message and replaces
// what a terminal would interpret.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func hmacSum(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func scramEscape(s string) string {
	s = strings.ReplaceAll(s, "=", "=3D")
	return strings.ReplaceAll(s, ",", "=2C")
}
