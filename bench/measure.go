package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// window measures one timed stretch inside a child process: wall time, CPU
// time (user+sys of the whole process, every thread — librdkafka's too),
// and Go heap allocations.
type window struct {
	start   time.Time
	ru      syscall.Rusage
	mallocs uint64
	bytes   uint64
	prof    *os.File
	allocs  string // where to write the allocation profile at the end
}

// begin starts the window; with a profile path, it also starts the CPU
// profile, which then covers exactly the window.
func (w *window) begin(profile string) error {
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		w.prof = f
		w.allocs = strings.TrimSuffix(profile, ".pprof") + ".allocs.pprof"
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w.mallocs, w.bytes = ms.Mallocs, ms.TotalAlloc
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &w.ru); err != nil {
		return fmt.Errorf("getrusage: %w", err)
	}
	w.start = time.Now()
	return nil
}

// end closes the window at time t (the moment the last record was done)
// and fills r's wall, CPU and allocation fields.
func (w *window) end(t time.Time, r *result) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if w.prof != nil {
		pprof.StopCPUProfile()
		w.prof.Close()
		if f, err := os.Create(w.allocs); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	r.WallSec = t.Sub(w.start).Seconds()
	r.CPUSec = cpuSeconds(&ru) - cpuSeconds(&w.ru)
	r.Allocs = ms.Mallocs - w.mallocs
	r.AllocBytes = ms.TotalAlloc - w.bytes
}

func cpuSeconds(ru *syscall.Rusage) float64 {
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds()
}

// peakRSS is this process's peak resident set size (VmHWM). Not
// ru_maxrss: Linux carries that across fork and exec, so every child would
// report at least the harness's own peak.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
