package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type harnessConfig struct {
	quick, json bool
	runs        int
	clients     string
	workloads   string
	profDir     string
	profile     string
	scale       float64
	timeout     time.Duration
	keelReports string
}

type harness struct {
	cfg       harnessConfig
	self      string // this binary, re-executed for the broker and the clients
	clients   []string
	workloads []workload
	profile   map[string]bool
}

func newHarness(cfg harnessConfig) (*harness, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this binary to re-execute it: %w", err)
	}
	h := &harness{cfg: cfg, self: self, profile: map[string]bool{}}
	if cfg.quick && !flagSet("runs") {
		h.cfg.runs = 1
	}
	if h.cfg.runs < 1 {
		return nil, fmt.Errorf("-runs %d: need at least 1", h.cfg.runs)
	}
	if r := cfg.keelReports; r != "channel" && r != "callback" {
		return nil, fmt.Errorf("-keel-reports %q: use channel or callback", r)
	}
	if cfg.scale <= 0 {
		return nil, fmt.Errorf("-scale %v: must be positive", cfg.scale)
	}
	if h.cfg.timeout <= 0 {
		h.cfg.timeout = 5 * time.Minute
		if cfg.quick {
			h.cfg.timeout = 45 * time.Second
		}
	}
	for _, c := range splitList(cfg.clients) {
		if _, err := lookupClient(c); err != nil && c != "ceiling" {
			return nil, err
		}
		h.clients = append(h.clients, c)
	}
	for _, n := range splitList(cfg.workloads) {
		w, ok := findWorkload(n)
		if !ok {
			return nil, fmt.Errorf("unknown workload %q (known: %s)", n, workloadNames())
		}
		h.workloads = append(h.workloads, w)
	}
	if len(h.clients) == 0 || len(h.workloads) == 0 {
		return nil, errors.New("nothing to run: -clients and -workloads must name at least one each")
	}
	for _, c := range splitList(cfg.profile) {
		h.profile[c] = true
	}
	if cfg.profDir != "" {
		if err := os.MkdirAll(cfg.profDir, 0o755); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// records is the workload's record count in this mode.
func (h *harness) records(w workload) int {
	n := w.Records
	if h.cfg.quick {
		n = w.Quick
	}
	return max(1, int(float64(n)*h.cfg.scale))
}

// runAll runs every run, workload and client. Runs alternate the client
// order (forward, then backward), so no client always goes first or last
// on a machine that warms up or gets busier.
func (h *harness) runAll(ctx context.Context) ([]result, error) {
	var all []result
	enc := json.NewEncoder(os.Stdout)
	for run := 1; run <= h.cfg.runs; run++ {
		order := slices.Clone(h.clients)
		if run%2 == 0 {
			slices.Reverse(order)
		}
		for _, w := range h.workloads {
			for _, c := range order {
				if err := ctx.Err(); err != nil {
					return all, err
				}
				r := h.measure(ctx, run, c, w)
				all = append(all, r)
				h.progress(r)
				if h.cfg.json {
					enc.Encode(r)
				}
			}
		}
	}
	return all, nil
}

func (h *harness) progress(r result) {
	switch {
	case r.Skipped != "":
		fmt.Fprintf(os.Stderr, "run %d %-17s %-18s skipped: %s\n", r.Run, r.Workload, r.Client, r.Skipped)
	case r.Failed != "":
		fmt.Fprintf(os.Stderr, "run %d %-17s %-18s FAILED: %s\n", r.Run, r.Workload, r.Client, r.Failed)
	default:
		fmt.Fprintf(os.Stderr, "run %d %-17s %-18s %10.0f rec/s %7.1f MB/s cpu %5.2fs rss %4d MiB allocs/rec %5.2f broker cpu %5.2fs%s\n",
			r.Run, r.Workload, r.Client, r.RecPerSec, r.MBPerSec, r.CPUSec, r.PeakRSSBytes>>20, r.AllocsPerRec, r.BrokerCPUSec, latencyNote(r))
	}
}

func latencyNote(r result) string {
	if r.P99ms == nil {
		return ""
	}
	return fmt.Sprintf(" p50 %.2fms p99 %.2fms p999 %.2fms", *r.P50ms, *r.P99ms, *r.P999ms)
}

// measure runs one client on one workload: a fresh broker, the prefill if
// the workload consumes, the client in its own process.
func (h *harness) measure(ctx context.Context, run int, client string, w workload) result {
	r := result{Client: client, Workload: w.Name, Run: run}
	if client == "ceiling" {
		if w.Kind == kindLatency {
			r.Skipped = "not applicable: the ceiling has no produce call to time"
			return r
		}
		if w.brokers() > 1 || !w.runs(client) {
			r.Skipped = "not run on this workload (the ceiling replays to one broker)"
			return r
		}
	} else if !w.runs(client) {
		r.Skipped = "not run on this workload (it compares " + strings.Join(w.Only, " and ") + ")"
		return r
	} else {
		impl, _ := lookupClient(client)
		switch {
		case impl.unavailable != "":
			r.Skipped = impl.unavailable
			return r
		case w.Kind == kindConsume && impl.consumeAs != "":
			r.Skipped = "consumes with " + impl.consumeAs + " (idempotence is a producer setting)"
			return r
		}
	}

	s := spec{
		Client: client, Workload: w.Name, Kind: w.Kind,
		Topic:      fmt.Sprintf("bench-%s-%s-r%d", w.Name, client, run),
		Group:      fmt.Sprintf("bench-%s-r%d", client, run),
		Records:    h.records(w),
		ValueBytes: w.ValueBytes,
		Partitions: w.partitions(),
		Goroutines: w.goroutines(),
		Keyed:      w.Keyed,
		Codec:      w.Codec,
		Rate:       w.Rate,
		Linger:     benchSettings.Linger,
		Settings:   benchSettings,
		Timeout:    h.cfg.timeout,

		KeelReports: h.cfg.keelReports,
	}
	if w.Kind == kindLatency {
		s.Linger = benchSettings.LatencyLinger
	}
	if h.cfg.profDir != "" && h.profile[client] {
		s.CPUProfile = filepath.Join(h.cfg.profDir, fmt.Sprintf("%s-%s-r%d.pprof", client, w.Name, run))
	}

	bctx, cancel := context.WithTimeout(ctx, h.cfg.timeout+time.Minute)
	defer cancel()
	b, err := startBroker(bctx, h.self, s.Topic, w.brokers(), w.partitions(), w.Kind != kindConsume)
	if err != nil {
		r.Failed = err.Error()
		return r
	}
	s.Broker = b.addr
	if w.Kind == kindConsume {
		fill := prefill
		if w.brokers() > 1 {
			fill = prefillCluster
		}
		if err := fill(bctx, s); err != nil {
			b.kill()
			r.Failed = err.Error()
			return r
		}
	}
	cpu0 := b.cpuSeconds()
	r = h.runChild(bctx, s)
	r.BrokerCPUSec = b.cpuSeconds() - cpu0
	r.Run = run
	st, err := b.stop()
	if err != nil && r.Failed == "" {
		r.Failed = "broker: " + err.Error()
	}
	r.WireBytesIn = st.BytesIn
	return r
}

// runChild runs the client process and reads its result; its rusage gives
// the CPU time of the whole process (setup and close included).
func (h *harness) runChild(ctx context.Context, s spec) result {
	r := result{Client: s.Client, Workload: s.Workload}
	js, _ := json.Marshal(s)
	cmd := exec.CommandContext(ctx, h.self, "-role=client", "-spec="+string(js))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &prefixWriter{prefix: "  [" + s.Client + "] "}
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	line := bytes.TrimSpace(out.Bytes())
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if jerr := json.Unmarshal(line, &r); jerr != nil {
		r.Failed = fmt.Sprintf("the client process gave no result (%v; exit: %v)", jerr, err)
	} else if err != nil && r.Failed == "" {
		r.Failed = "client process: " + err.Error()
	}
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.CPUTotalSec = cpuSeconds(ru)
		}
	}
	return r
}

// prefixWriter passes a child's stderr through, marking whose it is.
type prefixWriter struct {
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(os.Stderr, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
