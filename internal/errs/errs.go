// Package errs defines keel's error type and the table of Kafka error codes.
// The public package re-exports these names (keel.Error, keel.ErrUnknownTopic,
// ...) so that internal packages and users share one type.
package errs

import (
	"errors"
	"fmt"
	"strings"
)

// Error is a failure reported by a broker (Code != 0) or detected by the
// client while talking to one. It says which broker, whether retrying can
// help, and carries the broker's own message when it sent one.
type Error struct {
	Code      int16  // Kafka error code; 0 for client-side failures
	Name      string // Kafka error name, e.g. "NOT_LEADER_OR_FOLLOWER"
	Broker    string // address (and node id when known) of the broker involved
	Retriable bool   // whether the same request may succeed if retried
	Message   string // the broker's error message, when it sent one
	Detail    string // what keel was doing, written for a person
	Err       error  // underlying cause, if any (network error, sentinel)
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Detail != "" {
		b.WriteString(e.Detail)
	} else if e.Name != "" {
		b.WriteString(e.Name)
	}
	if e.Code != 0 && e.Detail != "" {
		fmt.Fprintf(&b, " (%s, code %d)", e.Name, e.Code)
	} else if e.Code != 0 {
		fmt.Fprintf(&b, " (code %d)", e.Code)
	}
	if e.Broker != "" {
		fmt.Fprintf(&b, " [broker %s]", e.Broker)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": broker says %q", e.Message)
	}
	// A bare sentinel adds nothing a reader needs once Detail or Name said
	// what happened.
	if e.Err != nil && !(isSentinel(e.Err) && b.Len() > 0) {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	if b.Len() == 0 {
		return "keel: unknown error"
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrX) work for every sentinel that names a Kafka
// error code: an *Error matches a code sentinel when the codes agree.
func (e *Error) Is(target error) bool {
	if s, ok := target.(*Sentinel); ok && s.code != 0 {
		return s.code == e.Code
	}
	return false
}

// Sentinel is a comparable error value for errors.Is. Code sentinels
// (Code() != 0) match any *Error with that Kafka code.
type Sentinel struct {
	code      int16
	msg       string
	retriable bool
}

func (s *Sentinel) Error() string { return s.msg }

// Code is the Kafka error code this sentinel stands for, or 0.
func (s *Sentinel) Code() int16 { return s.code }

// Retriable reports whether errors matching this sentinel may succeed if
// retried.
func (s *Sentinel) Retriable() bool { return s.retriable }

func isSentinel(err error) bool {
	_, ok := err.(*Sentinel)
	return ok
}

// NewSentinel makes a client-side sentinel (no Kafka code).
func NewSentinel(msg string, retriable bool) *Sentinel {
	return &Sentinel{msg: msg, retriable: retriable}
}

func codeSentinel(code int16) *Sentinel {
	info := Lookup(code)
	return &Sentinel{code: code, msg: "keel: " + info.Name + ": " + info.Text, retriable: info.Retriable}
}

// Client-side sentinels.
var (
	ErrClosed            = NewSentinel("keel: client closed", false)
	ErrInvalidConfig     = NewSentinel("keel: invalid configuration", false)
	ErrBrokerUnreachable = NewSentinel("keel: broker unreachable", true)
	ErrConnectionClosed  = NewSentinel("keel: connection to broker closed", true)
	ErrRequestTimeout    = NewSentinel("keel: request timed out waiting for the broker", true)
	ErrUnsupportedBroker = NewSentinel("keel: broker too old for keel", false)
	ErrAuthentication    = NewSentinel("keel: authentication failed", false)
	ErrProtocol          = NewSentinel("keel: malformed response from broker", true)
	ErrTLSVerification   = NewSentinel("keel: broker certificate refused", false)
	// ErrLogTruncated: the partition's new leader does not have records
	// the consumer had already read (KIP-320): they were lost in an
	// unclean leader change. Errors carrying it also match
	// ErrOffsetOutOfRange, as Java's LogTruncationException is an
	// OffsetOutOfRangeException.
	ErrLogTruncated = NewSentinel("keel: log truncated below the consumer's position", false)
)

// Sentinels for the Kafka errors users most often test for.
var (
	ErrUnknownTopic         = codeSentinel(3)
	ErrNotLeader            = codeSentinel(6)
	ErrBrokerRequestTimeout = codeSentinel(7)
	ErrMessageTooLarge      = codeSentinel(10)
	ErrNotCoordinator       = codeSentinel(16)
	ErrCoordinatorNotAvail  = codeSentinel(15)
	ErrNotEnoughReplicas    = codeSentinel(19)
	ErrTopicAuthorization   = codeSentinel(29)
	ErrGroupAuthorization   = codeSentinel(30)
	ErrSASLAuthentication   = codeSentinel(58)
	ErrInvalidRecord        = codeSentinel(87)
	ErrUnsupportedVersion   = codeSentinel(35)
	ErrIllegalSASLState     = codeSentinel(34)
	ErrUnsupportedSASLMech  = codeSentinel(33)
	ErrOutOfOrderSequence   = codeSentinel(45)
	ErrUnknownProducerID    = codeSentinel(59)
	ErrRebalanceInProgress  = codeSentinel(27)
	ErrIllegalGeneration    = codeSentinel(22)
	ErrUnknownMemberID      = codeSentinel(25)
	ErrFencedInstanceID     = codeSentinel(82)
	ErrOffsetOutOfRange     = codeSentinel(1)
	ErrCorruptMessage       = codeSentinel(2)
	ErrTopicAlreadyExists   = codeSentinel(36)
	ErrRecordListTooLarge   = codeSentinel(18)
	ErrInvalidProducerEpoch = codeSentinel(47)
)

// FromCode returns nil for code 0, else an *Error describing the code. broker
// and message may be empty.
func FromCode(code int16, broker, message string) error {
	if code == 0 {
		return nil
	}
	info := Lookup(code)
	return &Error{Code: code, Name: info.Name, Broker: broker, Retriable: info.Retriable, Message: message}
}

// IsRetriable reports whether err (or what it wraps) says a retry may help.
func IsRetriable(err error) bool {
	var ke *Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	var s *Sentinel
	if errors.As(err, &s) {
		return s.retriable
	}
	return false
}

// Code returns the Kafka error code carried by err, or 0.
func Code(err error) int16 {
	var ke *Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	var s *Sentinel
	if errors.As(err, &s) {
		return s.code
	}
	return 0
}

// With returns an error that matches kind with errors.Is and reads as cause:
// for wrapping a network or library error under one of keel's sentinels
// without repeating the sentinel's text.
func With(kind *Sentinel, cause error) error {
	if cause == nil {
		return kind
	}
	return &kindErr{kind: kind, cause: cause}
}

type kindErr struct {
	kind  *Sentinel
	cause error
}

func (k *kindErr) Error() string   { return k.cause.Error() }
func (k *kindErr) Unwrap() []error { return []error{k.kind, k.cause} }
