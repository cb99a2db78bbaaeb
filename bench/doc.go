package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// The full mode rewrites the part of docs/BENCHMARKS.md between these
// markers and leaves the rest (keel's own microbenchmarks) alone.
const (
	beginMarker = "<!-- cross-client:begin (written by go run ./bench; edit bench/doc.go instead) -->"
	endMarker   = "<!-- cross-client:end -->"
)

// writeReport writes the cross-client section of doc and its charts.
func writeReport(h *harness, rs []result, doc string, took time.Duration, args []string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	path := filepath.Join(root, doc)
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	rows := medians(rs)
	files, err := charts(rows, filepath.Dir(path))
	if err != nil {
		return err
	}
	section := reportSection(h, rows, files, took, args)
	var out []byte
	if i, j := bytes.Index(old, []byte(beginMarker)), bytes.Index(old, []byte(endMarker)); i >= 0 && j > i {
		out = append(append(append([]byte{}, old[:i]...), section...), old[j+len(endMarker):]...)
	} else {
		return fmt.Errorf("%s has no %q ... %q markers to write between", path, beginMarker, endMarker)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s and %s\n", path, strings.Join(files, ", "))
	return nil
}

func reportSection(h *harness, rows []row, files []string, took time.Duration, args []string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("%s\n", beginMarker)
	w("## Side by side: keel, franz-go, sarama, kafka-go, confluent-kafka-go\n\n")
	w("Measured %s with\n\n```\ngo run ./bench %s\n```\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), strings.Join(args, " "))
	w("(%d runs, client order alternating between runs; every figure is the median of the runs; ", h.cfg.runs)
	w("the whole run took %v.) Ratios compare with franz-go on the same workload in the same runs.\n\n", took.Round(time.Second))

	w("### Targets (issue 6)\n\n| target | measured | |\n|---|---|---|\n")
	for _, t := range targets(rows) {
		mark := "missed"
		if t.Met {
			mark = "met"
		}
		w("| %s | %s | %s |\n", t.What, t.Measured, mark)
	}
	w("\n### Results\n\n")
	w("%s\n", markdownTable(rows))
	for _, f := range files {
		w("![%s](%s)\n\n", strings.TrimSuffix(f, ".png"), f)
	}

	w("### Machine\n\n")
	for _, l := range machine() {
		w("- %s\n", l)
	}
	w("\nThe broker (kfake) runs on the same cores as the client measured: it competes for CPU with it, ")
	w("as a real broker on the same host would. The ceiling row shows how many records the broker accepts ")
	w("when the client does no work at all; what a client reaches is bounded by it.\n\n")

	w("### Versions\n\n")
	for _, l := range versions() {
		w("- %s\n", l)
	}

	w("\n### What is measured, and how\n\n")
	w("- **Isolation.** Every measurement starts a fresh broker process (franz-go's kfake, one broker, a new topic of %d partitions) on a free loopback port and runs one client alone in its own process (the bench binary re-executed), so CPU time, memory and garbage collection are the client's own. Produce workloads use kfake's `BlackholeProduce`: it checks each batch (CRC, idempotent sequence numbers) and assigns offsets but does not keep the records, so 1 GB workloads do not fill the broker's memory. The workloads of issue 11 (`produce-100B-keyed-16g`, `produce-1KB-keyed-64g`, `consume-100B-64p`) run a cluster of 3 brokers in that process with a topic of 64 partitions, compare keel with franz-go only, and are prefilled (consume) with franz-go, uncompressed as the workload says, since a replay to one broker would meet partitions it does not lead. `consume-100B-64p` reads 5 M records (about 8 MB per partition), so that its window is seconds of steady fetching rather than the records of the first fetch round. kfake serves every broker of a cluster from one goroutine, so the broker's CPU (`broker_cpu_sec` in the JSON, over the client process's life) shows when a client is bounded by the broker's core rather than its own.\n", benchSettings.Partitions)
	w("- **Time window.** Before the window opens each producer sends %d records and waits for their reports (connections, metadata, producer id, pools ready). The window runs from the first produce call to the last delivery report. For consume it opens once a fifth of the records reached the application and closes at the last one, so that joining the group and the records a client fetched ahead before that point are not counted (rec/s, CPU and allocations per record are over the records in the window; `startup_ms` in the JSON is creation to first record); the ceiling's window opens the same way.\n", warmRecords)
	w("- **CPU** is user+sys time of the whole client process over the window (`getrusage`, every thread — librdkafka's too). **Peak RSS** is the process's high-water mark (`VmHWM`) at the end. **Allocations** are Go heap allocations in the window (`runtime.MemStats.Mallocs`); librdkafka's C allocations are not counted. Every client's count includes the one message struct the driver allocates per record.\n")
	w("- **Same work for everyone.** acks=all; idempotence on where the client has it (sarama both ways: with idempotence it allows one request in flight per broker; kafka-go has none); linger %v (the latency workload: the least each client allows, 0 or 1 µs); at most %d bytes per batch, with record-count limits raised so bytes decide; the same codec at its default level; null keys (each client's own partitioner for them) except in the keyed workloads, whose records carry one of %d distinct 16-byte keys (each client's default hash partitioner: murmur2 for keel and franz-go) and are produced by 16 or 64 goroutines at once, each taking every 16th or 64th record; values of the size named, %d distinct JSON-like payloads that compress to about a half (lz4) or a third (zstd).\n",
		benchSettings.Linger, benchSettings.MaxBatchBytes, keyCount, benchSettings.Values)
	w("- **Each client's idiomatic asynchronous API**, one produce call per record with a delivery callback or channel: keel `ProduceFunc` with a callback (`-keel-reports channel` measures `Produce` with a buffered delivery channel instead); franz-go `Produce` with a promise; sarama `AsyncProducer` reading Successes and Errors; kafka-go `Writer` with `Async` and `Completion`; confluent `Produce` with reports on `Events()`. Consume uses each client's group API from the earliest offset with auto-commit every 5 s.\n")
	w("- **Latency workload.** %s records at a fixed 20,000 records/s, each timed from just before its produce call to its delivery report; p50/p99/p999 over all records.\n", fmtInt(latencyRecords(h)))
	w("- **Wire ceiling.** Produce requests encoded once with kmsg (no client code; one batch of up to %d bytes per partition) replayed on one connection with 5 in flight as fast as the broker answers them; the consume ceiling fetches like a client but decodes only batch headers. It is not idempotent (the same bytes are replayed), which costs the broker slightly less.\n", benchSettings.MaxBatchBytes)
	w("- **Noise.** The numbers are from one machine at one time; runs alternate the client order and the table shows medians, but a busy machine moves them by tens of percent. `go run ./bench -quick -json` is a quick check (small counts, one run), not a measurement.\n\n")

	w("### Client settings\n\n| client | workload | settings |\n|---|---|---|\n")
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Settings == "" {
			continue
		}
		k := r.Client + "|" + string(kindOf(r.Workload))
		if seen[k] {
			continue
		}
		seen[k] = true
		w("| %s | %s | %s |\n", r.Client, kindOf(r.Workload), strings.ReplaceAll(r.Settings, "|", "/"))
	}
	w("\n%s", endMarker)
	return b.String()
}

func kindOf(wl string) kind {
	w, _ := findWorkload(wl)
	return w.Kind
}

func latencyRecords(h *harness) int {
	w, _ := findWorkload("latency-20k")
	return h.records(w)
}

func fmtInt(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// repoRoot is the directory holding go.work, from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory: run from the keel repository")
		}
		dir = parent
	}
}

