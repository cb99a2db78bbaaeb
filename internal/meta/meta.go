package meta

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/wait"
)

// Config configures a Meta.
type Config struct {
	Seeds []string
	// MaxAge is how old a snapshot may get before a read refreshes it.
	MaxAge time.Duration
	// MinRefreshInterval spaces refreshes triggered by errors, so that a
	// burst of NOT_LEADER answers causes one metadata request, not one per
	// record.
	MinRefreshInterval time.Duration
	// UnknownTopicRetries is how many metadata answers saying a topic does
	// not exist keel accepts before reporting ErrUnknownTopic. A topic
	// just created may take a moment to show on every broker.
	UnknownTopicRetries    int
	AllowAutoTopicCreation bool
	Backoff                conn.Backoff
	Logger                 *slog.Logger
	// OnChange is called after a refresh changed brokers or leaders.
	OnChange func(old, new *Snapshot)
}

// Meta is the shared cluster view of one client.
type Meta struct {
	cfg  Config
	pool *conn.Pool

	snap atomic.Pointer[Snapshot]

	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	interest    map[string]struct{} // topics kept in every refresh
	allTopics   int                 // >0 while someone wants every topic (regex)
	inflight    *refresh
	lastRefresh time.Time
	coords      map[coordKey]int32
	listeners   map[int]func(*Snapshot)
	nextListen  int
}

type refresh struct {
	done chan struct{}
	err  error
}

// New returns a Meta that reaches brokers through pool.
func New(cfg Config, pool *conn.Pool) *Meta {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Meta{
		cfg:      cfg,
		pool:     pool,
		ctx:      ctx,
		cancel:   cancel,
		interest: make(map[string]struct{}),
		coords:   make(map[coordKey]int32),
	}
}

// Close stops refreshes in flight and waits for them.
func (m *Meta) Close() {
	// Cancelled under mu: startRefresh checks ctx and adds to wg under
	// mu, so no Add can race with the Wait below (the race detector
	// caught a producer's RefreshSoon doing so while the client closed).
	m.mu.Lock()
	m.cancel()
	m.mu.Unlock()
	m.wg.Wait()
}

// Current returns the latest snapshot without refreshing (nil before the
// first refresh).
func (m *Meta) Current() *Snapshot { return m.snap.Load() }

// Snapshot returns a snapshot no older than MaxAge, refreshing if needed.
func (m *Meta) Snapshot(ctx context.Context) (*Snapshot, error) {
	if s := m.snap.Load(); s != nil && time.Since(s.At) < m.cfg.MaxAge {
		return s, nil
	}
	return m.Refresh(ctx)
}

