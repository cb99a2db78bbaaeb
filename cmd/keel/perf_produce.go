package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-go/keel"
)

const perfProduceUsage = `
Usage: keel perf produce -t TOPIC (--records N | --duration D) [flags]

Produces records of --record-size bytes to TOPIC, at --rate records per
second or as fast as the cluster takes them, each with its own delivery
callback. Latency is measured from the Produce call to the record's delivery
report. While it runs, a progress line (records, rec/s, MB/s, p50/p99
latency) is redrawn on stderr once a second when stderr is a terminal, or
always with --progress. At the end it prints a summary and a latency
histogram, or with --json one JSON object. A record that fails is counted,
its reason summarized, and the exit status is 1.

Examples:
  keel perf produce --embedded --records 100000
  keel perf produce -t bench --records 1000000 --record-size 512 -z lz4 --linger 10ms
  keel perf produce -t bench --duration 30s --rate 20000 --acks 1 --json
`

func runPerfProduce(ctx context.Context, args []string, io stdio) int {
	fs := newFlagSet("perf produce", perfProduceUsage, io)
	f := addPerfFlags(fs, io)
	var (
		rate            = fs.Float64("rate", 0, "records per second; 0 is as fast as possible")
		acks            = fs.String("acks", "all", "acknowledgements: all, 1 or 0")
		codec           = fs.String("z", "none", "compression: none, gzip, snappy, lz4 or zstd")
		linger          = fs.Duration("linger", 5*time.Millisecond, "how long a batch waits for more records")
		idem            = fs.Bool("idempotence", true, "idempotent producer (needs --acks all; off by default with other acks)")
		batch           = fs.Int("batch-bytes", 1_000_000, "largest batch per partition, in bytes")
		deliveryTimeout = fs.Duration("delivery-timeout", 2*time.Minute, "time a record has to be delivered before it fails")
	)
	aliases(fs, "records", "num-records") // kafka-producer-perf-test.sh
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(io, "perf produce", "unexpected argument %q", fs.Arg(0))
	}
	if problem := f.check(); problem != "" {
		return usageError(io, "perf produce", "%s", problem)
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	cfg, problem := perfProducerConfig(*acks, *codec, *rate, *linger, *batch, *f.recordSize, *deliveryTimeout, *idem, set["idempotence"])
	if problem != "" {
		return usageError(io, "perf produce", "%s", problem)
	}

	if *f.embedded {
		cluster, err := perfStartEmbedded(f, io)
		if err != nil {
			return failed(io, "perf produce", err)
		}
		defer cluster.Close()
		*f.brokers = perfBrokers(f, cluster)
	}
	metricOpts, metrics, err := startMetrics(*f.metrics, io)
	if err != nil {
		return failed(io, "perf produce", err)
	}
	defer metrics.stop()
	client, err := connect(ctx, *f.brokers, append(metricOpts, keel.ClientID("keel-perf"))...)
	if err != nil {
		return failed(io, "perf produce", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		client.Close(cctx)
	}()
	producer, err := keel.NewProducer(client, cfg.options...)
	if err != nil {
		if errors.Is(err, keel.ErrInvalidConfig) {
			return usageError(io, "perf produce", "%v", err)
		}
		return failed(io, "perf produce", err)
	}

	res := perfProduceLoad(ctx, producer, f, cfg, io)
	res.Config = cfg.summary
	if *f.jsonOut {
		if err := perfWriteJSON(io.out, res); err != nil {
			return failed(io, "perf produce", err)
		}
	} else {
		res.write(io.out, cfg)
	}
	if res.Failed > 0 {
		fmt.Fprintf(io.err, "keel perf produce: %s of %s records failed\n", perfCount(res.Failed), perfCount(res.Records))
		return exitFailure
	}
	return exitOK
}

// perfProduceConfig is what the flags make of the producer.
type perfProduceConfig struct {
	options         []keel.ProducerOption
	rate            float64
	deliveryTimeout time.Duration
	summary         perfProduceSettings
}

// perfProduceSettings echo the settings in the results.
type perfProduceSettings struct {
	RecordSize  int     `json:"record_size"`
	Rate        float64 `json:"rate"`
	Acks        string  `json:"acks"`
	Idempotence bool    `json:"idempotence"`
	Codec       string  `json:"codec"`
	LingerMs    float64 `json:"linger_ms"`
	BatchBytes  int     `json:"batch_bytes"`
}

// perfProducerConfig turns the flags into producer options, or says what
// is wrong with them.
func perfProducerConfig(acks, codec string, rate float64, linger time.Duration, batch, recordSize int,
	deliveryTimeout time.Duration, idem, idemSet bool) (perfProduceConfig, string) {
	c := perfProduceConfig{rate: rate, deliveryTimeout: deliveryTimeout}
	var a keel.Acks
	switch strings.ToLower(acks) {
	case "all", "-1":
		a, acks = keel.AcksAll, "all"
	case "1", "leader":
		a, acks = keel.AcksLeader, "1"
	case "0", "none":
		a, acks = keel.AcksNone, "0"
	default:
		return c, fmt.Sprintf("--acks %q: use all, 1 or 0", acks)
	}
	codecs := map[string]keel.Codec{"none": keel.NoCompression, "gzip": keel.Gzip, "snappy": keel.Snappy, "lz4": keel.LZ4, "zstd": keel.Zstd}
	z, ok := codecs[strings.ToLower(codec)]
	if !ok {
		return c, fmt.Sprintf("-z %q: use none, gzip, snappy, lz4 or zstd", codec)
	}
	switch {
	case rate < 0:
		return c, fmt.Sprintf("--rate %v is negative (0 is unlimited)", rate)
	case linger < 0:
		return c, fmt.Sprintf("--linger %v is negative", linger)
	case batch < 1024 || batch > 256<<20:
		return c, fmt.Sprintf("--batch-bytes %d: use 1024 to 268435456", batch)
	case recordSize+128 > batch:
		return c, fmt.Sprintf("--record-size %d does not fit a batch of --batch-bytes %d", recordSize, batch)
	case deliveryTimeout <= linger:
		return c, fmt.Sprintf("--delivery-timeout %v must be longer than --linger %v", deliveryTimeout, linger)
	}
	if idemSet && idem && a != keel.AcksAll {
		return c, "--idempotence needs --acks all (or pass --idempotence=false)"
	}
	c.options = []keel.ProducerOption{
		keel.WithAcks(a), keel.Compression(z, 0), keel.Linger(linger), keel.MaxBatchBytes(batch),
		keel.MaxRequestBytes(max(16<<20, batch+1024)), keel.MaxBufferedBytes(max(64<<20, 4*int64(batch))),
		keel.DeliveryTimeout(deliveryTimeout),
		// The produce request timeout must fit in the delivery timeout.
		keel.ProduceRequestTimeout(min(30*time.Second, deliveryTimeout-linger)),
	}
	if idemSet {
		c.options = append(c.options, keel.Idempotence(idem))
	}
	c.summary = perfProduceSettings{
		RecordSize: recordSize, Rate: rate, Acks: acks, Idempotence: a == keel.AcksAll && idem,
		Codec: strings.ToLower(codec), LingerMs: perfMillis(linger), BatchBytes: batch,
	}
	return c, ""
}

// perfProduceStats collects delivery reports. Callbacks run one at a time
// on the producer's goroutine; the progress line reads concurrently.
type perfProduceStats struct {
	sent atomic.Int64 // Produce calls made

	mu        sync.Mutex
	hist      histogram // latency of delivered records
	delivered int64
	failed    int64
	bytes     int64 // of delivered records
	reasons   map[string]int64
	last      time.Time // of the latest report
}

// perfMaxReasons bounds the distinct failure reasons kept.
const perfMaxReasons = 10

func (s *perfProduceStats) report(d keel.Delivery) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = now
	if d.Err == nil {
		s.delivered++
		s.bytes += int64(len(d.Message.Key) + len(d.Message.Value))
		// The message's Timestamp was set just before its Produce call.
		s.hist.record(now.Sub(d.Message.Timestamp))
		return
	}
	s.failed++
	s.addReason(d.Err.Error(), 1)
}

