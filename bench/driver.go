package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// warmRecords are produced and acknowledged before the timed window opens,
// so connections, metadata, producer ids and the libraries' pools are
// ready and the window measures the steady state.
const warmRecords = 1000

// runClient is the client role: one measurement, in this process alone.
func runClient(ctx context.Context, s spec) (result, error) {
	r := result{Client: s.Client, Workload: s.Workload}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	var err error
	switch {
	case s.Client == "ceiling":
		err = runCeiling(ctx, s, &r)
	case s.Kind == kindConsume:
		err = runConsume(ctx, s, &r)
	default:
		err = runProduce(ctx, s, &r)
	}
	r.PeakRSSBytes = peakRSS()
	r.finish(s.ValueBytes)
	return r, err
}

// counter counts delivery reports and says when the expected number
// arrived.
type counter struct {
	n, errs atomic.Int64
	want    int64
	last    atomic.Int64 // unix nanoseconds of the last report
	full    chan struct{}
	once    sync.Once
	first   atomic.Value // error
}

func newCounter(want int) *counter {
	return &counter{want: int64(want), full: make(chan struct{})}
}

// add counts one report and returns the count so far.
func (c *counter) add(err error) int64 {
	if err != nil {
		c.errs.Add(1)
		c.first.CompareAndSwap(nil, err)
	}
	n := c.n.Add(1)
	if n == c.want {
		c.last.Store(time.Now().UnixNano())
		c.once.Do(func() { close(c.full) })
	}
	return n
}

func (c *counter) wait(ctx context.Context, what string) error {
	select {
	case <-c.full:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %d of %d after the time limit: %w", what, c.n.Load(), c.want, context.Cause(ctx))
	}
}

func (c *counter) firstErr() error {
	if e, ok := c.first.Load().(error); ok {
		return e
	}
	return nil
}

