package conn

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keel-go/keel/internal/errs"
)

// Purpose separates traffic that must not queue behind other traffic on
// one connection: Kafka answers the requests of a connection in order, so a
// fetch long-poll or a join-group wait would otherwise delay produce
// acknowledgements.
type Purpose uint8

const (
	General Purpose = iota
	Produce
	Fetch
	Group
	numPurposes
)

type poolKey struct {
	addr    string
	purpose Purpose
	owner   string // "" for shared connections
}

// Pool keeps at most one live connection per broker address and purpose,
// dials on demand, and backs off exponentially (with jitter) after failed
// dials. Connections idle longer than IdleTimeout are closed.
type Pool struct {
	cfg         *Config
	backoff     Backoff
	idleTimeout time.Duration

	ctx    context.Context // cancelled by Close; bounds background dials
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	slots  map[poolKey]*slot
	closed bool
}

type slot struct {
	conn     *Conn
	dialing  chan struct{} // closed when the dial in flight ends
	lastErr  error
	failures int
	nextDial time.Time
}

// NewPool returns a pool. A goroutine closes idle connections until Close.
func NewPool(cfg *Config, backoff Backoff, idleTimeout time.Duration) *Pool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{
		cfg:         cfg,
		backoff:     backoff,
		idleTimeout: idleTimeout,
		ctx:         ctx,
		cancel:      cancel,
		slots:       make(map[poolKey]*slot),
	}
	if idleTimeout > 0 {
		p.wg.Add(1)
		go p.reapIdle()
	}
	return p
}

// Get returns a live connection to addr for purpose, dialing if needed. It
// waits out the reconnect backoff of a broker that failed recently, under
// ctx. A dial that fails is reported to every caller waiting for it.
func (p *Pool) Get(ctx context.Context, addr string, purpose Purpose) (*Conn, error) {
	return p.GetOwned(ctx, addr, purpose, "")
}

// GetOwned is Get for a connection private to owner: requests that the
// broker parks for a long time (a JoinGroup waits for the whole group)
// must not hold up anyone else's requests, which on a shared connection
// would queue behind them. CloseOwner closes them.
func (p *Pool) GetOwned(ctx context.Context, addr string, purpose Purpose, owner string) (*Conn, error) {
	key := poolKey{addr, purpose, owner}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errs.ErrClosed
		}
		s := p.slots[key]
		if s == nil {
			s = new(slot)
			p.slots[key] = s
		}
		if s.conn != nil {
			select {
			case <-s.conn.Dead():
				s.conn = nil
			default:
				c := s.conn
				p.mu.Unlock()
				return c, nil
			}
		}
		if s.dialing != nil {
			ch := s.dialing
			p.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			p.mu.Lock()
			c, err := s.conn, s.lastErr
			p.mu.Unlock()
			if c != nil {
				return c, nil
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		if wait := time.Until(s.nextDial); wait > 0 {
			p.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-p.ctx.Done():
				t.Stop()
				return nil, errs.ErrClosed
			}
			continue
		}
		ch := make(chan struct{})
		s.dialing = ch
		p.wg.Add(1)
		p.mu.Unlock()
		// The dial runs on its own goroutine so that a caller whose ctx
		// ends stops waiting without failing the others waiting on it.
		go p.dial(key, s, ch)
	}
}

func (p *Pool) dial(key poolKey, s *slot, ch chan struct{}) {
	defer p.wg.Done()
	c, err := Dial(p.ctx, key.addr, p.cfg)
	p.mu.Lock()
	s.dialing = nil
	close(ch)
	closed := p.closed
	switch {
	case closed:
	case err != nil:
		s.failures++
		s.lastErr = err
		s.nextDial = time.Now().Add(p.backoff.Delay(s.failures))
	default:
		s.conn, s.lastErr, s.failures, s.nextDial = c, nil, 0, time.Time{}
	}
	p.mu.Unlock()
	if closed && c != nil {
		c.Close() // the pool closed while we dialed
	}
}

// CloseOwner closes the private connections of owner.
func (p *Pool) CloseOwner(owner string) {
	var toClose []*Conn
	p.mu.Lock()
	for k, s := range p.slots {
		if k.owner == owner && owner != "" {
			if s.conn != nil {
				toClose = append(toClose, s.conn)
			}
			delete(p.slots, k)
		}
	}
	p.mu.Unlock()
	for _, c := range toClose {
		c.Close()
	}
}

// CloseBroker closes every connection to addr (a broker that left the
// cluster).
func (p *Pool) CloseBroker(addr string) {
	var toClose []*Conn
	p.mu.Lock()
	for k, s := range p.slots {
		if k.addr == addr {
			if s.conn != nil {
				toClose = append(toClose, s.conn)
			}
			delete(p.slots, k)
		}
	}
	p.mu.Unlock()
	for _, c := range toClose {
		c.Close()
	}
}

func (p *Pool) reapIdle() {
	defer p.wg.Done()
	every := max(p.idleTimeout/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			var idle []*Conn
			p.mu.Lock()
			for _, s := range p.slots {
				if s.conn != nil && s.conn.Idle(now) >= p.idleTimeout {
					idle = append(idle, s.conn)
					s.conn = nil
				}
			}
			p.mu.Unlock()
			for _, c := range idle {
				p.cfg.logger().Debug("keel: closing idle connection", "broker", c.Addr())
				c.close(&errs.Error{Broker: c.Addr(), Retriable: true, Detail: "idle connection closed", Err: errs.ErrConnectionClosed})
				<-c.readerDone
			}
		}
	}
}

// Close closes every connection and waits for the pool's goroutines.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return
	}
	p.closed = true
	var conns []*Conn
	for _, s := range p.slots {
		if s.conn != nil {
			conns = append(conns, s.conn)
		}
	}
	p.slots = nil
	p.mu.Unlock()
	p.cancel()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// IsClosed reports whether err says the pool or connection was closed by
// keel itself.
func IsClosed(err error) bool { return errors.Is(err, errs.ErrClosed) }
