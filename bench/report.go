package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// row is one client on one workload over every run: medians of each
// measure, taken separately.
type row struct {
	Client, Workload string
	Runs             int // runs that measured something
	Records          int64
	RecPerSec        float64
	MBPerSec         float64
	CPUSec           float64
	CPUUsPerRec      float64
	PeakRSSBytes     float64
	AllocsPerRec     float64
	P50, P99, P999   float64 // ms; NaN when not measured
	Skipped, Failed  string
	Settings         string
}

// medians folds the runs of each client and workload into one row, in
// report order (workloads, then clients as in clientOrder).
func medians(rs []result) []row {
	type key struct{ c, w string }
	groups := map[key][]result{}
	for _, r := range rs {
		k := key{r.Client, r.Workload}
		groups[k] = append(groups[k], r)
	}
	var out []row
	for _, w := range workloads {
		for _, c := range clientOrder {
			g := groups[key{c, w.Name}]
			if len(g) == 0 {
				continue
			}
			out = append(out, fold(c, w.Name, g))
		}
	}
	return out
}

func fold(client, wl string, g []result) row {
	r := row{Client: client, Workload: wl, P50: math.NaN(), P99: math.NaN(), P999: math.NaN()}
	var ok []result
	for _, x := range g {
		switch {
		case x.Skipped != "":
			r.Skipped = x.Skipped
		case x.Failed != "":
			r.Failed = x.Failed
		default:
			ok = append(ok, x)
		}
		if r.Settings == "" {
			r.Settings = x.Settings
		}
	}
	r.Runs = len(ok)
	if len(ok) == 0 {
		return r
	}
	r.Failed = "" // some runs worked: report them (the JSON lines keep the failure)
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(ok))
		for i, x := range ok {
			v[i] = f(x)
		}
		return median(v)
	}
	r.Records = ok[0].Records
	r.RecPerSec = med(func(x result) float64 { return x.RecPerSec })
	r.MBPerSec = med(func(x result) float64 { return x.MBPerSec })
	r.CPUSec = med(func(x result) float64 { return x.CPUSec })
	r.CPUUsPerRec = med(func(x result) float64 { return x.CPUUsPerRec })
	r.PeakRSSBytes = med(func(x result) float64 { return float64(x.PeakRSSBytes) })
	r.AllocsPerRec = med(func(x result) float64 { return x.AllocsPerRec })
	if ok[0].P99ms != nil {
		r.P50 = med(func(x result) float64 { return deref(x.P50ms) })
		r.P99 = med(func(x result) float64 { return deref(x.P99ms) })
		r.P999 = med(func(x result) float64 { return deref(x.P999ms) })
	}
	return r
}

func deref(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// find returns the row of client on workload.
func find(rows []row, client, wl string) (row, bool) {
	for _, r := range rows {
		if r.Client == client && r.Workload == wl {
			return r, r.Runs > 0
		}
	}
	return row{}, false
}

// printTable writes the rows for a terminal.
func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tclient\trec/s\tMB/s\tCPU µs/rec\tpeak RSS MiB\tallocs/rec\tp50 ms\tp99 ms\tp999 ms\t")
	for _, r := range rows {
		switch {
		case r.Runs == 0 && r.Skipped != "":
			fmt.Fprintf(tw, "%s\t%s\tskipped\t\t\t\t\t\t\t\t\n", r.Workload, r.Client)
		case r.Runs == 0:
			fmt.Fprintf(tw, "%s\t%s\tFAILED\t\t\t\t\t\t\t\t\n", r.Workload, r.Client)
		default:
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.1f\t%.2f\t%.0f\t%.2f\t%s\t%s\t%s\t\n", r.Workload, r.Client,
				r.RecPerSec, r.MBPerSec, r.CPUUsPerRec, r.PeakRSSBytes/(1<<20), r.AllocsPerRec, ms(r.P50), ms(r.P99), ms(r.P999))
		}
	}
	tw.Flush()
}

func ms(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return fmt.Sprintf("%.2f", v)
}

// ratio is a/b as "1.23×", or "" when either is missing.
func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 || a == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// markdownTable is the report's main table: every measure with its ratio
// to franz-go on the same workload in the same runs.
func markdownTable(rows []row) string {
	var b strings.Builder
	b.WriteString("| workload | client | rec/s | vs franz-go | MB/s | CPU µs/rec | vs franz-go | peak RSS MiB | allocs/rec | p50 ms | p99 ms | p99 vs franz-go | p999 ms |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rows {
		if r.Runs == 0 {
			why := "failed: " + oneLine(r.Failed)
			if r.Skipped != "" {
				why = "skipped: " + oneLine(r.Skipped)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | | | | | | | | | | |\n", r.Workload, r.Client, why)
			continue
		}
		f, ok := find(rows, "franz-go", r.Workload)
		if !ok {
			f = row{RecPerSec: math.NaN(), CPUUsPerRec: math.NaN(), P99: math.NaN()}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.1f | %.2f | %s | %.0f | %.2f | %s | %s | %s | %s |\n",
			r.Workload, bold(r.Client), human(r.RecPerSec), ratio(r.RecPerSec, f.RecPerSec), r.MBPerSec,
			r.CPUUsPerRec, ratio(r.CPUUsPerRec, f.CPUUsPerRec), r.PeakRSSBytes/(1<<20), r.AllocsPerRec,
			ms(r.P50), ms(r.P99), ratio(r.P99, f.P99), ms(r.P999))
	}
	return b.String()
}

func bold(client string) string {
	if client == "keel" {
		return "**keel**"
	}
	return client
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// human writes a rate with k or M.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f k", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// target is one of issue 6's targets, checked against the medians.
type target struct {
	What, Measured string
	Met            bool
	Known          bool
}

func targets(rows []row) []target {
	var out []target
	get := func(c, w string) (row, bool) { return find(rows, c, w) }
	k, kok := get("keel", "produce-100B")
	f, fok := get("franz-go", "produce-100B")
	if kok && fok {
		out = append(out,
			target{"produce 100 B: keel rec/s ≥ 1.0× franz-go", fmt.Sprintf("%.2f×", k.RecPerSec/f.RecPerSec), k.RecPerSec >= f.RecPerSec, true},
			target{"produce 100 B: keel CPU per record ≤ 1.0× franz-go", fmt.Sprintf("%.2f×", k.CPUUsPerRec/f.CPUUsPerRec), k.CPUUsPerRec <= f.CPUUsPerRec, true})
	}
	if kc, ok := get("keel", "consume-100B"); ok {
		if fc, ok := get("franz-go", "consume-100B"); ok {
			out = append(out, target{"consume: keel rec/s ≥ 1.0× franz-go", fmt.Sprintf("%.2f×", kc.RecPerSec/fc.RecPerSec), kc.RecPerSec >= fc.RecPerSec, true})
		}
	}
	if kl, ok := get("keel", "latency-20k"); ok {
		if fl, ok := get("franz-go", "latency-20k"); ok {
			out = append(out, target{"p99 latency at 20k rec/s: keel ≤ franz-go", fmt.Sprintf("%.2f ms vs %.2f ms", kl.P99, fl.P99), kl.P99 <= fl.P99, true})
		}
	}
	if c, ok := get("ceiling", "produce-100B"); ok && kok {
		out = append(out, target{"produce 100 B: keel ≥ 70% of the wire ceiling", fmt.Sprintf("%.0f%%", 100*k.RecPerSec/c.RecPerSec), k.RecPerSec >= 0.7*c.RecPerSec, true})
	}
	return out
}
