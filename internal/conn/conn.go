package conn

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
)

// Conn is one TCP (or TLS) connection to a broker. Many requests may be in
// flight on it at once: each is written under a lock with the next
// correlation id and answered through the single reader goroutine, which
// matches responses to requests by that id.
type Conn struct {
	addr     string
	cfg      *Config
	nc       net.Conn
	versions *Versions
	format   *kmsg.RequestFormatter

	writeMu sync.Mutex // orders correlation ids with the bytes on the wire
	corr    int32
	wbuf    []byte
	wvec    net.Buffers // the pieces of a Segmented request
	seg     Segments
	// smallWrites counts the requests in a row that used little of a
	// large wbuf (see keepOrDropWriteBuffer).
	smallWrites int

	// cutMu guards the write deadline and which write may be cut off
	// (writeSeq, writing): a write whose ctx ends while the socket does
	// not take its bytes (a broker that stopped reading) is cut off by
	// moving the deadline into the past, and a late cut must not hit the
	// next write. It is never held during a write.
	cutMu    sync.Mutex
	writeSeq uint64
	writing  bool

	mu      sync.Mutex
	pending map[int32]*call
	closed  bool
	cause   error

	dead       chan struct{} // closed when the connection is unusable
	readerDone chan struct{}

	// SASL re-authentication (KIP-368, sasl.go). gate is held for reading
	// while a request is written, and for writing while the session is
	// renewed, so that no other request goes out in the middle of the
	// exchange; it is used only with SASL.
	reauthAt atomic.Int64 // unix nanos; 0: the session does not expire
	reauthMu sync.Mutex   // one renewal at a time
	gate     sync.RWMutex

	throttleUntil atomic.Int64 // unix nanos; KIP-219 mute
	lastUsed      atomic.Int64 // unix nanos
	inflight      atomic.Int32
}

type call struct {
	key     int16
	flex    bool // flexible response header
	done    chan []byte
	enqueue time.Time
	// written is when the request's write ended (Unix ns), set only when
	// OnResponseRead is installed; atomic because the answer may be read
	// before the writer gets to store it.
	written atomic.Int64
}

// Addr is the broker address this connection was dialed to.
func (c *Conn) Addr() string { return c.addr }

// Versions returns the API versions negotiated with the broker.
func (c *Conn) Versions() *Versions { return c.versions }

// Dead is closed when the connection can no longer be used.
func (c *Conn) Dead() <-chan struct{} { return c.dead }

// Err returns why the connection died, or nil while it is alive.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// InFlight is the number of requests written or being written on this
// connection and not yet answered.
func (c *Conn) InFlight() int { return int(c.inflight.Load()) }

// Idle reports how long the connection has had nothing in flight, or 0 if
// requests are in flight.
func (c *Conn) Idle(now time.Time) time.Duration {
	if c.inflight.Load() > 0 {
		return 0
	}
	return now.Sub(time.Unix(0, c.lastUsed.Load()))
}

// Dial connects to addr and prepares the connection for requests: TLS
// handshake, ApiVersions negotiation and SASL authentication, all bounded by
// cfg.DialTimeout and ctx.
func Dial(ctx context.Context, addr string, cfg *Config) (*Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()

	nc, err := dialRaw(dctx, addr, cfg)
	if err != nil {
		if terr := tlsRefused(addr, err); terr != nil {
			return nil, terr
		}
		return nil, unreachable(ctx, addr, cfg, err)
	}
	c := &Conn{
		addr:       addr,
		cfg:        cfg,
		nc:         nc,
		format:     kmsg.NewRequestFormatter(kmsg.FormatterClientID(cfg.ClientID)),
		pending:    make(map[int32]*call),
		dead:       make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	c.lastUsed.Store(time.Now().UnixNano())
	go c.readLoop()

	if err := c.handshake(dctx); err != nil {
		c.close(err)
		if dctx.Err() != nil && ctx.Err() == nil && !errors.Is(err, errs.ErrAuthentication) {
			return nil, silentBroker(addr, cfg, c.versions == nil, err)
		}
		return nil, err
	}
	if cfg.Hooks.OnConnect != nil {
		cfg.Hooks.OnConnect(addr)
	}
	return c, nil
}

func dialRaw(ctx context.Context, addr string, cfg *Config) (net.Conn, error) {
	dial := cfg.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if cfg.TLS == nil {
		return nc, nil
	}
	tc := cfg.TLS.Clone()
	if tc.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			tc.ServerName = host
		}
	}
	tlsConn := tls.Client(nc, tc)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tlsConn, nil
}

