package prometheus

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// New makes the metrics and registers them. If reg already holds keel's
// metrics with the same labels (a second client on one registry), New
// uses those: both clients then add to the same series, which is what a
// program with two clients of one cluster usually wants. Give each client
// ConstLabels to keep them apart instead. Any other registration failure
// (a foreign metric with a keel_ name and other labels) is returned.
func New(opts ...Option) (*Metrics, error) {
	c := config{reg: prometheus.DefaultRegisterer, buckets: defaultBuckets}
	for _, o := range opts {
		o(&c)
	}
	m := &Metrics{partitions: c.partitions}
	m.lagState.init()
	r := registrar{reg: c.reg, labels: c.constLabel}
	partLabels := []string{"group", "topic"}
	consLabels := []string{"topic"}
	if c.partitions {
		partLabels = append(partLabels, "partition")
		consLabels = append(consLabels, "partition")
	}

	m.producerRecords = r.counter("keel_producer_records_total", "Produced records by outcome (delivered, not_written, outcome_unknown), counted at their report.", "topic", "outcome")
	m.producerBatches = r.counter("keel_producer_batches_total", "Record batches written in produce requests, resends included.", "topic")
	m.producerRetries = r.counter("keel_producer_retries_total", "Record batches written again after a failed attempt.", "topic")
	m.producerBatchErr = r.counter("keel_producer_batch_errors_total", "Produce attempts of a batch that failed (it may be retried).", "topic")
	m.producerWire = r.counter("keel_producer_wire_bytes_total", "Bytes of record batches on the wire (compressed).", "topic")
	m.bufferedRecords = r.gauge("keel_producer_buffered_records", "Records handed to the producer and not reported yet.", "topic")
	m.bufferedBytes = r.gauge("keel_producer_buffered_bytes", "Bytes the buffer budget counts for records not reported yet.", "topic")

	m.requestDuration = r.histogram("keel_broker_request_duration_seconds", "Time from a request's write ending to its response read (includes a fetch's max wait).", c.buckets, "broker", "api")
	m.requestErrors = r.counter("keel_broker_request_errors_total", "Requests whose write failed (the connection closed).", "broker", "api")
	m.connects = r.counter("keel_broker_connects_total", "Connections established to a broker (after TLS, ApiVersions and SASL).", "broker")
	m.disconnects = r.counter("keel_broker_disconnects_total", "Broker connections that closed, keel's own closes included.", "broker")
	m.throttle = r.counter("keel_broker_throttle_seconds_total", "Time brokers asked this client to hold back (quotas).", "broker", "api")
	m.throttleEvents = r.counter("keel_broker_throttles_total", "Responses that throttled this client.", "broker", "api")

	m.consumerRecords = r.counter("keel_consumer_records_total", "Records fetched and handed on to handlers or Poll.", consLabels...)
	m.consumerBytes = r.counter("keel_consumer_bytes_total", "Decompressed bytes of records fetched.", "topic")
	m.lag = r.gauge("keel_consumer_lag", "High watermark minus the next offset to process (records not processed yet).", partLabels...)
	m.committedLag = r.gauge("keel_consumer_committed_lag", "High watermark minus the committed offset: what admin and `keel groups lag` show.", partLabels...)

	m.rebalances = r.counter("keel_group_rebalances_total", "Rebalances of this member that ended, by result (ok, error).", "group", "result")
	m.rebalanceDuration = r.histogram("keel_group_rebalance_duration_seconds", "How long each rebalance of this member took.", c.buckets, "group")
	m.commits = r.counter("keel_commits_total", "Offset commits by result (ok, error).", "group", "result")
	m.commitDuration = r.histogram("keel_commit_duration_seconds", "How long each offset commit took.", c.buckets, "group")
	m.handlerDuration = r.histogram("keel_handler_duration_seconds", "How long each handler call took.", c.buckets, "group", "topic")
	m.handlerErrors = r.counter("keel_handler_errors_total", "Handler calls that returned an error.", "group", "topic")
	m.stalls = r.counter("keel_stalls_total", "Stalls keel detected (kind: handler, partition, produce).", "kind", "topic")
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// registrar registers collectors, adopting ones already registered.
type registrar struct {
	reg    prometheus.Registerer
	labels prometheus.Labels
	err    error
}

func register[C prometheus.Collector](r *registrar, c C) C {
	if err := r.reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		if r.err == nil {
			r.err = err
		}
	}
	return c
}

func (r *registrar) counter(name, help string, labels ...string) *prometheus.CounterVec {
	return register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: r.labels}, labels))
}

func (r *registrar) gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	return register(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: r.labels}, labels))
}

func (r *registrar) histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: r.labels}, labels))
}
