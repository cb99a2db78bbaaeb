package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/keel-go/keel"
)

const perfConsumeUsage = `
Usage: keel perf consume -t TOPIC [-G GROUP] (--records N | --duration D) [flags]

Reads TOPIC from the beginning — every partition directly, or as a member of
GROUP with -G (which commits what it read) — and reports records, rec/s,
MB/s and the time from the start to the first record. It stops after N
records, after D, or when nothing arrived for --idle-timeout; the idle
timeout ending it short of --records N is a failure (exit status 1).

With --embedded the topic is first filled with --records records (or
--fill in --duration mode) of --record-size bytes, untimed.

Examples:
  keel perf consume -t bench --records 1000000
  keel perf consume -t bench -G perf-readers --duration 10s --json
  keel perf consume --embedded --records 200000
`

func runPerfConsume(ctx context.Context, args []string, io stdio) int {
	fs := newFlagSet("perf consume", perfConsumeUsage, io)
	f := addPerfFlags(fs, io)
	group := fs.String("G", "", "consume as a member of this group (committing what was read) instead of directly")
	idle := fs.Duration("idle-timeout", 10*time.Second, "stop when no record arrived for this long")
	fill := fs.Int64("fill", 100_000, "records to put in the --embedded topic in --duration mode")
	aliases(fs, "records", "messages", "G", "group") // kafka-consumer-perf-test.sh
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(io, "perf consume", "unexpected argument %q", fs.Arg(0))
	}
	if problem := f.check(); problem != "" {
		return usageError(io, "perf consume", "%s", problem)
	}
	if *idle <= 0 {
		return usageError(io, "perf consume", "--idle-timeout %v must be positive", *idle)
	}

	if *f.embedded {
		cluster, err := perfStartEmbedded(f, io)
		if err != nil {
			return failed(io, "perf consume", err)
		}
		defer cluster.Close()
		*f.brokers = perfBrokers(f, cluster)
		n := *f.records
		if n == 0 {
			n = *fill
		}
		if err := perfFill(ctx, *f.brokers, *f.topic, n, *f.recordSize, io); err != nil {
			return failed(io, "perf consume", err)
		}
	}
	metricOpts, metrics, err := startMetrics(*f.metrics, io)
	if err != nil {
		return failed(io, "perf consume", err)
	}
	defer metrics.stop()
	client, err := connect(ctx, *f.brokers, append(metricOpts, keel.ClientID("keel-perf"))...)
	if err != nil {
		return failed(io, "perf consume", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		client.Close(cctx)
	}()
	md, err := client.Metadata(ctx, *f.topic)
	if err != nil {
		return failed(io, "perf consume", err)
	}
	var partitions []int32
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			partitions = append(partitions, p.ID)
		}
	}

	src, err := newPerfSource(client, *f.topic, partitions, *group)
	if err != nil {
		return failed(io, "perf consume", err)
	}
	res, err := perfConsumeLoad(ctx, src, f, *idle, io)
	res.Group = *group
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	if cerr := src.close(cctx); cerr != nil && err == nil {
		err = cerr
	}
	cancel()
	if *f.jsonOut {
		if jerr := perfWriteJSON(io.out, res); jerr != nil {
			return failed(io, "perf consume", jerr)
		}
	} else {
		res.write(io.out)
	}
	if err != nil {
		return failed(io, "perf consume", err)
	}
	if res.idle && *f.records > 0 && res.Records < *f.records {
		return failed(io, "perf consume", fmt.Errorf("read %s of %s records: nothing more arrived for %v (--idle-timeout)",
			perfCount(res.Records), perfCount(*f.records), *idle))
	}
	return exitOK
}

// perfSource reads records: directly from every partition, or as a group
// member that marks what it read (committed on close).
type perfSource struct {
	direct *keel.Consumer
	group  *keel.GroupPoller
}

func newPerfSource(client *keel.Client, topic string, partitions []int32, group string) (*perfSource, error) {
	if group != "" {
		g, err := keel.NewGroupPoller(client, group, []string{topic}, keel.ResetOffset(keel.ResetEarliest))
		if err != nil {
			return nil, err
		}
		return &perfSource{group: g}, nil
	}
	c, err := keel.NewConsumer(client)
	if err != nil {
		return nil, err
	}
	for _, p := range partitions {
		c.Assign(keel.TopicPartition{Topic: topic, Partition: p}, keel.AtEarliest())
	}
	return &perfSource{direct: c}, nil
}

func (s *perfSource) poll(ctx context.Context) ([]*keel.Message, error) {
	if s.group != nil {
		return s.group.Poll(ctx)
	}
	return s.direct.Poll(ctx)
}

// processed marks records as read, so a group commits them.
func (s *perfSource) processed(msgs []*keel.Message) {
	if s.group != nil && len(msgs) > 0 {
		s.group.MarkProcessed(msgs...)
	}
}

func (s *perfSource) close(ctx context.Context) error {
	if s.group != nil {
		return s.group.Close(ctx)
	}
	return s.direct.Close(ctx)
}