// machine describes where the numbers come from.
func machine() []string {
	var out []string
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	out = append(out, fmt.Sprintf("CPU: %s, %d cores visible to Go", cpu, runtime.NumCPU()))
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(v), &kb)
				out = append(out, fmt.Sprintf("RAM: %.1f GiB", float64(kb)/(1<<20)))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		out = append(out, fmt.Sprintf("OS: %s, Linux %s", runtime.GOOS+"/"+runtime.GOARCH, strings.TrimSpace(string(b))))
	}
	out = append(out, "Go: "+runtime.Version())
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		out = append(out, "Load average when the report was written (1, 5, 15 min): "+strings.Join(strings.Fields(string(b))[:3], ", ")+" — other work on the machine shows up here")
	}
	return out
}

// versions lists the clients and the broker as built into this binary.
func versions() []string {
	mods := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			v := d.Version
			if d.Replace != nil {
				v = d.Replace.Version
				if v == "" {
					v = "(local " + d.Replace.Path + ")"
				}
			}
			mods[d.Path] = v
		}
	}
	keel := "this checkout"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		keel = "commit " + strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			keel += " with uncommitted changes"
		}
	}
	get := func(p string) string {
		if v, ok := mods[p]; ok {
			return v
		}
		return "?"
	}
	return []string{
		"keel: " + keel,
		"franz-go (kgo): " + get("github.com/twmb/franz-go"),
		"sarama: " + get("github.com/IBM/sarama"),
		"kafka-go: " + get("github.com/segmentio/kafka-go"),
		"confluent-kafka-go: " + get("github.com/confluentinc/confluent-kafka-go/v2") + " (" + confluentVersion() + ")",
		"broker: kfake " + get("github.com/twmb/franz-go/pkg/kfake"),
	}
}