func (s *perfProduceStats) addReason(reason string, n int64) {
	if s.reasons == nil {
		s.reasons = make(map[string]int64)
	}
	if _, ok := s.reasons[reason]; !ok && len(s.reasons) >= perfMaxReasons {
		reason = "(other reasons)"
	}
	s.reasons[reason] += n
}

// perfProduceLoad produces until --records or --duration, waits for every
// delivery report and returns the results.
func perfProduceLoad(ctx context.Context, p *keel.Producer, f *perfFlags, cfg perfProduceConfig, io stdio) *perfProduceResult {
	stats := &perfProduceStats{}
	payload := perfPayload(*f.recordSize)
	start := time.Now()

	var prevN, prevBytes int64
	prevAt := start
	progress := startPerfProgress(io.err, f.showProgress(io), func(elapsed time.Duration) string {
		now := time.Now()
		stats.mu.Lock()
		n, bytes, failedN := stats.delivered, stats.bytes, stats.failed
		p50, p99 := stats.hist.percentile(0.50), stats.hist.percentile(0.99)
		stats.mu.Unlock()
		recs, mbs := perfWindowRates(n-prevN, bytes-prevBytes, now.Sub(prevAt), n, bytes, elapsed)
		line := fmt.Sprintf("%5.1fs  %s records  %s rec/s  %.2f MB/s  p50 %s  p99 %s",
			elapsed.Seconds(), perfCount(n), perfCount(int64(recs)), mbs, fmtLatency(p50), fmtLatency(p99))
		if failedN > 0 {
			line += fmt.Sprintf("  %s failed", perfCount(failedN))
		}
		prevN, prevBytes, prevAt = n, bytes, now
		return line
	})

	loopCtx, stopLoop := f.stopAt(ctx)
	pace := newPacer(cfg.rate)
	for n := int64(0); *f.records == 0 || n < *f.records; n++ {
		if pace.wait(loopCtx) != nil {
			break
		}
		// ctx, not loopCtx: records already produced keep going when the
		// duration is up; an interrupt cancels those not yet sent.
		p.ProduceFunc(ctx, &keel.Message{Topic: *f.topic, Value: payload, Timestamp: time.Now()}, stats.report)
		stats.sent.Add(1)
	}
	stopLoop()

	// Every record has an outcome within the delivery timeout: Flush
	// waits for them, Close hands out the last reports.
	fctx, cancel := context.WithTimeout(ctx, cfg.deliveryTimeout+5*time.Second)
	p.Flush(fctx)
	cancel()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	p.Close(cctx)
	cancel()
	progress.stop()

	stats.mu.Lock()
	defer stats.mu.Unlock()
	if missing := stats.sent.Load() - stats.delivered - stats.failed; missing > 0 {
		stats.failed += missing
		stats.addReason("no delivery report before the producer closed", missing)
	}
	end := stats.last
	if end.Before(start) {
		end = time.Now()
	}
	return newPerfProduceResult(*f.topic, stats, end.Sub(start))
}