func unreachable(ctx context.Context, addr string, cfg *Config, err error) error {
	if ctx.Err() != nil {
		return &errs.Error{Broker: addr, Retriable: true, Detail: "connecting to broker interrupted", Err: ctx.Err()}
	}
	return &errs.Error{
		Broker:    addr,
		Retriable: true,
		Detail:    fmt.Sprintf("cannot connect to broker (dial timeout %v); check the address and that the broker is up", cfg.DialTimeout),
		Err:       errs.With(errs.ErrBrokerUnreachable, err),
	}
}

// silentBroker is the error of a connection that was accepted but never
// got through the handshake within the dial timeout: something listens at
// addr, but it does not answer like a Kafka broker (a wrong port, a TLS
// listener spoken to in plaintext, or a broker that hangs).
func silentBroker(addr string, cfg *Config, inVersions bool, err error) error {
	step := "SASL authentication"
	if inVersions {
		step = "the ApiVersions request"
	}
	return &errs.Error{
		Broker:    addr,
		Retriable: true,
		Detail:    fmt.Sprintf("connected, but got no answer to %s within the dial timeout (%v): is this a Kafka listener, and does it expect TLS or plaintext as configured?", step, cfg.DialTimeout),
		Err:       errs.With(errs.ErrBrokerUnreachable, err),
	}
}

func (c *Conn) handshake(ctx context.Context) error {
	vs, err := c.apiVersions(ctx)
	if err != nil {
		return err
	}
	c.versions = vs
	if c.cfg.SASL != nil {
		if err := c.authenticate(ctx); err != nil {
			if c.cfg.Hooks.OnAuthFailure != nil {
				c.cfg.Hooks.OnAuthFailure(c.addr, err)
			}
			return err
		}
	}
	return nil
}

// apiVersions asks the broker what it supports. A broker that does not know
// our ApiVersions version answers UNSUPPORTED_VERSION in the v0 format with
// its own range for ApiVersions; we then ask again at a version it knows.
func (c *Conn) apiVersions(ctx context.Context) (*Versions, error) {
	version := supported[int16(kmsg.ApiVersions)].max
	for range 2 {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = version
		req.ClientSoftwareName = orDefault(c.cfg.SoftwareName, "keel")
		req.ClientSoftwareVersion = orDefault(c.cfg.SoftwareVersion, "0.1.0")
		body, err := c.roundTrip(ctx, req)
		if err != nil {
			return nil, err
		}
		if len(body) >= 2 && int16(binary.BigEndian.Uint16(body)) == 35 && version > 0 {
			old := kmsg.NewPtrApiVersionsResponse()
			old.Version = 0
			if err := old.ReadFrom(body); err != nil {
				return nil, protocolErr(c.addr, "ApiVersions", err)
			}
			next := int16(0)
			for _, k := range old.ApiKeys {
				if k.ApiKey == int16(kmsg.ApiVersions) && k.MaxVersion < version {
					next = k.MaxVersion
				}
			}
			version = next
			continue
		}
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = version
		if err := resp.ReadFrom(body); err != nil {
			return nil, protocolErr(c.addr, "ApiVersions", err)
		}
		if resp.ErrorCode != 0 {
			e := errs.FromCode(resp.ErrorCode, c.addr, "").(*errs.Error)
			e.Detail = "ApiVersions request refused"
			return nil, e
		}
		return negotiate(c.addr, resp, c.cfg.MaxVersions)
	}
	return nil, &errs.Error{Broker: c.addr, Detail: "broker refused every ApiVersions version keel offered", Err: errs.ErrUnsupportedBroker}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func protocolErr(addr, api string, err error) error {
	return &errs.Error{Broker: addr, Retriable: true, Detail: "cannot parse " + api + " response", Err: errs.With(errs.ErrProtocol, err)}
}

// Request sends req at the version negotiated for its API and waits for the
// response. It is safe for concurrent use: requests are pipelined. A produce
// request with acks=0 gets no response from Kafka; Request then returns a
// nil response once the request is written.
func (c *Conn) Request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	p, err := c.Send(ctx, req)
	if err != nil || p == nil {
		return nil, err
	}
	return p.Wait(ctx)
}

func (c *Conn) setVersion(req kmsg.Request) (int16, error) {
	v := c.versions.Version(req.Key())
	if v < 0 {
		return -1, &errs.Error{
			Broker: c.addr,
			Detail: fmt.Sprintf("broker does not support %s at any version keel can use", kmsg.NameForKey(req.Key())),
			Err:    errs.ErrUnsupportedBroker,
		}
	}
	req.SetVersion(v)
	return v, nil
}

