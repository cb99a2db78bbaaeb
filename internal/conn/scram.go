package conn

import (
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
}

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
func (s Scram) Start() (Session, []byte, error) {
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
	attrs := scramAttrs(serverFirst)
	nonce, salt64, iterStr := attrs["r"], attrs["s"], attrs["i"]
	if !strings.HasPrefix(nonce, ss.nonce) || len(nonce) == len(ss.nonce) {
		return false, nil, errors.New("SCRAM: server nonce does not extend the client nonce")
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return false, nil, fmt.Errorf("SCRAM: bad salt: %w", err)
	}
	iters, err := strconv.Atoi(iterStr)
	if err != nil || iters < 1 {
		return false, nil, fmt.Errorf("SCRAM: bad iteration count %q", iterStr)
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
	attrs := scramAttrs(serverFinal)
	if e, ok := attrs["e"]; ok {
		return false, nil, fmt.Errorf("SCRAM: server error %q", e)
	}
	got, err := base64.StdEncoding.DecodeString(attrs["v"])
	if err != nil || !hmac.Equal(got, ss.serverSig) {
		return false, nil, errors.New("SCRAM: server signature does not verify; the broker may not know this password")
	}
	return true, nil, nil
}

func hmacSum(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func scramAttrs(s string) map[string]string {
	out := make(map[string]string)
	for _, part := range strings.Split(s, ",") {
		if len(part) >= 2 && part[1] == '=' {
			out[part[:1]] = part[2:]
		}
	}
	return out
}

func scramEscape(s string) string {
	s = strings.ReplaceAll(s, "=", "=3D")
	return strings.ReplaceAll(s, ",", "=2C")
}