// perfPayload is the value every record carries: printable, not all one
// byte (so compression is not absurdly good), the same for every record
// as in kafka-producer-perf-test.
func perfPayload(size int) []byte {
	rng := rand.New(rand.NewPCG(7, 7))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, size)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return b
}

// perfProduceResult is what --json prints, and what the summary shows.
type perfProduceResult struct {
	Mode          string              `json:"mode"`
	Topic         string              `json:"topic"`
	Records       int64               `json:"records"`
	Delivered     int64               `json:"delivered"`
	Failed        int64               `json:"failed"`
	Bytes         int64               `json:"bytes"`
	DurationSec   float64             `json:"duration_s"`
	RecordsPerSec float64             `json:"records_per_sec"`
	MBPerSec      float64             `json:"mb_per_sec"`
	Latency       perfLatency         `json:"latency_ms"`
	Histogram     []perfHistRow       `json:"histogram"`
	Failures      []perfReason        `json:"failures,omitempty"`
	Config        perfProduceSettings `json:"config"`

	duration time.Duration
	hist     histogram
}

type perfLatency struct {
	Min  float64 `json:"min"`
	Avg  float64 `json:"avg"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

type perfHistRow struct {
	FromMs float64 `json:"from_ms"`
	ToMs   float64 `json:"to_ms"`
	Count  uint64  `json:"count"`
}

type perfReason struct {
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

func newPerfProduceResult(topic string, s *perfProduceStats, d time.Duration) *perfProduceResult {
	h := &s.hist
	r := &perfProduceResult{
		Mode: "produce", Topic: topic,
		Records: s.sent.Load(), Delivered: s.delivered, Failed: s.failed, Bytes: s.bytes,
		DurationSec: d.Seconds(), RecordsPerSec: perfRate(s.delivered, d), MBPerSec: perfMBps(s.bytes, d),
		Latency: perfLatency{
			Min: perfMillis(h.minimum()), Avg: perfMillis(h.mean()),
			P50: perfMillis(h.percentile(0.50)), P95: perfMillis(h.percentile(0.95)),
			P99: perfMillis(h.percentile(0.99)), P999: perfMillis(h.percentile(0.999)),
			Max: perfMillis(h.maximum()),
		},
		Histogram: []perfHistRow{},
		duration:  d,
		hist:      *h,
	}
	for _, row := range h.rows() {
		r.Histogram = append(r.Histogram, perfHistRow{FromMs: perfMillis(row.lo), ToMs: perfMillis(row.hi), Count: row.count})
	}
	for reason, n := range s.reasons {
		r.Failures = append(r.Failures, perfReason{reason, n})
	}
	sort.Slice(r.Failures, func(i, j int) bool { return r.Failures[i].Count > r.Failures[j].Count })
	return r
}

// write prints the human summary.
func (r *perfProduceResult) write(w io.Writer, cfg perfProduceConfig) {
	s := cfg.summary
	rate := "unlimited"
	if s.Rate > 0 {
		rate = perfCount(int64(s.Rate)) + " rec/s"
	}
	fmt.Fprintf(w, "keel perf produce: topic %q, %d-byte records, rate %s, acks %s, idempotence %v, codec %s, linger %v\n\n",
		r.Topic, s.RecordSize, rate, s.Acks, s.Idempotence, s.Codec, time.Duration(s.LingerMs*float64(time.Millisecond)))
	fmt.Fprintf(w, "  records     %s produced, %s delivered, %s failed\n", perfCount(r.Records), perfCount(r.Delivered), perfCount(r.Failed))
	fmt.Fprintf(w, "  duration    %v\n", r.duration.Round(time.Millisecond))
	fmt.Fprintf(w, "  throughput  %s rec/s, %.2f MB/s\n", perfCount(int64(r.RecordsPerSec)), r.MBPerSec)
	h := &r.hist
	if h.count() > 0 {
		fmt.Fprintf(w, "  latency     avg %s  p50 %s  p95 %s  p99 %s  p99.9 %s  max %s\n",
			fmtLatency(h.mean()), fmtLatency(h.percentile(0.5)), fmtLatency(h.percentile(0.95)),
			fmtLatency(h.percentile(0.99)), fmtLatency(h.percentile(0.999)), fmtLatency(h.maximum()))
		fmt.Fprintf(w, "\nLatency from Produce to delivery report (%s delivered records):\n", perfCount(int64(h.count())))
		h.write(w, 40)
	}
	if len(r.Failures) > 0 {
		fmt.Fprintln(w, "\nFailures by reason:")
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  %9s  %s\n", perfCount(f.Count), f.Reason)
		}
	}
}
