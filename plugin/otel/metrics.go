package otel

import (
	"errors"

	"go.opentelemetry.io/otel/metric"
)

// instruments are the plugin's metrics. The messaging.* ones follow
// OpenTelemetry's messaging semantic conventions; the keel.* ones are the
// Prometheus plugin's metrics under OpenTelemetry names (dots, units in
// the unit, not the name), for what the conventions do not cover.
type instruments struct {
	sent            metric.Int64ObservableCounter // messaging.client.sent.messages
	opDuration      metric.Float64Histogram       // messaging.client.operation.duration (send)
	consumed        metric.Int64Counter           // messaging.client.consumed.messages
	processDuration metric.Float64Histogram       // messaging.process.duration

	// The per-record producer counts are kept in atomics per topic
	// (topicOpts) and observed at collection: an SDK measurement costs
	// about as much as keel's own work on a record, on the goroutine that
	// hands out reports.
	records              metric.Int64ObservableCounter
	batches, retries     metric.Int64Counter
	batchErrors          metric.Int64Counter
	wireBytes            metric.Int64Counter
	bufRecords, bufBytes metric.Int64ObservableUpDownCounter

	reqDuration                                 metric.Float64Histogram
	reqErrors, connects, disconnects, throttles metric.Int64Counter
	throttleTime                                metric.Float64Counter

	consRecords, consBytes metric.Int64Counter
	lag, committedLag      metric.Int64ObservableGauge

	rebalances        metric.Int64Counter
	rebalanceDuration metric.Float64Histogram
	commits           metric.Int64Counter
	commitDuration    metric.Float64Histogram
	stalls            metric.Int64Counter
}

// durationBuckets are the messaging conventions' advised boundaries for
// duration histograms, in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

func (in *instruments) init(m metric.Meter, p *Plugin) error {
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	observed := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	updown := func(name, unit, desc string) metric.Int64ObservableUpDownCounter {
		c, err := m.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	seconds := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		errs = append(errs, err)
		return h
	}
	gauge := func(name, desc string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit("{record}"), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}

	in.sent = observed("messaging.client.sent.messages", "{message}", "Records the producer reported on; error.type is set on those not delivered.")
	in.opDuration = seconds("messaging.client.operation.duration", "Time from a record's Produce call to its report (send), buffering and retries included; with NoTracing only with SendDurations.")
	in.consumed = counter("messaging.client.consumed.messages", "{message}", "Records fetched and handed on to handlers or Poll.")
	in.processDuration = seconds("messaging.process.duration", "How long each handler call (or StartProcess to done) took; error.type is set when it failed.")

	in.records = observed("keel.producer.records", "{record}", "Produced records by reported outcome (keel.outcome: delivered, not_written, outcome_unknown).")
	in.batches = counter("keel.producer.batches", "{batch}", "Record batches written in produce requests, resends included.")
	in.retries = counter("keel.producer.retries", "{batch}", "Record batches written again after a failed attempt.")
	in.batchErrors = counter("keel.producer.batch.errors", "{batch}", "Produce attempts of a batch that failed (it may be retried).")
	in.wireBytes = counter("keel.producer.wire.bytes", "By", "Bytes of record batches on the wire (compressed).")
	in.bufRecords = updown("keel.producer.buffered.records", "{record}", "Records handed to the producer and not reported yet.")
	in.bufBytes = updown("keel.producer.buffered.bytes", "By", "Bytes the buffer budget counts for records not reported yet.")

	in.reqDuration = seconds("keel.broker.request.duration", "Time from a request's write ending to its response read (includes a fetch's max wait).")
	in.reqErrors = counter("keel.broker.request.errors", "{request}", "Requests whose write failed (the connection closed).")
	in.connects = counter("keel.broker.connects", "{connection}", "Connections established to a broker (after TLS, ApiVersions and SASL).")
	in.disconnects = counter("keel.broker.disconnects", "{connection}", "Broker connections that closed, keel's own closes included.")
	in.throttles = counter("keel.broker.throttles", "{response}", "Responses that throttled this client (quotas).")
	tt, err := m.Float64Counter("keel.broker.throttle.duration", metric.WithUnit("s"), metric.WithDescription("Time brokers asked this client to hold back (quotas)."))
	errs = append(errs, err)
	in.throttleTime = tt

	in.consRecords = counter("keel.consumer.records", "{record}", "Records fetched and handed on to handlers or Poll.")
	in.consBytes = counter("keel.consumer.bytes", "By", "Decompressed bytes of records fetched.")
	in.lag = gauge("keel.consumer.lag", "High watermark minus the next offset to process (records not processed yet).")
	in.committedLag = gauge("keel.consumer.committed_lag", "High watermark minus the committed offset: what admin and `keel groups lag` show.")

	in.rebalances = counter("keel.group.rebalances", "{rebalance}", "Rebalances of this member that ended; error.type is set on failed ones.")
	in.rebalanceDuration = seconds("keel.group.rebalance.duration", "How long each rebalance of this member took.")
	in.commits = counter("keel.group.commits", "{commit}", "Offset commits; error.type is set on failed ones.")
	in.commitDuration = seconds("keel.group.commit.duration", "How long each offset commit took.")
	in.stalls = counter("keel.stalls", "{stall}", "Stalls keel detected (keel.stall.kind: handler, partition, produce).")

	if err := errors.Join(errs...); err != nil {
		return err
	}
	reg, err := m.RegisterCallback(p.observeProduced, in.sent, in.records, in.bufRecords, in.bufBytes)
	if err != nil {
		return err
	}
	p.callbacks = append(p.callbacks, reg)
	reg, err = m.RegisterCallback(p.observeLag, in.lag, in.committedLag)
	if err != nil {
		return errors.Join(err, p.Close())
	}
	p.callbacks = append(p.callbacks, reg)
	return nil
}