// runProduce drives the produce and latency workloads.
func runProduce(ctx context.Context, s spec, r *result) error {
	impl, err := lookupClient(s.Client)
	if err != nil {
		return err
	}
	values := payloads(s.Settings.Values, s.ValueBytes)
	latency := s.Kind == kindLatency

	// The callback reads whichever counter is current: warm-up first,
	// then the timed one.
	var cur atomic.Pointer[counter]
	var sent []int64 // latency: when each record's produce call began (ns since base)
	var lat []int64  // latency: its report time minus sent
	base := time.Now()
	done := func(i int, err error) {
		if latency && i >= 0 {
			lat[i] = time.Since(base).Nanoseconds() - sent[i]
		}
		cur.Load().add(err)
	}
	p, settings, err := impl.newProducer(ctx, producerConfig{spec: s, track: latency, done: done})
	if err != nil {
		return fmt.Errorf("creating the %s producer: %w", s.Client, err)
	}
	r.Settings = settings
	defer p.close(context.WithoutCancel(ctx))

	var keys [][]byte
	if s.Keyed {
		keys = benchKeys(keyCount)
	}
	keyOf := func(i int) []byte {
		if keys == nil {
			return nil
		}
		return keys[i%len(keys)]
	}
	warm := newCounter(warmRecords)
	cur.Store(warm)
	for k := range warmRecords {
		if err := p.produce(ctx, -1, keyOf(k), values[k%len(values)]); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	if err := warm.wait(ctx, "warm-up reports"); err != nil {
		return err
	}
	if err := warm.firstErr(); err != nil {
		return fmt.Errorf("warm-up: %d records failed, first: %w", warm.errs.Load(), err)
	}

	main := newCounter(s.Records)
	if latency {
		sent = make([]int64, s.Records)
		lat = make([]int64, s.Records)
	}
	cur.Store(main)
	var w window
	if err := w.begin(s.CPUProfile); err != nil {
		return err
	}
	if latency {
		err = paced(ctx, s.Records, s.Rate, func(i int) error {
			sent[i] = time.Since(base).Nanoseconds()
			return p.produce(ctx, i, keyOf(i), values[i%len(values)])
		})
	} else {
		err = produceAll(ctx, s.Records, max(1, s.Goroutines), func(i int) error {
			return p.produce(ctx, i, keyOf(i), values[i%len(values)])
		})
	}
	if err == nil {
		err = main.wait(ctx, "delivery reports")
	}
	end := time.Now()
	if t := main.last.Load(); t != 0 {
		end = time.Unix(0, t)
	}
	w.end(end, r)
	r.Records = min(main.n.Load(), int64(s.Records))
	r.Errors = main.errs.Load()
	if err != nil {
		return err
	}
	if e := main.firstErr(); e != nil {
		return fmt.Errorf("%d of %d records failed, first: %w", r.Errors, s.Records, e)
	}
	if latency {
		r.TargetRate = s.Rate
		setPercentiles(r, lat)
	}
	return nil
}

// produceAll calls fn(i) for i in [0, n) from g goroutines at once, each
// taking every g-th index, and returns the first error.
func produceAll(ctx context.Context, n, g int, fn func(i int) error) error {
	if g <= 1 {
		for i := range n {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, g)
	for k := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < n; i += g {
				if err := fn(i); err != nil {
					errs[k] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// benchKeys are the keys of keyed workloads: n distinct 16-byte keys.
func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%012d", i)
	}
	return keys
}

// paced calls fn(i) for i in [0, n) at rate calls per second: every
// millisecond it makes the calls that are due, so the rate holds even
// though sleeps are coarse.
func paced(ctx context.Context, n, rate int, fn func(i int) error) error {
	start := time.Now()
	for i := 0; i < n; {
		due := min(n, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; i < due; i++ {
			if err := fn(i); err != nil {
				return err
			}
		}
		if i < n {
			time.Sleep(time.Until(start.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func setPercentiles(r *result, lat []int64) {
	s := slices.Clone(lat)
	slices.Sort(s)
	at := func(q float64) *float64 {
		v := float64(s[min(len(s)-1, int(q*float64(len(s))))]) / 1e6
		return &v
	}
	r.P50ms, r.P99ms, r.P999ms = at(0.50), at(0.99), at(0.999)
	mx := float64(s[len(s)-1]) / 1e6
	r.MaxMs = &mx
}

// runConsume drives the consume workload: read s.Records records of the
// prefilled topic with the client's group consumer.
func runConsume(ctx context.Context, s spec, r *result) error {
	impl, err := lookupClient(s.Client)
	if err != nil {
		return err
	}
	if impl.newConsumer == nil {
		return errors.New("no consumer for " + s.Client)
	}
	created := time.Now()
	c, settings, err := impl.newConsumer(ctx, s)
	if err != nil {
		return fmt.Errorf("creating the %s consumer: %w", s.Client, err)
	}
	r.Settings = settings

	// The window opens once a fifth of the records arrived: joining the
	// group is not consuming (its time is reported as startup_ms), and
	// records a client fetched ahead before that point would otherwise
	// count as consumed in no time.
	skip := int64(consumeSkip(s.Records))
	var w window
	var firstOnce sync.Once
	var beginErr error
	cnt := newCounter(s.Records)
	var bad atomic.Int64
	begun := make(chan struct{}) // closed once the window is open
	got := func(value []byte) {
		firstOnce.Do(func() {
			r.StartupMs = float64(time.Since(created).Microseconds()) / 1e3
		})
		if len(value) != s.ValueBytes {
			bad.Add(1)
		}
		if cnt.add(nil) == skip {
			beginErr = w.begin(s.CPUProfile)
			close(begun)
		}
	}
	rctx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- c.run(rctx, got) }()
	err = cnt.wait(ctx, "records consumed")
	if err == nil {
		<-begun // another goroutine may still be opening it
		w.end(time.Unix(0, cnt.last.Load()), r)
	}
	stop()
	if rerr := <-runErr; err == nil && rerr != nil && !errors.Is(rerr, context.Canceled) {
		err = rerr
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	if cerr := c.close(cctx); err == nil && cerr != nil {
		err = fmt.Errorf("closing: %w", cerr)
	}
	r.Records = min(cnt.n.Load(), int64(s.Records))
	r.WindowRecords = r.Records - skip
	if beginErr != nil {
		return beginErr
	}
	if n := bad.Load(); n > 0 && err == nil {
		err = fmt.Errorf("%d records had a value of the wrong size", n)
	}
	return err
}

// consumeSkip is how many records a consumer reads before the window opens.
func consumeSkip(records int) int { return max(1, records/5) }
