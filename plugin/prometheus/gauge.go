package prometheus

import "github.com/prometheus/client_golang/prometheus"

type gaugeSetter struct{ v *prometheus.GaugeVec }

func (g *gaugeSetter) set(x float64, labels ...string) { g.v.WithLabelValues(labels...).Set(x) }
func (g *gaugeSetter) delete(labels ...string)         { g.v.DeleteLabelValues(labels...) }
