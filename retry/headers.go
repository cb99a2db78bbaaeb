package retry

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keel-go/keel"
)

// Header names keel writes on records it moves to a retry or dead-letter
// topic. Numbers are decimal text and times are Unix milliseconds as
// decimal text, so that any client (kcat, Java, a shell script) can read
// them. The record's own headers are kept as they were; these are added
// after them, replacing any earlier values of the same names.
const (
	// HeaderAttempt: in a retry topic, the number of the attempt the
	// record waits for (2 for the first retry); in a dead-letter topic,
	// the number of attempts made. A record without it is on attempt 1.
	HeaderAttempt = "keel-attempt"
	// HeaderRetryAfter: the time before which the record must not be
	// handled again (retry topics only).
	HeaderRetryAfter = "keel-retry-after"
	// HeaderOriginalTopic, HeaderOriginalPartition, HeaderOriginalOffset
	// and HeaderOriginalTimestamp say where the record was first consumed
	// from; they are written once, at the first failure, and carried
	// unchanged through every retry and into the dead-letter topic.
	HeaderOriginalTopic     = "keel-original-topic"
	HeaderOriginalPartition = "keel-original-partition"
	HeaderOriginalOffset    = "keel-original-offset"
	HeaderOriginalTimestamp = "keel-original-timestamp"
	// HeaderFirstFailure: when the first attempt failed.
	HeaderFirstFailure = "keel-first-failure"
	// HeaderError: the text of the last attempt's error (cut at
	// maxErrorText bytes).
	HeaderError = "keel-error"
	// HeaderGroup: the consumer group whose handler failed. A group
	// handles only its own records in a retry topic, so groups may share
	// retry topics safely.
	HeaderGroup = "keel-group"
	// HeaderDeadLetterReason: "permanent" (the error was classified
	// permanent) or "exhausted" (the last attempt failed); dead-letter
	// topics only.
	HeaderDeadLetterReason = "keel-dlt-reason"
	// HeaderReplayedFrom: "<topic>/<partition>/<offset>" of the
	// dead-letter record a replayed record was copied from.
	HeaderReplayedFrom = "keel-replayed-from"
)

// Dead-letter reasons, the values of HeaderDeadLetterReason.
const (
	ReasonPermanent = "permanent"
	ReasonExhausted = "exhausted"
)

// maxErrorText bounds the error text carried in HeaderError: an error
// that embeds a whole response body must not make the record too large
// for the retry topic.
const maxErrorText = 4096

// ownHeaders are the headers this package writes; they are replaced, not
// duplicated, when a record moves on, and dropped when it is replayed.
var ownHeaders = map[string]bool{
	HeaderAttempt: true, HeaderRetryAfter: true,
	HeaderOriginalTopic: true, HeaderOriginalPartition: true, HeaderOriginalOffset: true, HeaderOriginalTimestamp: true,
	HeaderFirstFailure: true, HeaderError: true, HeaderGroup: true, HeaderDeadLetterReason: true,
	HeaderReplayedFrom: true,
}

// Info is what the retry headers of a consumed record say. For a record
// without them (consumed from a source topic) it describes the record
// itself as attempt 1.
type Info struct {
	// Attempt is the number of this attempt (1 for the first) — in a
	// dead-letter record, the number of attempts made.
	Attempt int
	// RetryAfter is the earliest time the record may be handled; zero
	// when there is none.
	RetryAfter time.Time
	// Where the record was first consumed from.
	OriginalTopic     string
	OriginalPartition int32
	OriginalOffset    int64
	OriginalTimestamp time.Time
	// FirstFailure is when the first attempt failed; zero on attempt 1.
	FirstFailure time.Time
	// LastError is the text of the last failure; empty on attempt 1.
	LastError string
	// Group is the consumer group that failed it; empty on attempt 1.
	Group string
	// DeadLetterReason is ReasonPermanent or ReasonExhausted in a
	// dead-letter record, empty elsewhere.
	DeadLetterReason string
	// ReplayedFrom names the dead-letter record this one was replayed
	// from, if it was.
	ReplayedFrom string
}

