package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel/keeltest"
	"go.uber.org/goleak"
)

// perfDecodeJSON parses stdout as exactly one JSON object into v.
func perfDecodeJSON(t *testing.T, stdout string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, stdout)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout holds more than one JSON value (%v):\n%s", err, stdout)
	}
}

type perfProduceJSON struct {
	Mode          string             `json:"mode"`
	Records       int64              `json:"records"`
	Delivered     int64              `json:"delivered"`
	Failed        int64              `json:"failed"`
	Bytes         int64              `json:"bytes"`
	DurationSec   float64            `json:"duration_s"`
	RecordsPerSec float64            `json:"records_per_sec"`
	MBPerSec      float64            `json:"mb_per_sec"`
	LatencyMs     map[string]float64 `json:"latency_ms"`
	Histogram     []struct {
		FromMs, ToMs float64
		Count        uint64
	} `json:"histogram"`
	Failures []struct {
		Reason string
		Count  int64
	} `json:"failures"`
	Config map[string]any `json:"config"`
}

type perfConsumeJSON struct {
	Mode          string  `json:"mode"`
	Records       int64   `json:"records"`
	Bytes         int64   `json:"bytes"`
	RecordsPerSec float64 `json:"records_per_sec"`
	FirstRecordMs float64 `json:"first_record_ms"`
}

// The live progress line: forced with --progress (stderr is a pipe here),
// redrawn in place with \r, at least once before the final drawing, each
// with the rate and the p99 latency so far; the rate limit holds.
func TestPerfProduceProgressLine(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("perf", 6))
	start := time.Now()
	r := runBinary(t, nil, "perf", "produce", "-b", cl.Addr(), "-t", "perf", "--records", "20000", "--rate", "10000", "--progress")
	took := time.Since(start)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	draws := strings.Split(r.stderr, "\r")[1:] // what precedes the first \r is not a drawing
	if len(draws) < 2 {
		t.Fatalf("want the progress line drawn at least twice (live, then final), got %d drawings:\n%q", len(draws), r.stderr)
	}
	for i, d := range draws {
		for _, want := range []string{"records", "rec/s", "MB/s", "p50", "p99"} {
			if !strings.Contains(d, want) {
				t.Errorf("drawing %d lacks %q: %q", i, want, d)
			}
		}
	}
	if !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("the progress line is not ended before exit: %q", r.stderr)
	}
	// 20,000 records at 10,000/s cannot take much under 2s; the pacer is
	// by schedule, so allow only timer slack below.
	if took < 1900*time.Millisecond {
		t.Errorf("20,000 records at --rate 10000 took %v: the rate limit was not applied", took)
	}
	for _, want := range []string{"20,000 produced, 20,000 delivered, 0 failed", "throughput", "p99.9", "Latency from Produce to delivery report", "█"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
	t.Logf("took %v; stderr %q", took, r.stderr)

	// perf consume reads them back, directly and as a group.
	c := runBinary(t, nil, "perf", "consume", "-b", cl.Addr(), "-t", "perf", "--records", "20000", "--json")
	if c.code != 0 {
		t.Fatalf("consume exit %d\nstderr:\n%s", c.code, c.stderr)
	}
	var cres perfConsumeJSON
	perfDecodeJSON(t, c.stdout, &cres)
	if cres.Mode != "consume" || cres.Records != 20000 || cres.Bytes != 20000*100 || cres.RecordsPerSec <= 0 || cres.FirstRecordMs <= 0 {
		t.Errorf("consume results %+v", cres)
	}
	if c.stderr != "" {
		t.Errorf("--json without --progress wrote to stderr: %q", c.stderr)
	}
	g := runBinary(t, nil, "perf", "consume", "-b", cl.Addr(), "-t", "perf", "-G", "perf-readers", "--records", "20000")
	if g.code != 0 || !strings.Contains(g.stdout, "records       20,000") || !strings.Contains(g.stdout, `group "perf-readers"`) {
		t.Fatalf("group consume exit %d\nstdout:\n%s\nstderr:\n%s", g.code, g.stdout, g.stderr)
	}
	// The group committed what it read: a second run finds nothing and
	// fails for reading short, after the idle timeout.
	again := runBinary(t, nil, "perf", "consume", "-b", cl.Addr(), "-t", "perf", "-G", "perf-readers", "--records", "1", "--idle-timeout", "2s")
	if again.code != 1 || !strings.Contains(again.stderr, "read 0 of 1 records") {
		t.Fatalf("second group run: exit %d\nstdout:\n%s\nstderr:\n%s", again.code, again.stdout, again.stderr)
	}
}

