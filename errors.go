package keel

import (
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/produce"
)

// Error is a failure reported by a broker or found while talking to one. It
// carries the Kafka error code (0 for client-side failures), the broker
// involved, whether a retry may succeed, and the broker's own message. Use
// errors.As to inspect it and errors.Is with the sentinels below to test for
// a condition:
//
//	if errors.Is(err, keel.ErrUnknownTopic) { ... }
type Error = errs.Error

// Sentinel is the type of keel's sentinel errors. Sentinels that stand for a
// Kafka error code match every *Error carrying that code.
type Sentinel = errs.Sentinel

// Client-side conditions.
var (
	// ErrClosed: the client, producer or consumer was closed.
	ErrClosed = errs.ErrClosed
	// ErrInvalidConfig: an option is invalid; the *ConfigError says which.
	ErrInvalidConfig = errs.ErrInvalidConfig
	// ErrBrokerUnreachable: no connection could be made within the dial
	// timeout.
	ErrBrokerUnreachable = errs.ErrBrokerUnreachable
	// ErrConnectionClosed: the connection broke while a request was in
	// flight; its outcome is unknown and the request may be retried.
	ErrConnectionClosed = errs.ErrConnectionClosed
	// ErrRequestTimeout: the broker did not answer within the request
	// timeout.
	ErrRequestTimeout = errs.ErrRequestTimeout
	// ErrUnsupportedBroker: the broker is older than keel supports (Kafka
	// 2.1).
	ErrUnsupportedBroker = errs.ErrUnsupportedBroker
	// ErrAuthentication: SASL authentication failed or the mechanism is not
	// enabled on the broker.
	ErrAuthentication = errs.ErrAuthentication
	// ErrTLSVerification: the broker's TLS certificate was refused (an
	// authority the client does not trust, a host name the certificate
	// does not list, an expired certificate). Not retriable.
	ErrTLSVerification = errs.ErrTLSVerification

	// ErrProtocol: a broker (or something listening at its address)
	// sent an answer that is not a Kafka response, or a malformed one.
	ErrProtocol = errs.ErrProtocol

	// ErrLogTruncated: a partition's new leader lost records the consumer
	// had already read (an unclean leader change, found by KIP-320
	// validation) and the reset policy is ResetNone. It also matches
	// ErrOffsetOutOfRange.
	ErrLogTruncated = errs.ErrLogTruncated
	// ErrNilContext: a method was called with a nil context.Context. keel
	// answers it with an error naming the method (and, for Produce, a
	// NotWritten report) rather than a panic; nothing else happens.
	ErrNilContext = errs.ErrNilContext
	// ErrPanicked matches a *PanicError: a handler or partitioner of
	// yours panicked and keel turned the panic into an error for that
	// record, instead of letting it end the process.
	ErrPanicked = errs.ErrPanicked
)

// PanicError is a recovered panic of user code keel called: which code
// (Where: "handler", "partitioner"), the value, and the stack at the
// panic. It matches ErrPanicked.
type PanicError = errs.PanicError

// Kafka error codes users commonly test for.
var (
	ErrUnknownTopic         = errs.ErrUnknownTopic         // 3 UNKNOWN_TOPIC_OR_PARTITION
	ErrNotLeader            = errs.ErrNotLeader            // 6 NOT_LEADER_OR_FOLLOWER
	ErrBrokerRequestTimeout = errs.ErrBrokerRequestTimeout // 7 REQUEST_TIMED_OUT
	ErrMessageTooLarge      = errs.ErrMessageTooLarge      // 10 MESSAGE_TOO_LARGE
	ErrNotCoordinator       = errs.ErrNotCoordinator       // 16 NOT_COORDINATOR
	ErrNotEnoughReplicas    = errs.ErrNotEnoughReplicas    // 19 NOT_ENOUGH_REPLICAS
	ErrTopicAuthorization   = errs.ErrTopicAuthorization   // 29 TOPIC_AUTHORIZATION_FAILED
	ErrGroupAuthorization   = errs.ErrGroupAuthorization   // 30 GROUP_AUTHORIZATION_FAILED
	ErrSASLAuthentication   = errs.ErrSASLAuthentication   // 58 SASL_AUTHENTICATION_FAILED
	ErrInvalidRecord        = errs.ErrInvalidRecord        // 87 INVALID_RECORD
	ErrOffsetOutOfRange     = errs.ErrOffsetOutOfRange     // 1 OFFSET_OUT_OF_RANGE
	ErrCorruptMessage       = errs.ErrCorruptMessage       // 2 CORRUPT_MESSAGE, also for bad CRCs found by keel
	ErrRecordListTooLarge   = errs.ErrRecordListTooLarge   // 18 RECORD_LIST_TOO_LARGE
	ErrRebalanceInProgress  = errs.ErrRebalanceInProgress  // 27 REBALANCE_IN_PROGRESS
	ErrFencedInstanceID     = errs.ErrFencedInstanceID     // 82 FENCED_INSTANCE_ID
	// ErrInvalidTopic (17 INVALID_TOPIC_EXCEPTION) also matches names keel
	// refuses before sending anything; see ValidateTopicName.
	ErrInvalidTopic = errs.ErrInvalidTopic
)

// IsRetriable reports whether err says that trying again may succeed.
func IsRetriable(err error) bool { return errs.IsRetriable(err) }

// ErrorCode returns the Kafka error code err carries, or 0.
func ErrorCode(err error) int16 { return errs.Code(err) }

// ConfigError says which option is wrong and how to fix it. It matches
// ErrInvalidConfig with errors.Is.
type ConfigError struct {
	Option  string // the option, e.g. "DialTimeout"
	Problem string // what is wrong
	Fix     string // what to do instead
	// Err is the cause when another check found the problem (a topic
	// name's error, matching ErrInvalidTopic); nil otherwise.
	Err error
}

// Unwrap returns the cause, so that errors.Is also sees its sentinels.
func (e *ConfigError) Unwrap() error { return e.Err }

// Error says which option is wrong and how to fix it.
func (e *ConfigError) Error() string {
	s := "keel: invalid " + e.Option + ": " + e.Problem
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Producer outcomes and failures. A failed Delivery's Err matches exactly
// one of ErrNotWritten and ErrOutcomeUnknown, plus its cause.
var (
	// ErrNotWritten: the record was not written; producing it again
	// cannot duplicate it.
	ErrNotWritten = errs.NewSentinel("keel: record not written", false)
	// ErrOutcomeUnknown: the record was sent but no answer came; it may
	// have been written.
	ErrOutcomeUnknown = errs.NewSentinel("keel: record outcome unknown", false)
	// ErrDeliveryTimeout: no outcome within the producer's delivery
	// timeout.
	ErrDeliveryTimeout = produce.ErrDeliveryTimeout
	// ErrProducerClosed: the producer was closed before the record had an
	// outcome.
	ErrProducerClosed = produce.ErrClosed
	// ErrBufferFull: TryProduce found the producer's buffer full.
	ErrBufferFull = errs.NewSentinel("keel: producer buffer full", true)
	// ErrInvalidMessage: the message cannot be produced as it is (no
	// topic, nil message).
	ErrInvalidMessage = errs.NewSentinel("keel: invalid message", false)
)
