package otel

import (
	"fmt"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/keel-go/keel"
)

// Attribute keys keel adds where the conventions have none.
const (
	brokerKey    = attribute.Key("keel.broker")
	apiKey       = attribute.Key("keel.api")
	outcomeKey   = attribute.Key("keel.outcome")
	stallKindKey = attribute.Key("keel.stall.kind")
)

// attrCaches hold measurement options built once per attribute
// combination: hooks run per record and per request, and building an
// attribute.Set sorts and allocates. Combinations are few (topics,
// brokers, groups) and read far more often than added, so sync.Map's
// lock-free reads fit.
type attrCaches struct {
	topics  optCache[topicKey] // per-record producer sets
	brokers optCache[brokerAPI]
	fetched optCache[partKey]
	groups  optCache[groupTopic]
}

type optCache[K interface {
	comparable
	build() any
}] struct {
	m sync.Map // K -> value of build
}

func (c *optCache[K]) get(k K) any {
	if v, ok := c.m.Load(k); ok {
		return v
	}
	v, _ := c.m.LoadOrStore(k, k.build())
	return v
}

func opt(kv ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(kv...))
}

// topicKey's value is topicOpts: every option a produced record needs.
type topicKey string

type topicOpts struct {
	plain                          metric.MeasurementOption // topic only: batches, buffer
	delivered, notWritten, unknown metric.MeasurementOption // keel.producer.records
	// send: messaging.client.sent.messages and operation.duration, by outcome
	sendOK, sendNotWritten, sendUnknown metric.MeasurementOption
}

func (k topicKey) build() any {
	topic := semconv.MessagingDestinationName(string(k))
	send := func(extra ...attribute.KeyValue) metric.MeasurementOption {
		return opt(append([]attribute.KeyValue{semconv.MessagingSystemKafka, semconv.MessagingOperationName("send"), topic}, extra...)...)
	}
	return &topicOpts{
		plain:          opt(topic),
		delivered:      opt(topic, outcomeKey.String("delivered")),
		notWritten:     opt(topic, outcomeKey.String("not_written")),
		unknown:        opt(topic, outcomeKey.String("outcome_unknown")),
		sendOK:         send(),
		sendNotWritten: send(semconv.ErrorTypeKey.String("not_written")),
		sendUnknown:    send(semconv.ErrorTypeKey.String("outcome_unknown")),
	}
}

func (p *Plugin) topic(t string) *topicOpts { return p.attrs.topics.get(topicKey(t)).(*topicOpts) }

type brokerAPI struct{ broker, api string }

func (k brokerAPI) build() any { return opt(brokerKey.String(k.broker), apiKey.String(k.api)) }

func (p *Plugin) brokerAPI(broker, api string) metric.MeasurementOption {
	return p.attrs.brokers.get(brokerAPI{broker, api}).(metric.MeasurementOption)
}

// partKey is a consumed topic, and its partition when the plugin has
// PartitionAttributes (-1 otherwise).
type partKey struct {
	topic     string
	partition int32
}

func (k partKey) build() any {
	kv := []attribute.KeyValue{semconv.MessagingSystemKafka, semconv.MessagingDestinationName(k.topic)}
	if k.partition >= 0 {
		kv = append(kv, semconv.MessagingDestinationPartitionID(strconv.Itoa(int(k.partition))))
	}
	return opt(kv...)
}

func (p *Plugin) fetched(topic string, partition int32) metric.MeasurementOption {
	if !p.partitions {
		partition = -1
	}
	return p.attrs.fetched.get(partKey{topic, partition}).(metric.MeasurementOption)
}

// groupTopic is a handler's group and topic (process duration, without
// error: failures build their set per call, they are the rare path).
type groupTopic struct{ group, topic string }

func (k groupTopic) build() any { return opt(processAttrs(k.group, k.topic)...) }

func processAttrs(group, topic string) []attribute.KeyValue {
	kv := []attribute.KeyValue{semconv.MessagingSystemKafka, semconv.MessagingOperationName("process"), semconv.MessagingDestinationName(topic)}
	if group != "" {
		kv = append(kv, semconv.MessagingConsumerGroupName(group))
	}
	return kv
}

// outcomeName is the attribute value of a record's outcome.
func outcomeName(o keel.Outcome) string {
	switch o {
	case keel.Delivered:
		return "delivered"
	case keel.NotWritten:
		return "not_written"
	}
	return "outcome_unknown"
}

// errorType is error.type for an error: its Go type, which the
// conventions accept and which keeps cardinality low (messages do not).
func errorType(err error) string { return fmt.Sprintf("%T", err) }