func (c *Conn) parse(req kmsg.Request, v int16, body []byte) (kmsg.Response, error) {
	resp := req.ResponseKind()
	resp.SetVersion(v)
	if err := resp.ReadFrom(body); err != nil {
		return nil, protocolErr(c.addr, kmsg.NameForKey(req.Key()), err)
	}
	if tr, ok := resp.(kmsg.ThrottleResponse); ok {
		if ms, after := tr.Throttle(); ms > 0 {
			d := time.Duration(ms) * time.Millisecond
			if after {
				// KIP-219: the broker answered at once and now mutes
				// this connection; sending before the throttle ends
				// would only queue behind the mute.
				until := time.Now().Add(d).UnixNano()
				for {
					cur := c.throttleUntil.Load()
					if cur >= until || c.throttleUntil.CompareAndSwap(cur, until) {
						break
					}
				}
			}
			if c.cfg.Hooks.OnThrottle != nil {
				c.cfg.Hooks.OnThrottle(c.addr, req.Key(), d)
			}
		}
	}
	return resp, nil
}

// timeoutFor is how long to wait for the answer to req: the request timeout
// plus whatever the request asks the broker to wait before answering.
func (c *Conn) timeoutFor(req kmsg.Request) time.Duration {
	extra := time.Duration(0)
	switch r := req.(type) {
	case *kmsg.FetchRequest:
		extra = time.Duration(r.MaxWaitMillis) * time.Millisecond
	case *kmsg.JoinGroupRequest:
		extra = time.Duration(max(r.RebalanceTimeoutMillis, r.SessionTimeoutMillis)) * time.Millisecond
	case kmsg.TimeoutRequest:
		extra = time.Duration(r.Timeout()) * time.Millisecond
	}
	return c.cfg.RequestTimeout + extra
}

// roundTrip writes req and waits for its raw response body (after the
// response header).
func (c *Conn) roundTrip(ctx context.Context, req kmsg.Request) ([]byte, error) {
	p, err := c.send(ctx, req)
	if err != nil || p == nil {
		return nil, err
	}
	return p.wait(ctx)
}

// Pending is a request written to the connection whose answer has not been
// read yet. Send followed by Wait lets a caller write requests in a fixed
// order from one goroutine and collect the answers elsewhere.
type Pending struct {
	c       *Conn
	req     kmsg.Request
	version int16
	cl      *call
	timeout time.Duration
}

// Send writes req at the negotiated version without waiting for the answer.
// It returns a nil Pending for requests Kafka does not answer (acks=0
// produce). Requests sent on one connection are written in the order of
// their Send calls.
func (c *Conn) Send(ctx context.Context, req kmsg.Request) (*Pending, error) {
	v, err := c.setVersion(req)
	if err != nil {
		return nil, err
	}
	p, err := c.send(ctx, req)
	if p != nil {
		p.version = v
	}
	return p, err
}

// Wait waits for the answer to a request written by Send and parses it.
func (p *Pending) Wait(ctx context.Context) (kmsg.Response, error) {
	body, err := p.wait(ctx)
	if err != nil {
		return nil, err
	}
	return p.c.parse(p.req, p.version, body)
}

func (c *Conn) send(ctx context.Context, req kmsg.Request) (*Pending, error) {
	if err := c.waitThrottle(ctx); err != nil {
		return nil, err
	}
	if c.cfg.SASL == nil {
		return c.sendNow(ctx, req)
	}
	if c.reauthDue() {
		if err := c.reauthenticate(); err != nil {
			return nil, err
		}
	}
	c.gate.RLock()
	defer c.gate.RUnlock()
	return c.sendNow(ctx, req)
}

// requestNow is Request without waiting for a re-authentication: for the
// SASL exchange itself.
func (c *Conn) requestNow(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	v, err := c.setVersion(req)
	if err != nil {
		return nil, err
	}
	p, err := c.sendNow(ctx, req)
	if err != nil {
		return nil, err
	}
	p.version = v
	return p.Wait(ctx)
}

// sendNow writes req; see send.
func (c *Conn) sendNow(ctx context.Context, req kmsg.Request) (*Pending, error) {
	c.inflight.Add(1)
	cl := &call{
		key:     req.Key(),
		flex:    req.IsFlexible() && req.Key() != int16(kmsg.ApiVersions),
		done:    make(chan []byte, 1),
		enqueue: time.Now(),
	}
	wantResp := expectsResponse(req)
	err := c.write(ctx, req, cl, wantResp)
	if err != nil || !wantResp {
		c.finished()
		return nil, err
	}
	return &Pending{c: c, req: req, cl: cl, timeout: c.timeoutFor(req)}, nil
}

