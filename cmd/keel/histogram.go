package main

import (
	"fmt"
	"io"
	"math"
	"math/bits"
	"strings"
	"time"
)

// histogram records durations in fixed log-linear buckets: every power of
// two is split into histSub equal sub-buckets, so a bucket is at most 1/32
// of its values wide and a percentile read from a bucket's midpoint is
// within about 1.6% of the true value, whatever the range — from
// nanoseconds to hours in 1,920 counters, with no allocation per value and
// no dependency. Min, max and the sum are exact.
//
// A histogram is not safe for concurrent use; its owner locks around it.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64 // nanoseconds; float so hours of samples cannot overflow
	min    int64
	max    int64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits // sub-buckets per power of two
	// Values below histSub get one bucket each; each power of two from
	// 2^histSubBits to 2^62 gets histSub buckets.
	histBuckets = (64 - histSubBits) * histSub
)

// histIndex is the bucket of v (v >= 0).
func histIndex(v int64) int {
	u := uint64(v)
	if u < histSub {
		return int(u)
	}
	e := bits.Len64(u) - 1 // u is in [2^e, 2^(e+1))
	shift := e - histSubBits
	return (shift+1)*histSub + int(u>>shift) - histSub
}

// histBounds is bucket i's range [lo, lo+width).
func histBounds(i int) (lo, width int64) {
	if i < histSub {
		return int64(i), 1
	}
	shift := i/histSub - 1
	return int64(histSub+i%histSub) << shift, int64(1) << shift
}

// record adds one duration; negative ones count as zero.
func (h *histogram) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[histIndex(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

func (h *histogram) count() uint64 { return h.n }

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

func (h *histogram) minimum() time.Duration { return time.Duration(h.min) }
func (h *histogram) maximum() time.Duration { return time.Duration(h.max) }

// percentile is the value at or below which fraction q (0 to 1) of the
// recorded values lie: the midpoint of the bucket holding that rank,
// clamped to the exact min and max. Zero when nothing was recorded.
func (h *histogram) percentile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	switch {
	case q <= 0:
		return time.Duration(h.min)
	case q >= 1:
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			lo, width := histBounds(i)
			return time.Duration(min(max(lo+width/2, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// histRow is one bar of the printed histogram: values in [lo, hi).
type histRow struct {
	lo, hi time.Duration
	count  uint64
}

// rows regroups the fine buckets into readable 1-2-5 steps (100µs, 200µs,
// 500µs, 1ms, ...) from the step holding the minimum to the one holding the
// maximum. A fine bucket goes to the step holding its midpoint; a fine
// bucket is narrow enough that this blurs a step edge by at most 1/32.
func (h *histogram) rows() []histRow {
	if h.n == 0 {
		return nil
	}
	first, last := histStep(h.min), histStep(h.max)
	out := make([]histRow, last-first+1)
	for i := range out {
		out[i] = histRow{lo: histStepLow(first + i), hi: histStepLow(first + i + 1)}
	}
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		lo, width := histBounds(i)
		mid := min(max(lo+width/2, h.min), h.max)
		out[histStep(mid)-first].count += c
	}
	return out
}

// The 1-2-5 steps: step 3k is 10^k ns, 3k+1 is 2·10^k, 3k+2 is 5·10^k;
// step s covers [histStepLow(s), histStepLow(s+1)). Step 0 starts at 0.
func histStep(v int64) int {
	s := 0
	for time.Duration(v) >= histStepLow(s+1) && s < 3*18 {
		s++
	}
	return s
}

func histStepLow(s int) time.Duration {
	if s <= 0 {
		return 0
	}
	p := int64(1)
	for range s / 3 {
		p *= 10
	}
	return time.Duration(p * [3]int64{1, 2, 5}[s%3])
}

// write prints the histogram as one bar per step, scaled to width
// characters for the fullest step, with the share of values in each.
func (h *histogram) write(w io.Writer, width int) {
	rows := h.rows()
	var most uint64
	for _, r := range rows {
		most = max(most, r.count)
	}
	for _, r := range rows {
		bar := 0
		if most > 0 {
			bar = int(math.Round(float64(r.count) / float64(most) * float64(width)))
		}
		if bar == 0 && r.count > 0 {
			bar = 1 // a non-empty step is never invisible
		}
		fmt.Fprintf(w, "  %8s – %-8s %11s %5.1f%%  %s\n", fmtLatency(r.lo), fmtLatency(r.hi), perfCount(int64(r.count)),
			100*float64(r.count)/float64(h.n), strings.Repeat("█", bar))
	}
}

// fmtLatency prints a latency in the unit that reads best: 850µs, 1.2ms,
// 35ms, 2.1s.
func fmtLatency(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", int64(d))
	case d < time.Millisecond:
		return histTrimZero(fmt.Sprintf("%.1f", float64(d)/1e3)) + "µs"
	case d < time.Second:
		return histTrimZero(fmt.Sprintf("%.2f", float64(d)/1e6)) + "ms"
	default:
		return histTrimZero(fmt.Sprintf("%.2f", d.Seconds())) + "s"
	}
}

// histTrimZero drops trailing zeros of a decimal: "1.50" → "1.5", "2.00" → "2".
func histTrimZero(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
