package conn

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
)

// Mechanism is a SASL mechanism (PLAIN, SCRAM-SHA-256, ...).
type Mechanism interface {
	// Name is the mechanism's registered name, sent in SaslHandshake.
	Name() string
	// Start begins one authentication and returns the client's first
	// message.
	Start() (Session, []byte, error)
}

// Session is one authentication exchange in progress.
type Session interface {
	// Next takes the server's message and returns whether the exchange is
	// complete and, if not, the client's next message.
	Next(server []byte) (done bool, client []byte, err error)
}

// authenticate runs SaslHandshake (v1, Kafka 1.0+) and then the mechanism's
// messages wrapped in SaslAuthenticate requests.
func (c *Conn) authenticate(ctx context.Context) error {
	mech := c.cfg.SASL
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = mech.Name()
	resp, err := c.Request(ctx, hs)
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

	sess, msg, err := mech.Start()
	if err != nil {
		return c.authErr(0, "", err)
	}
	for {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.SASLAuthBytes = msg
		resp, err := c.Request(ctx, req)
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
			return c.authErr(ar.ErrorCode, m, nil)
		}
		done, next, err := sess.Next(ar.SASLAuthBytes)
		if err != nil {
			return c.authErr(0, "", err)
		}
		if done {
			return nil
		}
		msg = next
	}
}

func (c *Conn) authErr(code int16, brokerMsg string, cause error) error {
	e := &errs.Error{
		Code:    code,
		Broker:  c.addr,
		Message: brokerMsg,
		Detail:  fmt.Sprintf("SASL %s authentication failed; check the user name, password and mechanism", c.cfg.SASL.Name()),
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
func (p Plain) Start() (Session, []byte, error) {
	return plainSession{}, []byte(p.Zid + "\x00" + p.User + "\x00" + p.Pass), nil
}

type plainSession struct{}

func (plainSession) Next([]byte) (bool, []byte, error) { return true, nil, nil }
