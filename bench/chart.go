package main

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// clientColors keeps each client's colour the same in every chart.
var clientColors = map[string]color.Color{
	"keel":              color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"franz-go":          color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	"sarama":            color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	"sarama-idempotent": color.RGBA{R: 0x98, G: 0xdf, B: 0x8a, A: 0xff},
	"kafka-go":          color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	"confluent":         color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	"ceiling":           color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
}

// groupedBars draws one group of bars per workload and one bar per client,
// value(row) high; NaN values leave a gap.
func groupedBars(rows []row, wls []string, clients []string, title, ylabel string, value func(row) float64, file string) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Legend.Left = false
	width := vg.Points(84 / float64(max(1, len(clients))))
	top := 0.0
	for i, c := range clients {
		vals := make(plotter.Values, len(wls))
		any := false
		for j, w := range wls {
			vals[j] = 0
			if r, ok := find(rows, c, w); ok {
				if v := value(r); !math.IsNaN(v) && !math.IsInf(v, 0) {
					vals[j] = v
					top = max(top, v)
					any = true
				}
			}
		}
		if !any {
			continue
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return err
		}
		bars.Color = clientColors[c]
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(len(clients)-1)/2)
		p.Add(bars)
		p.Legend.Add(c, bars)
	}
	p.NominalX(wls...)
	p.Add(plotter.NewGrid())
	p.Y.Min, p.Y.Max = 0, top*1.35 // room for the legend
	if err := p.Save(10*vg.Inch, 5*vg.Inch, file); err != nil {
		return fmt.Errorf("saving %s: %w", file, err)
	}
	return nil
}

// charts writes the report's two PNGs and returns their file names.
func charts(rows []row, dir string) ([]string, error) {
	var thr []string // throughput workloads
	for _, w := range workloads {
		if w.Kind != kindLatency {
			thr = append(thr, w.Name)
		}
	}
	vsFranz := func(r row) float64 {
		f, ok := find(rows, "franz-go", r.Workload)
		if !ok || f.RecPerSec == 0 {
			return math.NaN()
		}
		return r.RecPerSec / f.RecPerSec
	}
	var clients, noCeiling []string
	for _, c := range clientOrder {
		clients = append(clients, c)
		if c != "ceiling" {
			noCeiling = append(noCeiling, c)
		}
	}
	files := []string{"bench-throughput.png", "bench-cpu.png", "bench-latency.png"}
	if err := groupedBars(rows, thr, noCeiling, "Records per second, relative to franz-go (higher is better)", "× franz-go", vsFranz, dir+"/"+files[0]); err != nil {
		return nil, err
	}
	cpuVsFranz := func(r row) float64 {
		f, ok := find(rows, "franz-go", r.Workload)
		if !ok || f.CPUUsPerRec == 0 {
			return math.NaN()
		}
		return r.CPUUsPerRec / f.CPUUsPerRec
	}
	if err := groupedBars(rows, thr, noCeiling, "Client CPU time per record, relative to franz-go (lower is better)", "× franz-go", cpuVsFranz, dir+"/"+files[1]); err != nil {
		return nil, err
	}
	// Latency: one group per percentile.
	p := plot.New()
	p.Title.Text = "Produce-to-report latency at 20k records/s, linger 0 (lower is better)"
	p.Y.Label.Text = "ms"
	p.Legend.Top = true
	p.Legend.Left = true
	width := vg.Points(84 / float64(len(noCeiling)))
	top := 0.0
	for i, c := range noCeiling {
		r, ok := find(rows, c, "latency-20k")
		if !ok || math.IsNaN(r.P99) {
			continue
		}
		top = max(top, r.P999)
		bars, err := plotter.NewBarChart(plotter.Values{r.P50, r.P99, r.P999}, width)
		if err != nil {
			return nil, err
		}
		bars.Color = clientColors[c]
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(len(noCeiling)-1)/2)
		p.Add(bars)
		p.Legend.Add(c, bars)
	}
	p.NominalX("p50", "p99", "p999")
	p.Add(plotter.NewGrid())
	p.Y.Min, p.Y.Max = 0, top*1.1
	if err := p.Save(10*vg.Inch, 5*vg.Inch, dir+"/"+files[2]); err != nil {
		return nil, err
	}
	return files, nil
}