func (c *Conn) finished() {
	c.lastUsed.Store(time.Now().UnixNano())
	c.inflight.Add(-1)
}

func (p *Pending) wait(ctx context.Context) ([]byte, error) {
	c := p.c
	defer c.finished()
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	select {
	case body := <-p.cl.done:
		if body == nil {
			return nil, c.Err()
		}
		return body, nil
	case <-timer.C:
		err := &errs.Error{
			Broker:    c.addr,
			Retriable: true,
			Detail:    fmt.Sprintf("no answer to %s within %v; closing the connection", kmsg.NameForKey(p.req.Key()), p.timeout),
			Err:       errs.ErrRequestTimeout,
		}
		c.close(err)
		return nil, err
	case <-ctx.Done():
		c.abandon(p.cl)
		return nil, ctx.Err()
	}
}

func (c *Conn) waitThrottle(ctx context.Context) error {
	until := c.throttleUntil.Load()
	if until == 0 {
		return nil
	}
	d := time.Until(time.Unix(0, until))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.dead:
		return c.Err()
	}
}

func (c *Conn) write(ctx context.Context, req kmsg.Request, cl *call, wantResp bool) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()

	c.corr++
	if c.corr < 0 {
		c.corr = 0
	}
	corr := c.corr
	if wantResp {
		c.mu.Lock()
		if c.closed {
			err := c.cause
			c.mu.Unlock()
			return err
		}
		c.pending[corr] = cl
		c.mu.Unlock()
	} else if err := c.Err(); err != nil {
		return err
	}

	stop := c.beginWrite(ctx)
	var err error
	var n int
	if sr, ok := req.(Segmented); ok {
		vec := c.appendSegmented(sr, corr)
		var n64 int64
		n64, err = vec.WriteTo(c.nc)
		n = int(n64)
		clear(c.wvec) // the request's slices are not ours to keep
		c.seg.reset()
	} else {
		c.wbuf = c.format.AppendRequest(c.wbuf[:0], req, corr)
		n, err = c.nc.Write(c.wbuf)
	}
	stop()
	c.keepOrDropWriteBuffer()
	if hk := &c.cfg.Hooks; hk.OnRequestWritten != nil || hk.OnResponseRead != nil {
		c.requestHooks(req.Key(), cl, n, err)
	}
	if err != nil {
		werr := c.connErr("writing "+kmsg.NameForKey(req.Key()), err)
		if ctx.Err() != nil {
			// Cut off because ctx ended: the request went out partly at
			// most, which leaves the connection unusable, and the broker
			// cannot have taken it.
			werr = &errs.Error{Broker: c.addr, Retriable: true,
				Detail: "writing " + kmsg.NameForKey(req.Key()) + " abandoned: its ctx ended while the broker was not reading",
				Err:    fmt.Errorf("%w (%w)", ctx.Err(), werr)}
		}
		c.close(werr)
		return werr
	}
	return nil
}

// beginWrite sets the deadline of the write about to start and arranges
// for ctx's end to cut it off (issue 18: a write blocked on a broker that
// stopped reading held Producer.Close past its ctx for up to the request
// timeout). The returned func ends the write's watch. Callers hold
// writeMu.
func (c *Conn) beginWrite(ctx context.Context) (stop func()) {
	c.cutMu.Lock()
	c.writeSeq++
	seq := c.writeSeq
	c.writing = true
	c.nc.SetWriteDeadline(time.Now().Add(c.cfg.RequestTimeout))
	c.cutMu.Unlock()
	var unwatch func() bool
	if ctx.Done() != nil {
		unwatch = context.AfterFunc(ctx, func() {
			c.cutMu.Lock()
			if c.writing && c.writeSeq == seq {
				c.nc.SetWriteDeadline(time.Unix(1, 0))
			}
			c.cutMu.Unlock()
		})
	}
	return func() {
		c.cutMu.Lock()
		c.writing = false
		c.cutMu.Unlock()
		if unwatch != nil {
			unwatch()
		}
	}
}

// keepOrDropWriteBuffer keeps the write buffer for the next request, and
// drops a large one only after several requests in a row used little of
// it. Produce connections send multi-megabyte requests back to back, of
// varying sizes: dropping the buffer after each made every request grow a
// fresh one and copy itself over while growing, a third of the producer's
// CPU time with 10 KB records (issue 6). A connection whose big requests
// stopped gives the memory back after a few small ones, and an idle one
// with the connection when the pool closes it.
func (c *Conn) keepOrDropWriteBuffer() {
	if cap(c.wbuf) <= keepWriteBuffer || len(c.wbuf) >= cap(c.wbuf)/4 {
		c.smallWrites = 0
		return
	}
	if c.smallWrites++; c.smallWrites >= dropWriteBufferAfter {
		c.wbuf, c.smallWrites = nil, 0
	}
}