// InfoOf reads the retry headers of m. ok is false when m carries none
// (a record on its first attempt); Info then describes m itself. An error
// says a header is present but malformed.
func InfoOf(m *keel.Message) (info Info, ok bool, err error) {
	info = Info{
		Attempt:           1,
		OriginalTopic:     m.Topic,
		OriginalPartition: m.Partition,
		OriginalOffset:    m.Offset,
		OriginalTimestamp: m.Timestamp,
	}
	var problems []string
	bad := func(name string, v []byte) {
		problems = append(problems, fmt.Sprintf("%s=%q", name, v))
	}
	for _, h := range m.Headers {
		if !ownHeaders[h.Key] {
			continue
		}
		v := h.Value
		switch h.Key {
		case HeaderAttempt:
			n, err := strconv.Atoi(string(v))
			if err != nil || n < 1 {
				bad(h.Key, v)
				continue
			}
			info.Attempt, ok = n, true
		case HeaderRetryAfter:
			t, err := parseMillis(v)
			if err != nil {
				bad(h.Key, v)
				continue
			}
			info.RetryAfter = t
		case HeaderOriginalTopic:
			info.OriginalTopic = string(v)
		case HeaderOriginalPartition:
			n, err := strconv.ParseInt(string(v), 10, 32)
			if err != nil {
				bad(h.Key, v)
				continue
			}
			info.OriginalPartition = int32(n)
		case HeaderOriginalOffset:
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				bad(h.Key, v)
				continue
			}
			info.OriginalOffset = n
		case HeaderOriginalTimestamp:
			t, err := parseMillis(v)
			if err != nil {
				bad(h.Key, v)
				continue
			}
			info.OriginalTimestamp = t
		case HeaderFirstFailure:
			t, err := parseMillis(v)
			if err != nil {
				bad(h.Key, v)
				continue
			}
			info.FirstFailure = t
		case HeaderError:
			info.LastError = string(v)
		case HeaderGroup:
			info.Group = string(v)
		case HeaderDeadLetterReason:
			info.DeadLetterReason = string(v)
		case HeaderReplayedFrom:
			info.ReplayedFrom = string(v)
		}
	}
	if len(problems) > 0 {
		return info, ok, fmt.Errorf("retry: malformed retry headers on %s/%d@%d: %s", m.Topic, m.Partition, m.Offset, strings.Join(problems, ", "))
	}
	return info, ok, nil
}

// Attempt returns the number of the attempt m is on: 1 for a record from
// a source topic, 2 or more for one from a retry topic.
func Attempt(m *keel.Message) int {
	info, _, _ := InfoOf(m)
	return info.Attempt
}

// failure is one failed attempt on its way to a retry or dead-letter
// topic.
type failure struct {
	prev     Info      // the record's retry state before this attempt
	attempt  int       // the attempt that failed
	at       time.Time // when it failed
	err      error
	group    string
	retryAt  time.Time // zero for a dead letter
	deadWhy  string    // ReasonPermanent or ReasonExhausted for a dead letter
	consumed *keel.Message
}

// outHeaders returns the headers of the record to produce: the consumed
// record's own headers without this package's, then this package's, new.
func (f *failure) outHeaders() []keel.Header {
	out := stripOwn(f.consumed.Headers)
	first := f.prev.FirstFailure
	if first.IsZero() {
		first = f.at
	}
	next := f.attempt + 1
	if f.deadWhy != "" {
		next = f.attempt // attempts made
	}
	out = append(out,
		header(HeaderAttempt, strconv.Itoa(next)),
		header(HeaderOriginalTopic, f.prev.OriginalTopic),
		header(HeaderOriginalPartition, strconv.FormatInt(int64(f.prev.OriginalPartition), 10)),
		header(HeaderOriginalOffset, strconv.FormatInt(f.prev.OriginalOffset, 10)),
		header(HeaderOriginalTimestamp, formatMillis(f.prev.OriginalTimestamp)),
		header(HeaderFirstFailure, formatMillis(first)),
		header(HeaderError, errorText(f.err)),
		header(HeaderGroup, f.group),
	)
	if f.deadWhy != "" {
		out = append(out, header(HeaderDeadLetterReason, f.deadWhy))
	} else {
		out = append(out, header(HeaderRetryAfter, formatMillis(f.retryAt)))
	}
	if f.prev.ReplayedFrom != "" {
		out = append(out, header(HeaderReplayedFrom, f.prev.ReplayedFrom))
	}
	return out
}

// stripOwn returns a copy of hs without this package's headers.
func stripOwn(hs []keel.Header) []keel.Header {
	out := make([]keel.Header, 0, len(hs)+10)
	for _, h := range hs {
		if !ownHeaders[h.Key] {
			out = append(out, h)
		}
	}
	return out
}

func header(k, v string) keel.Header { return keel.Header{Key: k, Value: []byte(v)} }

func errorText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > maxErrorText {
		cut := maxErrorText - len("…")
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut-- // never split a character
		}
		s = s[:cut] + "…"
	}
	return s
}

// formatMillis writes t as Unix milliseconds; the zero time as "-1", as
// Kafka writes a missing timestamp.
func formatMillis(t time.Time) string {
	if t.IsZero() {
		return "-1"
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func parseMillis(v []byte) (time.Time, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	if n < 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(n), nil
}