// perfConsumeLoad polls until --records, --duration or the idle timeout.
func perfConsumeLoad(ctx context.Context, src *perfSource, f *perfFlags, idle time.Duration, io stdio) (*perfConsumeResult, error) {
	var (
		mu         sync.Mutex
		n, bytes   int64
		first, end time.Time
		idled      bool // nothing arrived for the idle timeout
	)
	start := time.Now()
	var prevN, prevBytes int64
	prevAt := start
	progress := startPerfProgress(io.err, f.showProgress(io), func(elapsed time.Duration) string {
		now := time.Now()
		mu.Lock()
		cn, cb := n, bytes
		mu.Unlock()
		recs, mbs := perfWindowRates(cn-prevN, cb-prevBytes, now.Sub(prevAt), cn, cb, elapsed)
		line := fmt.Sprintf("%5.1fs  %s records  %s rec/s  %.2f MB/s",
			elapsed.Seconds(), perfCount(cn), perfCount(int64(recs)), mbs)
		prevN, prevBytes, prevAt = cn, cb, now
		return line
	})

	loopCtx, stop := f.stopAt(ctx)
	defer stop()
	var problem error
	for *f.records == 0 || n < *f.records {
		pctx, cancel := context.WithTimeout(loopCtx, idle)
		msgs, err := src.poll(pctx)
		cancel()
		if loopCtx.Err() != nil {
			break // duration up or interrupted
		}
		if err != nil && len(msgs) == 0 {
			if errors.Is(err, context.DeadlineExceeded) {
				idled = true // nothing arrived for the idle timeout
				break
			}
			problem = err
			break
		}
		if err != nil {
			problem = err // a partition failed; keep what was read
		}
		now := time.Now()
		if *f.records > 0 {
			msgs = msgs[:min(int64(len(msgs)), *f.records-n)]
		}
		var b int64
		for _, m := range msgs {
			b += int64(len(m.Key) + len(m.Value))
		}
		src.processed(msgs)
		mu.Lock()
		if n == 0 && len(msgs) > 0 {
			first = now
		}
		n += int64(len(msgs))
		bytes += b
		if len(msgs) > 0 {
			end = now
		}
		mu.Unlock()
		if problem != nil {
			break
		}
	}
	progress.stop()

	mu.Lock()
	defer mu.Unlock()
	r := &perfConsumeResult{Mode: "consume", Topic: *f.topic, Records: n, Bytes: bytes, idle: idled}
	if n > 0 {
		r.duration = end.Sub(start)
		r.DurationSec = r.duration.Seconds()
		r.RecordsPerSec = perfRate(n, r.duration)
		r.MBPerSec = perfMBps(bytes, r.duration)
		r.FirstRecordMs = perfMillis(first.Sub(start))
	}
	return r, problem
}

// perfConsumeResult is what --json prints, and what the summary shows.
type perfConsumeResult struct {
	Mode          string  `json:"mode"`
	Topic         string  `json:"topic"`
	Group         string  `json:"group,omitempty"`
	Records       int64   `json:"records"`
	Bytes         int64   `json:"bytes"`
	DurationSec   float64 `json:"duration_s"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	FirstRecordMs float64 `json:"first_record_ms"`

	duration time.Duration
	// idle: the run ended because nothing arrived for the idle timeout,
	// not because --records, --duration or an interrupt ended it.
	idle bool
}

func (r *perfConsumeResult) write(w io.Writer) {
	how := "directly from every partition"
	if r.Group != "" {
		how = fmt.Sprintf("as a member of group %q", r.Group)
	}
	fmt.Fprintf(w, "keel perf consume: topic %q, %s, from the beginning\n\n", r.Topic, how)
	fmt.Fprintf(w, "  records       %s (%.2f MB)\n", perfCount(r.Records), float64(r.Bytes)/1e6)
	fmt.Fprintf(w, "  duration      %v (start to last record)\n", r.duration.Round(time.Millisecond))
	fmt.Fprintf(w, "  throughput    %s rec/s, %.2f MB/s\n", perfCount(int64(r.RecordsPerSec)), r.MBPerSec)
	if r.Records > 0 {
		fmt.Fprintf(w, "  first record  after %s\n", fmtLatency(time.Duration(r.FirstRecordMs*float64(time.Millisecond))))
	}
}

// perfFill puts n records of size bytes into topic for --embedded.
func perfFill(ctx context.Context, brokers, topic string, n int64, size int, io stdio) error {
	client, err := connect(ctx, brokers, keel.ClientID("keel-perf-fill"))
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		client.Close(cctx)
	}()
	p, err := keel.NewProducer(client, keel.Linger(10*time.Millisecond))
	if err != nil {
		return err
	}
	fmt.Fprintf(io.err, "filling %q with %s records of %d bytes…\n", topic, perfCount(n), size)
	payload := perfPayload(size)
	var mu sync.Mutex
	var firstErr error
	report := func(d keel.Delivery) {
		if d.Err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = d.Err
			}
			mu.Unlock()
		}
	}
	for range n {
		if ctx.Err() != nil {
			break
		}
		p.ProduceFunc(ctx, &keel.Message{Topic: topic, Value: payload}, report)
	}
	// Close flushes: every record has its outcome when it returns.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute+10*time.Second)
	defer cancel()
	err = p.Close(cctx)
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return fmt.Errorf("filling the embedded topic: %w", firstErr)
	}
	if err != nil {
		return fmt.Errorf("filling the embedded topic: %w", err)
	}
	return ctx.Err()
}