const (
	// keepWriteBuffer is the write buffer capacity a connection always
	// keeps.
	keepWriteBuffer = 1 << 20
	// dropWriteBufferAfter is how many requests in a row must use less
	// than a quarter of a larger buffer before it is dropped.
	dropWriteBufferAfter = 16
)

func (c *Conn) abandon(cl *call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, p := range c.pending {
		if p == cl {
			delete(c.pending, id)
			return
		}
	}
}

func (c *Conn) connErr(doing string, err error) error {
	return &errs.Error{
		Broker:    c.addr,
		Retriable: true,
		Detail:    "connection to broker lost while " + doing,
		Err:       errs.With(errs.ErrConnectionClosed, err),
	}
}

// readLoop is the only reader of the socket. It hands each response body to
// the call waiting for it; bodies for abandoned calls are dropped.
func (c *Conn) readLoop() {
	defer close(c.readerDone)
	var head [8]byte
	for {
		if _, err := io.ReadFull(c.nc, head[:4]); err != nil {
			c.close(c.connErr("reading", err))
			return
		}
		size := int32(binary.BigEndian.Uint32(head[:4]))
		limit := c.cfg.MaxResponseBytes
		if limit <= 0 {
			limit = 1 << 30
		}
		if size < 4 || size > limit {
			c.close(&errs.Error{Broker: c.addr, Retriable: true, Detail: fmt.Sprintf("broker sent a response of %d bytes, outside 4..%d; is this a Kafka broker?", size, limit), Err: errs.ErrProtocol})
			return
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(c.nc, buf); err != nil {
			c.close(c.connErr("reading", err))
			return
		}
		corr := int32(binary.BigEndian.Uint32(buf))
		c.mu.Lock()
		cl, ok := c.pending[corr]
		delete(c.pending, corr)
		c.mu.Unlock()
		if !ok {
			continue // the caller gave up on it
		}
		body := buf[4:]
		if cl.flex {
			var err error
			if body, err = skipTags(body); err != nil {
				c.close(protocolErr(c.addr, "response header of "+kmsg.NameForKey(cl.key), err))
				return
			}
		}
		if body == nil {
			body = []byte{}
		}
		if hook := c.cfg.Hooks.OnResponseRead; hook != nil {
			c.responseHook(hook, cl, int(size))
		}
		cl.done <- body
	}
}

// requestHooks calls OnRequestWritten for a write that just ended and
// notes its end for OnResponseRead.
func (c *Conn) requestHooks(key int16, cl *call, n int, err error) {
	now := time.Now()
	if c.cfg.Hooks.OnResponseRead != nil {
		cl.written.Store(now.UnixNano())
	}
	if hook := c.cfg.Hooks.OnRequestWritten; hook != nil {
		hook(c.addr, key, n, now.Sub(cl.enqueue), err)
	}
}

// responseHook calls hook for the response to cl, of size bytes.
func (c *Conn) responseHook(hook func(string, int16, int, time.Duration), cl *call, size int) {
	from := cl.enqueue
	if w := cl.written.Load(); w != 0 {
		from = time.Unix(0, w)
	}
	hook(c.addr, cl.key, size, time.Since(from))
}

// Close closes the connection, failing requests still in flight.
func (c *Conn) Close() {
	c.close(&errs.Error{Broker: c.addr, Detail: "connection closed by keel", Err: errs.ErrClosed})
	<-c.readerDone
}

func (c *Conn) close(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.cause = err
	pending := c.pending
	c.pending = nil
	close(c.dead)
	c.mu.Unlock()

	c.nc.Close()
	for _, cl := range pending {
		cl.done <- nil
	}
	if c.cfg.Hooks.OnDisconnect != nil {
		c.cfg.Hooks.OnDisconnect(c.addr, err)
	}
	c.cfg.logger().Debug("keel: connection closed", "broker", c.addr, "err", err)
}

// skipTags skips the tagged fields of a flexible response header.
func skipTags(b []byte) ([]byte, error) {
	n, used := binary.Uvarint(b)
	if used <= 0 {
		return nil, errors.New("bad tag count")
	}
	b = b[used:]
	for range n {
		_, used := binary.Uvarint(b)
		if used <= 0 {
			return nil, errors.New("bad tag key")
		}
		b = b[used:]
		size, used := binary.Uvarint(b)
		if used <= 0 || uint64(len(b)-used) < size {
			return nil, errors.New("bad tag size")
		}
		b = b[used+int(size):]
	}
	return b, nil
}
