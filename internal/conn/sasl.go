package conn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
)

// Mechanism is a SASL mechanism (PLAIN, SCRAM-SHA-256, OAUTHBEARER, ...).
type Mechanism interface {
	// Name is the mechanism's registered name, sent in SaslHandshake.
	Name() string
	// Start begins one authentication and returns the client's first
	// message. ctx bounds whatever the mechanism must fetch first (an
	// OAuth token).
	Start(ctx context.Context) (Session, []byte, error)
}

// Session is one authentication exchange in progress.
type Session interface {
	// Next takes the server's message and returns whether the exchange is
	// complete and, if not, the client's next message.
	Next(server []byte) (done bool, client []byte, err error)
}

// serverRefusal is implemented by sessions that learn why the server
// refused them before the broker's final error (OAUTHBEARER's JSON
// status), so the error can say it.
type serverRefusal interface{ refusal() error }

// authenticate runs SaslHandshake (v1, Kafka 1.0+) and then the mechanism's
// messages wrapped in SaslAuthenticate requests. It is used when the
// connection is set up and, later, to re-authenticate (KIP-368) while no
// other request is being written (see reauthenticate).
func (c *Conn) authenticate(ctx context.Context) error {
	mech := c.cfg.SASL
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = mech.Name()
	resp, err := c.requestNow(ctx, hs)
	if err != nil {
		return err
	}
	hsResp := resp.(*kmsg.SASLHandshakeResponse)
	if hsResp.ErrorCode != 0 {
		return &errs.Error{
			Code:   hsResp.ErrorCode,
			Name:   errs.Lookup(hsResp.ErrorCode).Name,
			Broker: c.addr,
			Detail: fmt.Sprintf("broker does not accept SASL mechanism %s; it offers %s", mech.Name(), strings.Join(hsResp.SupportedMechanisms, ", ")),
			Err:    errs.ErrAuthentication,
		}
	}
	if c.versions.Version(int16(kmsg.SASLAuthenticate)) < 0 {
		return &errs.Error{Broker: c.addr, Detail: "broker lacks SaslAuthenticate (Kafka 1.0+)", Err: errs.ErrUnsupportedBroker}
	}

	sess, msg, err := mech.Start(ctx)
	if err != nil {
		return c.authErr(0, "", err)
	}
	for {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.SASLAuthBytes = msg
		resp, err := c.requestNow(ctx, req)
		if errors.Is(err, errs.ErrConnectionClosed) {
			// Brokers close the connection on bad credentials (some
			// without sending SASL_AUTHENTICATION_FAILED first); a
			// retry would fail the same way.
			return c.authErr(0, "", errors.New("the broker closed the connection during authentication, as brokers do on bad credentials"))
		}
		if err != nil {
			return err
		}
		ar := resp.(*kmsg.SASLAuthenticateResponse)
		if ar.ErrorCode != 0 {
			m := ""
			if ar.ErrorMessage != nil {
				m = *ar.ErrorMessage
			}
			var cause error
			if r, ok := sess.(serverRefusal); ok {
				cause = r.refusal()
			}
			return c.authErr(ar.ErrorCode, m, cause)
		}
		done, next, err := sess.Next(ar.SASLAuthBytes)
		if err != nil {
			return c.authErr(0, "", err)
		}
		if done {
			c.scheduleReauth(ar.SessionLifetimeMillis)
			return nil
		}
		msg = next
	}
}

// scheduleReauth notes when the session the broker just granted must be
// renewed. KIP-368: a broker with connections.max.reauth.ms (or a token
// that expires) answers the final SaslAuthenticate (v1+) with the
// session's lifetime, and closes a connection that sends a request after
// it. As the Java client does, keel re-authenticates at a random point
// between 85% and 95% of the lifetime, so that the connections of many
// clients do not renew at once.
func (c *Conn) scheduleReauth(lifetimeMs int64) {
	if lifetimeMs <= 0 {
		c.reauthAt.Store(0)
		return
	}
	lifetime := time.Duration(lifetimeMs) * time.Millisecond
	at := time.Duration(float64(lifetime) * (0.85 + 0.1*rand.Float64()))
	c.reauthAt.Store(time.Now().Add(at).UnixNano())
}

// reauthDue reports whether the session must be renewed before the next
// request is written.
func (c *Conn) reauthDue() bool {
	at := c.reauthAt.Load()
	return at != 0 && time.Now().UnixNano() >= at
}

// reauthenticate renews the SASL session on this connection (KIP-368).
// Requests already written stay in flight and are answered normally: the
// broker answers a connection's requests in order, so their answers come
// before the handshake's. New requests wait until the exchange is done,
// because a broker that is re-authenticating a connection takes only SASL
// requests on it. The exchange is bounded by the dial timeout, not by the
// ctx of the request that found it due: abandoning it half way would leave
// the connection unusable for everyone. A failure closes the connection.
func (c *Conn) reauthenticate() error {
	c.reauthMu.Lock()
	defer c.reauthMu.Unlock()
	if !c.reauthDue() {
		return nil // another request renewed it meanwhile
	}
	c.gate.Lock() // waits for writes in progress, holds back new ones
	defer c.gate.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
	defer cancel()
	c.cfg.logger().Debug("keel: re-authenticating", "broker", c.addr, "mechanism", c.cfg.SASL.Name())
	if err := c.authenticate(ctx); err != nil {
		if c.cfg.Hooks.OnAuthFailure != nil {
			c.cfg.Hooks.OnAuthFailure(c.addr, err)
		}
		c.close(err)
		return err
	}
	if c.cfg.Hooks.OnReauthenticate != nil {
		c.cfg.Hooks.OnReauthenticate(c.addr)
	}
	return nil
}

func (c *Conn) authErr(code int16, brokerMsg string, cause error) error {
	check := "check the user name, password and mechanism"
	if c.cfg.SASL.Name() == oauthBearerName {
		check = "check the token source and the broker's OAuth settings"
	}
	e := &errs.Error{
		Code:    code,
		Broker:  c.addr,
		Message: brokerMsg,
		Detail:  fmt.Sprintf("SASL %s authentication failed; %s", c.cfg.SASL.Name(), check),
		Err:     errs.ErrAuthentication,
	}
	if code != 0 {
		e.Name = errs.Lookup(code).Name
	}
	if cause != nil {
		e.Err = errs.With(errs.ErrAuthentication, cause)
	}
	return e
}

// Plain is SASL PLAIN (RFC 4616). Use it only over TLS: the password is
// sent as is.
type Plain struct{ User, Pass, Zid string }

// Name implements Mechanism.
func (Plain) Name() string { return "PLAIN" }

// Start implements Mechanism.
func (p Plain) Start(context.Context) (Session, []byte, error) {
	return plainSession{}, []byte(p.Zid + "\x00" + p.User + "\x00" + p.Pass), nil
}

type plainSession struct{}

func (plainSession) Next([]byte) (bool, []byte, error) { return true, nil, nil }