func TestPerfProduceJSON(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("perf-json", 3))
	const n = 5000
	r := runBinary(t, nil, "perf", "produce", "-b", cl.Addr(), "-t", "perf-json", "--records", "5000", "--record-size", "200",
		"--acks", "1", "-z", "lz4", "--linger", "2ms", "--batch-bytes", "65536", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("--json without --progress wrote to stderr: %q", r.stderr)
	}
	var res perfProduceJSON
	perfDecodeJSON(t, r.stdout, &res)
	if res.Mode != "produce" || res.Records != n || res.Delivered != n || res.Failed != 0 || res.Bytes != n*200 {
		t.Errorf("counts: %+v", res)
	}
	if res.DurationSec <= 0 || res.RecordsPerSec <= 0 || res.MBPerSec <= 0 {
		t.Errorf("rates: %+v", res)
	}
	lat := res.LatencyMs
	for _, k := range []string{"min", "avg", "p50", "p95", "p99", "p999", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_ms lacks %q: %v", k, lat)
		}
	}
	if !(lat["min"] <= lat["p50"] && lat["p50"] <= lat["p95"] && lat["p95"] <= lat["p99"] && lat["p99"] <= lat["p999"] && lat["p999"] <= lat["max"] && lat["max"] > 0) {
		t.Errorf("latency percentiles out of order: %v", lat)
	}
	var inHist uint64
	for _, row := range res.Histogram {
		inHist += row.Count
	}
	if inHist != n {
		t.Errorf("histogram holds %d records, want %d", inHist, n)
	}
	if res.Config["acks"] != "1" || res.Config["codec"] != "lz4" || res.Config["idempotence"] != false || res.Config["batch_bytes"] != float64(65536) {
		t.Errorf("config echo: %v", res.Config)
	}
	if got := cl.HighWatermark("perf-json", 0) + cl.HighWatermark("perf-json", 1) + cl.HighWatermark("perf-json", 2); got != n {
		t.Errorf("the cluster holds %d records, want %d", got, n)
	}
}

// Records that fail are counted with their reason and make the exit status 1.
func TestPerfProduceFailuresExitOne(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("exists", 1))
	start := time.Now()
	r := runBinary(t, nil, "perf", "produce", "-b", cl.Addr(), "-t", "does-not-exist", "--records", "300", "--delivery-timeout", "3s", "--json")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	var res perfProduceJSON
	perfDecodeJSON(t, r.stdout, &res)
	if res.Records != 300 || res.Failed != 300 || res.Delivered != 0 {
		t.Errorf("counts: records %d, delivered %d, failed %d", res.Records, res.Delivered, res.Failed)
	}
	if len(res.Failures) == 0 || res.Failures[0].Count != 300 || !strings.Contains(res.Failures[0].Reason, "does-not-exist") {
		t.Errorf("failure reasons: %+v", res.Failures)
	}
	if !strings.Contains(r.stderr, "300 of 300 records failed") {
		t.Errorf("stderr: %q", r.stderr)
	}
	t.Logf("failed in %v: %s", time.Since(start), res.Failures[0].Reason)

	// perf consume of a missing topic says so, up front.
	c := runBinary(t, nil, "perf", "consume", "-b", cl.Addr(), "-t", "does-not-exist", "--records", "1")
	if c.code != 1 || !strings.Contains(c.stderr, `topic "does-not-exist" does not exist`) {
		t.Errorf("consume of a missing topic: exit %d\n%s", c.code, c.stderr)
	}

	// The text summary lists them too.
	txt := runBinary(t, nil, "perf", "produce", "-b", cl.Addr(), "-t", "does-not-exist", "--records", "10", "--delivery-timeout", "3s")
	if txt.code != 1 || !strings.Contains(txt.stdout, "Failures by reason:") || !strings.Contains(txt.stdout, "10 failed") {
		t.Errorf("text failure summary: exit %d\n%s", txt.code, txt.stdout)
	}
}

