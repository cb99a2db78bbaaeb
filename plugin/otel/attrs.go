package otel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

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
	topics optCache[topicKey] // per-record producer sets
	// lastTopic is the topicOpts looked up last: a producer writing to
	// one topic (the common case) finds it with a string compare instead
	// of hashing the name three times a record.
	lastTopic atomic.Pointer[topicOpts]
	brokers   optCache[brokerAPI]
	fetched   optCache[partKey]
	groups    optCache[groupTopic]
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

// measure is one attribute set as the option lists Add and Record take.
// Passing a list built once avoids the variadic slice each call would
// otherwise allocate (the options escape into the SDK).
type measure struct {
	add []metric.AddOption
	rec []metric.RecordOption
	obs metric.ObserveOption
}

func opt(kv ...attribute.KeyValue) *measure {
	o := metric.WithAttributeSet(attribute.NewSet(kv...))
	return &measure{add: []metric.AddOption{o}, rec: []metric.RecordOption{o}, obs: o}
}

// topicKey's value is topicOpts: every option a produced record needs,
// and its counts.
type topicKey string

type topicOpts struct {
	name                            string
	delivers, notWrittens, unknowns atomic.Int64 // records by outcome
	bufRecords, bufBytes            atomic.Int64

	plain                          *measure // topic only: batches, buffer
	delivered, notWritten, unknown *measure // keel.producer.records
	// send: messaging.client.sent.messages and operation.duration, by outcome
	sendOK, sendNotWritten, sendUnknown *measure
	// the send span's name and start options
	sendName  string
	sendStart []trace.SpanStartOption
}

func (k topicKey) build() any {
	topic := semconv.MessagingDestinationName(string(k))
	send := func(extra ...attribute.KeyValue) *measure {
		return opt(append([]attribute.KeyValue{semconv.MessagingSystemKafka, semconv.MessagingOperationName("send"), topic}, extra...)...)
	}
	return &topicOpts{
		name:           string(k),
		plain:          opt(topic),
		delivered:      opt(topic, outcomeKey.String("delivered")),
		notWritten:     opt(topic, outcomeKey.String("not_written")),
		unknown:        opt(topic, outcomeKey.String("outcome_unknown")),
		sendOK:         send(),
		sendNotWritten: send(semconv.ErrorTypeKey.String("not_written")),
		sendUnknown:    send(semconv.ErrorTypeKey.String("outcome_unknown")),
		sendName:       "send " + string(k),
		sendStart: []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(semconv.MessagingSystemKafka, semconv.MessagingOperationName("send"), semconv.MessagingOperationTypeSend, topic),
		},
	}
}

func (p *Plugin) topic(t string) *topicOpts {
	if last := p.attrs.lastTopic.Load(); last != nil && last.name == t {
		return last
	}
	o := p.attrs.topics.get(topicKey(t)).(*topicOpts)
	p.attrs.lastTopic.Store(o)
	return o
}

type brokerAPI struct{ broker, api string }

func (k brokerAPI) build() any { return opt(brokerKey.String(k.broker), apiKey.String(k.api)) }

func (p *Plugin) brokerAPI(broker, api string) *measure {
	return p.attrs.brokers.get(brokerAPI{broker, api}).(*measure)
}

// partKey is a consumed topic, and its partition when the plugin has
// PartitionAttributes (-1 otherwise).
type partKey struct {
	topic     string
	partition int32
}

func (k partKey) build() any {
	// "poll": the conventions' operation name for a Kafka consumer's
	// receive, required on messaging.client.consumed.messages.
	kv := []attribute.KeyValue{semconv.MessagingSystemKafka, semconv.MessagingOperationName("poll"), semconv.MessagingDestinationName(k.topic)}
	if k.partition >= 0 {
		kv = append(kv, semconv.MessagingDestinationPartitionID(strconv.Itoa(int(k.partition))))
	}
	return opt(kv...)
}

func (p *Plugin) fetched(topic string, partition int32) *measure {
	if !p.partitions {
		partition = -1
	}
	return p.attrs.fetched.get(partKey{topic, partition}).(*measure)
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
// fmt.Errorf's wrappers say nothing, so the type is the wrapped error's;
// a ctx that ended is named as such (its errors' types are unexported
// and vague).
func errorType(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	for {
		t := fmt.Sprintf("%T", err)
		next := errors.Unwrap(err)
		if next == nil || (t != "*fmt.wrapError" && t != "*fmt.wrapErrors") {
			return t
		}
		err = next
	}
}