// Refresh fetches metadata now. Concurrent callers share one request: a
// caller arriving while a refresh is in flight waits for that one.
func (m *Meta) Refresh(ctx context.Context) (*Snapshot, error) {
	r := m.startRefresh(0)
	select {
	case <-r.done:
		if r.err != nil {
			return nil, r.err
		}
		return m.snap.Load(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// RefreshSoon asks for a refresh without waiting for it, no sooner than
// MinRefreshInterval after the previous one. Call it when a request failed
// with a metadata-class error.
func (m *Meta) RefreshSoon() {
	m.mu.Lock()
	wait := m.cfg.MinRefreshInterval - time.Since(m.lastRefresh)
	m.mu.Unlock()
	m.startRefresh(max(wait, 0))
}

// HandleError triggers a refresh when err says metadata is stale, and
// forgets a coordinator that moved. It returns whether it did anything.
func (m *Meta) HandleError(code int16) bool {
	if code != errs.CodeNone && errs.Lookup(code).Metadata {
		m.RefreshSoon()
		return true
	}
	return false
}

func (m *Meta) startRefresh(delay time.Duration) *refresh {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inflight != nil {
		return m.inflight
	}
	r := &refresh{done: make(chan struct{})}
	m.inflight = r
	if m.ctx.Err() != nil {
		r.err = errs.ErrClosed
		m.inflight = nil
		close(r.done)
		return r
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		wait.Sleep(m.ctx, delay) // fetch below notices a closed Meta
		err := m.fetch(m.ctx)
		m.mu.Lock()
		m.inflight = nil
		m.lastRefresh = time.Now()
		m.mu.Unlock()
		r.err = err
		close(r.done)
	}()
	return r
}

// fetch asks one broker after another (known brokers first, in random
// order, then the seeds) until one answers.
func (m *Meta) fetch(ctx context.Context) error {
	if ctx.Err() != nil {
		return errs.ErrClosed
	}
	req := m.request()
	var failures []string
	var lastErr error
	for _, addr := range m.candidates() {
		c, err := m.pool.Get(ctx, addr, conn.General)
		if err == nil {
			var resp kmsg.Response
			resp, err = c.Request(ctx, req)
			if err == nil {
				m.apply(resp.(*kmsg.MetadataResponse))
				return nil
			}
		}
		if ctx.Err() != nil {
			return errs.ErrClosed
		}
		lastErr = err
		failures = append(failures, err.Error())
		if !errs.IsRetriable(err) {
			break // authentication or version errors will not differ per broker
		}
	}
	if lastErr == nil {
		return &errs.Error{Detail: "no broker to ask for metadata", Err: errs.ErrBrokerUnreachable}
	}
	if len(failures) == 1 {
		return lastErr
	}
	return fmt.Errorf("no broker answered the metadata request (%s): %w", strings.Join(failures, "; "), lastErr)
}

func (m *Meta) candidates() []string {
	var out []string
	if s := m.snap.Load(); s != nil {
		for _, b := range s.Brokers {
			out = append(out, b.Addr())
		}
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	seeds := slices.Clone(m.cfg.Seeds)
	rand.Shuffle(len(seeds), func(i, j int) { seeds[i], seeds[j] = seeds[j], seeds[i] })
	for _, s := range seeds {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (m *Meta) request() *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = m.cfg.AllowAutoTopicCreation
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.allTopics > 0 {
		req.Topics = nil // every topic
		return req
	}
	req.Topics = []kmsg.MetadataRequestTopic{}
	for t := range m.interest {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// apply builds the new snapshot. A partition whose reported leader epoch is
// older than the one we know came from a broker that has not caught up; we
// keep what we know rather than step back.
func (m *Meta) apply(resp *kmsg.MetadataResponse) {
	old := m.snap.Load()
	s := &Snapshot{
		ControllerID: resp.ControllerID,
		Brokers:      make(map[int32]Broker, len(resp.Brokers)),
		Topics:       make(map[string]*Topic, len(resp.Topics)),
		At:           time.Now(),
	}
	if resp.ClusterID != nil {
		s.ClusterID = *resp.ClusterID
	}
	for _, b := range resp.Brokers {
		br := Broker{ID: b.NodeID, Host: b.Host, Port: b.Port}
		if b.Rack != nil {
			br.Rack = *b.Rack
		}
		s.Brokers[b.NodeID] = br
	}
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		nt := &Topic{Name: *t.Topic, ID: t.TopicID, Internal: t.IsInternal, ErrCode: t.ErrorCode}
		n := 0
		for _, p := range t.Partitions {
			n = max(n, int(p.Partition)+1)
		}
		nt.Partitions = make([]Partition, n)
		for i := range nt.Partitions {
			nt.Partitions[i] = Partition{ID: int32(i), Leader: -1, LeaderEpoch: -1, ErrCode: errs.CodeLeaderNotAvailable}
		}
		for _, p := range t.Partitions {
			np := Partition{ID: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR, ErrCode: p.ErrorCode}
			if prev, ok := oldPartition(old, nt.Name, p.Partition); ok && np.LeaderEpoch >= 0 && prev.LeaderEpoch > np.LeaderEpoch {
				np = prev
			}
			nt.Partitions[p.Partition] = np
		}
		s.Topics[nt.Name] = nt
	}
	m.mu.Lock()
	if m.allTopics == 0 && old != nil {
		// Keep topics we were not asked about this time (none normally:
		// every refresh asks for the whole interest set).
		for name, t := range old.Topics {
			if _, ok := s.Topics[name]; !ok {
				if _, want := m.interest[name]; want {
					s.Topics[name] = t
				}
			}
		}
	}
	m.mu.Unlock()
	m.snap.Store(s)
	if changed(old, s) {
		if m.cfg.OnChange != nil {
			m.cfg.OnChange(old, s)
		}
		m.mu.Lock()
		fns := make([]func(*Snapshot), 0, len(m.listeners))
		for _, fn := range m.listeners {
			fns = append(fns, fn)
		}
		m.mu.Unlock()
		for _, fn := range fns {
			fn(s)
		}
	}
}

// Subscribe calls fn after every refresh that changed brokers, partitions
// or leaders, until the returned cancel is called. fn runs on the refresh
// goroutine and must not block or call Refresh.
func (m *Meta) Subscribe(fn func(*Snapshot)) (cancel func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listeners == nil {
		m.listeners = make(map[int]func(*Snapshot))
	}
	id := m.nextListen
	m.nextListen++
	m.listeners[id] = fn
	return func() {
		m.mu.Lock()
		delete(m.listeners, id)
		m.mu.Unlock()
	}
}

func oldPartition(s *Snapshot, topic string, p int32) (Partition, bool) {
	if s == nil {
		return Partition{}, false
	}
	t := s.Topics[topic]
	if t == nil || int(p) >= len(t.Partitions) {
		return Partition{}, false
	}
	return t.Partitions[p], true
}

func changed(a, b *Snapshot) bool {
	if a == nil {
		return true
	}
	if len(a.Brokers) != len(b.Brokers) || len(a.Topics) != len(b.Topics) {
		return true
	}
	for id, br := range b.Brokers {
		if a.Brokers[id] != br {
			return true
		}
	}
	for name, t := range b.Topics {
		ot := a.Topics[name]
		if ot == nil || len(ot.Partitions) != len(t.Partitions) || ot.ErrCode != t.ErrCode {
			return true
		}
		for i, p := range t.Partitions {
			if ot.Partitions[i].Leader != p.Leader || ot.Partitions[i].LeaderEpoch != p.LeaderEpoch {
				return true
			}
		}
	}
	return false
}

// WantAllTopics makes every refresh fetch all topics until the returned
// func is called (regex subscriptions need this).
func (m *Meta) WantAllTopics() (release func()) {
	m.mu.Lock()
	m.allTopics++
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			m.allTopics--
			m.mu.Unlock()
		})
	}
}

// Topic returns the topic's metadata, fetching it if this client has not
// asked for it before. A topic the cluster does not have gives an error
// matching errs.ErrUnknownTopic after UnknownTopicRetries answers, rather
// than endless retries.
func (m *Meta) Topic(ctx context.Context, name string) (*Topic, error) {
	if t := m.cachedTopic(name); t != nil {
		return t, nil
	}
	m.mu.Lock()
	m.interest[name] = struct{}{}
	m.mu.Unlock()

	unknown := 0
	for attempt := 1; ; attempt++ {
		s, err := m.Refresh(ctx)
		if err != nil {
			return nil, err
		}
		t := s.Topics[name]
		switch {
		case t != nil && t.ErrCode == errs.CodeNone && len(t.Partitions) > 0:
			return t, nil
		case t == nil || t.ErrCode == errs.CodeUnknownTopicOrPartition:
			unknown++
			if unknown > m.cfg.UnknownTopicRetries {
				m.mu.Lock()
				delete(m.interest, name)
				m.mu.Unlock()
				return nil, m.unknownTopic(name)
			}
		case t.ErrCode == errs.CodeLeaderNotAvailable || errs.Lookup(t.ErrCode).Retriable:
			// Being created or electing a leader: wait for it.
		default:
			e := errs.FromCode(t.ErrCode, "", "").(*errs.Error)
			e.Detail = fmt.Sprintf("cannot use topic %q", name)
			return nil, e
		}
		if !wait.Sleep(ctx, m.cfg.Backoff.Delay(attempt)) {
			return nil, ctx.Err()
		}
	}
}

func (m *Meta) cachedTopic(name string) *Topic {
	s := m.snap.Load()
	if s == nil || time.Since(s.At) >= m.cfg.MaxAge {
		return nil
	}
	m.mu.Lock()
	_, wanted := m.interest[name]
	wanted = wanted || m.allTopics > 0
	m.mu.Unlock()
	if t := s.Topics[name]; t != nil && t.ErrCode == errs.CodeNone && len(t.Partitions) > 0 && wanted {
		return t
	}
	return nil
}

func (m *Meta) unknownTopic(name string) error {
	where := strings.Join(m.cfg.Seeds, ",")
	hint := "create it or enable auto-creation"
	if m.cfg.AllowAutoTopicCreation {
		hint = "create it; the broker did not auto-create it"
	}
	return &errs.Error{
		Code:   errs.CodeUnknownTopicOrPartition,
		Name:   errs.Lookup(errs.CodeUnknownTopicOrPartition).Name,
		Detail: fmt.Sprintf("topic %q does not exist on the cluster at %s; %s", name, where, hint),
		Err:    errs.ErrUnknownTopic,
	}
}

// BrokerAddr returns the address of broker id from the latest snapshot.
func (m *Meta) BrokerAddr(id int32) (string, bool) {
	s := m.snap.Load()
	if s == nil {
		return "", false
	}
	b, ok := s.Brokers[id]
	return b.Addr(), ok
}
