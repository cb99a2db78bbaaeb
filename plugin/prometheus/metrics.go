// Package prometheus exposes keel's hooks as Prometheus metrics.
//
//	m := prometheus.New(prometheus.Registerer(reg))
//	client, err := keel.NewClient(keel.SeedBrokers(addr), keel.WithHooks(m))
//
// Every metric is named keel_<area>_<what>; see docs/OBSERVABILITY.md for
// what each means and what to alert on. Per-partition labels are off by
// default (they multiply series by partition count): PartitionLabels turns
// them on for the lag gauges and the consumer record counter.
package prometheus

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Option configures Metrics.
type Option func(*config)

type config struct {
	reg        prometheus.Registerer
	partitions bool
	constLabel prometheus.Labels
	buckets    []float64
}

// Registerer registers the metrics with reg instead of
// prometheus.DefaultRegisterer.
func Registerer(reg prometheus.Registerer) Option { return func(c *config) { c.reg = reg } }

// PartitionLabels adds a partition label to the per-partition metrics
// (lag gauges, consumed records). Off by default to bound cardinality:
// lag is then the sum over a topic's partitions.
func PartitionLabels() Option { return func(c *config) { c.partitions = true } }

// ConstLabels adds labels to every metric. Two clients sharing one
// registry each need a distinct value here (client="orders", say):
// otherwise the second New finds the metrics registered and shares them
// (see New).
func ConstLabels(l prometheus.Labels) Option { return func(c *config) { c.constLabel = l } }

// Buckets sets the histograms' buckets, in seconds (default
// prometheus.DefBuckets extended down to 100µs).
func Buckets(b []float64) Option { return func(c *config) { c.buckets = b } }

var defaultBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics implements keel's hook interfaces; hand it to keel.WithHooks.
// Its methods are safe for concurrent use and do not block.
type Metrics struct {
	partitions bool

	producerRecords  *prometheus.CounterVec // topic, outcome
	producerBatches  *prometheus.CounterVec // topic
	producerRetries  *prometheus.CounterVec // topic
	producerBatchErr *prometheus.CounterVec // topic
	producerWire     *prometheus.CounterVec // topic
	bufferedRecords  *prometheus.GaugeVec   // topic
	bufferedBytes    *prometheus.GaugeVec   // topic

	requestDuration *prometheus.HistogramVec // broker, api
	requestErrors   *prometheus.CounterVec   // broker, api
	connects        *prometheus.CounterVec   // broker
	disconnects     *prometheus.CounterVec   // broker
	throttle        *prometheus.CounterVec   // broker, api
	throttleEvents  *prometheus.CounterVec   // broker, api

	consumerRecords *prometheus.CounterVec // topic[, partition]
	consumerBytes   *prometheus.CounterVec // topic
	lag             *prometheus.GaugeVec   // group, topic[, partition]
	committedLag    *prometheus.GaugeVec   // group, topic[, partition]

	rebalances        *prometheus.CounterVec   // group, result
	rebalanceDuration *prometheus.HistogramVec // group
	commits           *prometheus.CounterVec   // group, result
	commitDuration    *prometheus.HistogramVec // group
	handlerDuration   *prometheus.HistogramVec // group, topic
	handlerErrors     *prometheus.CounterVec   // group, topic
	stalls            *prometheus.CounterVec   // kind, topic

	lagState lagState
	topics   topicCache // per-record producer series by topic
}