func TestPerfEmbeddedAndBadFlags(t *testing.T) {
	r := runBinary(t, nil, "perf", "produce", "--embedded", "-t", "bench", "--records", "20000", "--json")
	if r.code != 0 {
		t.Fatalf("embedded produce exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	var res perfProduceJSON
	perfDecodeJSON(t, r.stdout, &res)
	if res.Delivered != 20000 {
		t.Errorf("embedded produce delivered %d", res.Delivered)
	}
	c := runBinary(t, nil, "perf", "consume", "--embedded", "-t", "bench", "--records", "20000", "--json")
	if c.code != 0 {
		t.Fatalf("embedded consume exit %d\nstderr:\n%s", c.code, c.stderr)
	}
	var cres perfConsumeJSON
	perfDecodeJSON(t, c.stdout, &cres)
	if cres.Records != 20000 {
		t.Errorf("embedded consume read %d", cres.Records)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"perf"}, "Usage: keel perf produce|consume"},
		{[]string{"perf", "bogus"}, `unknown mode "bogus"`},
		{[]string{"perf", "produce", "--records", "5"}, "no topic"},
		{[]string{"perf", "produce", "-t", "x"}, "--records N or --duration D"},
		{[]string{"perf", "produce", "-t", "x", "--records", "5", "--acks", "2"}, `--acks "2"`},
		{[]string{"perf", "produce", "-t", "x", "--records", "5", "-z", "brotli"}, `-z "brotli"`},
		{[]string{"perf", "produce", "-t", "x", "--records", "5", "--acks", "1", "--idempotence"}, "--idempotence needs --acks all"},
		{[]string{"perf", "produce", "-t", "x", "--records", "5", "--rate", "-3"}, "negative"},
		{[]string{"perf", "produce", "-t", "x", "--records", "5", "--record-size", "5000", "--batch-bytes", "4096"}, "does not fit"},
		{[]string{"perf", "consume", "-t", "x", "--records", "5", "--idle-timeout", "0s"}, "--idle-timeout"},
		{[]string{"perf", "produce", "--nope"}, "flag provided but not defined"},
	} {
		r := runBinary(t, nil, tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("keel %s: exit %d, want 2 and %q in stderr:\n%s", strings.Join(tc.args, " "), r.code, tc.want, r.stderr)
		}
	}
	h := runBinary(t, nil, "perf", "produce", "-h")
	if h.code != 0 || !strings.Contains(h.stderr, "Examples:") || !strings.Contains(h.stderr, "--rate") {
		t.Errorf("perf produce -h: exit %d\n%s", h.code, h.stderr)
	}
	u := runBinary(t, nil, "perf", "consume", "-b", "127.0.0.1:1", "-t", "x", "--records", "1")
	if u.code != 1 || !strings.Contains(u.stderr, "cannot reach the cluster") {
		t.Errorf("unreachable broker: exit %d\n%s", u.code, u.stderr)
	}
}

// The pacer keeps to its schedule: with a clock that moves only when it
// sleeps, 2,000 records at 1,000/s end at 2s (less the first interval),
// and it sleeps rarely (it batches sub-millisecond waits).
func TestPerfPacerSchedule(t *testing.T) {
	for _, rate := range []float64{1000, 3, 250_000} {
		now := time.Unix(0, 0)
		sleeps := 0
		p := newPacer(rate)
		p.now = func() time.Time { return now }
		p.sleep = func(_ context.Context, d time.Duration) error { now = now.Add(d); sleeps++; return nil }
		const n = 2000
		for range n {
			if err := p.wait(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		want := time.Duration(float64(n-1) / rate * 1e9)
		if got := now.Sub(time.Unix(0, 0)); math.Abs(float64(got-want)) > float64(pacerSlack) {
			t.Errorf("rate %v: %d records took %v of schedule, want %v", rate, n, got, want)
		}
		if rate > 1000 && sleeps > n/2 {
			t.Errorf("rate %v: slept %d times for %d records; short waits should batch", rate, sleeps, n)
		}
	}
}

// After a stall the pacer resumes at its rate instead of bursting to
// catch up, and an ended ctx stops it at once.
func TestPerfPacerStallAndCancel(t *testing.T) {
	now := time.Unix(0, 0)
	p := newPacer(1000)
	p.now = func() time.Time { return now }
	p.sleep = func(_ context.Context, d time.Duration) error { now = now.Add(d); return nil }
	for range 10 {
		p.wait(context.Background())
	}
	now = now.Add(5 * time.Second) // a stall: 5,000 records' worth
	before := now
	for range 100 {
		p.wait(context.Background())
	}
	if got := now.Sub(before); got < 90*time.Millisecond {
		t.Errorf("after a stall 100 records went in %v: the pacer burst to catch up", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	slow := newPacer(0.5) // one record per 2s
	slow.wait(ctx)        // the first is due at once
	done := make(chan error, 1)
	go func() { done <- slow.wait(ctx) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("wait after cancel: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("wait ignored its ctx")
	}
}

// In process (so -race sees the progress line reading the stats while
// delivery callbacks write them), with a rate low enough for several
// drawings; nothing is left running afterwards.
func TestPerfInProcessProgressNoLeaks(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"perf", "produce", "--embedded", "-t", "p", "--duration", "2500ms", "--rate", "4000", "--progress", "--json"},
		stdio{out: &out, err: &errOut})
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	var res perfProduceJSON
	perfDecodeJSON(t, out.String(), &res)
	// 2.5s at 4,000/s is 10,000 records, give or take the pacer's 1ms of
	// slack and timer noise at either end.
	if res.Records < 9800 || res.Records > 10040 || res.Delivered != res.Records {
		t.Errorf("--duration 2.5s at --rate 4000: %d records, %d delivered", res.Records, res.Delivered)
	}
	if n := strings.Count(errOut.String(), "\r"); n < 3 {
		t.Errorf("%d progress drawings in 2.5s, want 3 (two live, one final): %q", n, errOut.String())
	}

	out.Reset()
	errOut.Reset()
	code = run(ctx, []string{"perf", "consume", "--embedded", "-t", "c", "--records", "30000", "--progress", "-G", "g"},
		stdio{out: &out, err: &errOut})
	if code != 0 || !strings.Contains(out.String(), "records       30,000") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
}
