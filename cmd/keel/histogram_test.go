package main

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// histExactPercentile is the nearest-rank percentile of sorted values.
func histExactPercentile(sorted []time.Duration, q float64) time.Duration {
	rank := int(float64(len(sorted))*q + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func histWithin(got, want time.Duration, rel float64) bool {
	diff := float64(got - want)
	if diff < 0 {
		diff = -diff
	}
	return diff <= rel*float64(want)+1
}

func TestHistogramPercentilesMatchExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dist := range []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 1µs-100ms", func() time.Duration { return time.Microsecond + time.Duration(rng.Int64N(int64(100*time.Millisecond))) }},
		{"exponential around 2ms", func() time.Duration {
			return time.Duration(float64(2*time.Millisecond) * (0.2 + rng.ExpFloat64()))
		}},
		{"bimodal 300µs and 40ms", func() time.Duration {
			if rng.IntN(100) < 97 {
				return 300*time.Microsecond + time.Duration(rng.Int64N(int64(50*time.Microsecond)))
			}
			return 40*time.Millisecond + time.Duration(rng.Int64N(int64(10*time.Millisecond)))
		}},
		{"tiny values 0-40ns", func() time.Duration { return time.Duration(rng.Int64N(40)) }},
	} {
		t.Run(dist.name, func(t *testing.T) {
			var h histogram
			vals := make([]time.Duration, 50_000)
			var sum time.Duration
			for i := range vals {
				vals[i] = dist.gen()
				sum += vals[i]
				h.record(vals[i])
			}
			slices.Sort(vals)
			if h.count() != uint64(len(vals)) {
				t.Fatalf("count %d, want %d", h.count(), len(vals))
			}
			if h.minimum() != vals[0] || h.maximum() != vals[len(vals)-1] {
				t.Errorf("min/max %v/%v, want exact %v/%v", h.minimum(), h.maximum(), vals[0], vals[len(vals)-1])
			}
			if want := sum / time.Duration(len(vals)); !histWithin(h.mean(), want, 1e-9) {
				t.Errorf("mean %v, want %v", h.mean(), want)
			}
			for _, q := range []float64{0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999} {
				want := histExactPercentile(vals, q)
				// Half a bucket is at most 1/64 of the value.
				if got := h.percentile(q); !histWithin(got, want, 1.0/64+1e-9) {
					t.Errorf("p%v = %v, exact %v (error over 1/64)", q*100, got, want)
				}
			}
			if h.percentile(0) != vals[0] || h.percentile(1) != vals[len(vals)-1] {
				t.Errorf("p0/p100 = %v/%v, want min/max", h.percentile(0), h.percentile(1))
			}
		})
	}
}

func TestHistogramEdgeCases(t *testing.T) {
	var h histogram
	if h.percentile(0.5) != 0 || h.mean() != 0 || h.rows() != nil {
		t.Fatal("an empty histogram should read as zero with no rows")
	}
	h.record(-5 * time.Millisecond) // clock went backwards: counts as 0
	if h.minimum() != 0 || h.maximum() != 0 || h.count() != 1 {
		t.Fatalf("negative value: min %v max %v n %d", h.minimum(), h.maximum(), h.count())
	}

	var one histogram
	one.record(1234567 * time.Nanosecond)
	for _, q := range []float64{0, 0.5, 0.99, 1} {
		if got := one.percentile(q); got != 1234567*time.Nanosecond {
			t.Errorf("single value: p%v = %v", q*100, got)
		}
	}

	var huge histogram
	huge.record(time.Duration(1<<63 - 1))
	huge.record(3 * time.Hour)
	if huge.maximum() != time.Duration(1<<63-1) || !histWithin(huge.percentile(0.5), 3*time.Hour, 1.0/64) {
		t.Fatalf("huge values: max %v p50 %v", huge.maximum(), huge.percentile(0.5))
	}

	// Every bucket index is in range and bounds contain their values.
	for _, v := range []int64{0, 1, 31, 32, 33, 63, 64, 65, 1000, 1 << 40, 1<<62 + 12345, 1<<63 - 1} {
		i := histIndex(v)
		lo, width := histBounds(i)
		if i < 0 || i >= histBuckets || v < lo || v-lo >= width {
			t.Errorf("value %d: bucket %d [%d, +%d)", v, i, lo, width)
		}
	}
}

func TestHistogramRowsAndBars(t *testing.T) {
	var h histogram
	for range 900 {
		h.record(300 * time.Microsecond)
	}
	for range 100 {
		h.record(7 * time.Millisecond)
	}
	rows := h.rows()
	var total uint64
	for i, r := range rows {
		total += r.count
		if i > 0 && r.lo != rows[i-1].hi {
			t.Errorf("row %d starts at %v, previous ends at %v", i, r.lo, rows[i-1].hi)
		}
	}
	if total != 1000 {
		t.Fatalf("rows hold %d values, want 1000", total)
	}
	if rows[0].lo != 200*time.Microsecond || rows[0].count != 900 {
		t.Errorf("first row %+v, want [200µs, 500µs) with 900", rows[0])
	}
	if last := rows[len(rows)-1]; last.lo != 5*time.Millisecond || last.count != 100 {
		t.Errorf("last row %+v, want [5ms, 10ms) with 100", last)
	}
	var buf bytes.Buffer
	h.write(&buf, 40)
	out := buf.String()
	if !strings.Contains(out, strings.Repeat("█", 40)) || !strings.Contains(out, "90.0%") || !strings.Contains(out, "5ms – 10ms") {
		t.Errorf("printed histogram:\n%s", out)
	}
}

func TestHistogramFormatsDurations(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0ns", 850 * time.Microsecond: "850µs", 1200 * time.Microsecond: "1.2ms",
		35 * time.Millisecond: "35ms", 2100 * time.Millisecond: "2.1s", 1500 * time.Nanosecond: "1.5µs",
	} {
		if got := fmtLatency(d); got != want {
			t.Errorf("fmtLatency(%v) = %q, want %q", d, got, want)
		}
	}
}
