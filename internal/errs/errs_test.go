package errs

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCodeSentinelsMatchByCode(t *testing.T) {
	err := fmt.Errorf("producing to orders: %w", FromCode(3, "b1:9092 (id 1)", "no such topic"))
	if !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("errors.Is(code 3, ErrUnknownTopic) = false, want true")
	}
	if errors.Is(err, ErrNotLeader) {
		t.Errorf("errors.Is(code 3, ErrNotLeader) = true, want false")
	}
	// A client-side sentinel has no code, so a coded error never matches it.
	if errors.Is(err, ErrClosed) {
		t.Errorf("errors.Is(code 3, ErrClosed) = true, want false")
	}
	if got := Code(err); got != 3 {
		t.Errorf("Code = %d, want 3", got)
	}
	var ke *Error
	if !errors.As(err, &ke) || ke.Name != "UNKNOWN_TOPIC_OR_PARTITION" {
		t.Errorf("errors.As: got %+v", ke)
	}
}

func TestClientSentinelThroughError(t *testing.T) {
	// An *Error wrapping a client-side sentinel matches it through Unwrap.
	err := fmt.Errorf("ctx: %w", &Error{Broker: "b1", Detail: "dialing", Retriable: true, Err: ErrBrokerUnreachable})
	if !errors.Is(err, ErrBrokerUnreachable) {
		t.Errorf("errors.Is(wrapped, ErrBrokerUnreachable) = false")
	}
	if errors.Is(err, ErrUnknownTopic) {
		t.Errorf("client-side error (code 0) matched a code sentinel")
	}
	if Code(err) != 0 {
		t.Errorf("Code = %d, want 0", Code(err))
	}
}

// TestSentinelsInitialisedFromTable guards the initialisation order: the code
// sentinels are built from the table during package variable initialisation,
// so if the table were filled by an init function instead they would all say
// UNKNOWN_ERROR_CODE_n and be non-retriable.
func TestSentinelsInitialisedFromTable(t *testing.T) {
	if !ErrNotLeader.Retriable() {
		t.Errorf("ErrNotLeader.Retriable() = false")
	}
	if !strings.Contains(ErrNotLeader.Error(), "NOT_LEADER_OR_FOLLOWER") {
		t.Errorf("ErrNotLeader.Error() = %q", ErrNotLeader.Error())
	}
	if ErrMessageTooLarge.Retriable() {
		t.Errorf("ErrMessageTooLarge.Retriable() = true")
	}
	if ErrNotLeader.Code() != 6 {
		t.Errorf("ErrNotLeader.Code() = %d", ErrNotLeader.Code())
	}
}

func TestIsRetriable(t *testing.T) {
	for _, tc := range []struct {
		code int16
		want bool
	}{
		{-1, false}, // UNKNOWN_SERVER_ERROR
		{2, true},   // CORRUPT_MESSAGE (Java: retriable)
		{3, true},
		{5, true},
		{6, true},
		{7, true},
		{8, false}, // BROKER_NOT_AVAILABLE: plain ApiException in Java
		{10, false},
		{13, true},
		{14, true},
		{15, true},
		{16, true},
		{18, false},
		{19, true},
		{20, true},
		{22, false},
		{27, false},
		{29, false},
		{31, false},
		{35, false},
		{45, false},
		{47, false},
		{51, true}, // CONCURRENT_TRANSACTIONS: RetriableException in Java
		{56, true},
		{59, false},
		{74, true},
		{75, true},
		{87, false},
		{89, true},
		{90, false},
		{100, true},
		{103, true},
		{120, false},
		{999, false}, // unknown codes are not retriable
	} {
		err := fmt.Errorf("wrapped: %w", FromCode(tc.code, "", ""))
		if got := IsRetriable(err); got != tc.want {
			t.Errorf("IsRetriable(code %d) = %v, want %v", tc.code, got, tc.want)
		}
	}
	if !IsRetriable(fmt.Errorf("x: %w", ErrConnectionClosed)) {
		t.Errorf("IsRetriable(ErrConnectionClosed) = false")
	}
	if IsRetriable(fmt.Errorf("x: %w", ErrClosed)) {
		t.Errorf("IsRetriable(ErrClosed) = true")
	}
	if IsRetriable(errors.New("plain")) || IsRetriable(nil) {
		t.Errorf("IsRetriable(non-keel error) = true")
	}
}

func TestMetadataCodes(t *testing.T) {
	want := map[int16]bool{3: true, 5: true, 6: true, 9: true, 13: true, 56: true, 72: true, 74: true, 100: true, 103: true}
	for code, info := range codes {
		if info.Metadata != want[code] {
			t.Errorf("code %d (%s): Metadata = %v, want %v", code, info.Name, info.Metadata, want[code])
		}
		// Stale metadata is always worth a retry once refreshed.
		if info.Metadata && !info.Retriable {
			t.Errorf("code %d (%s): Metadata without Retriable", code, info.Name)
		}
	}
	if info := Lookup(75); !info.Retriable || info.Metadata {
		t.Errorf("UNKNOWN_LEADER_EPOCH: %+v, want retriable without refresh", info)
	}
}

func TestErrorText(t *testing.T) {
	err := FromCode(6, "b2:9092 (id 2)", "leader moved to 3")
	s := err.Error()
	for _, want := range []string{"NOT_LEADER_OR_FOLLOWER", "code 6", "b2:9092 (id 2)", "leader moved to 3"} {
		if !strings.Contains(s, want) {
			t.Errorf("Error() = %q, missing %q", s, want)
		}
	}

	e := &Error{Code: 29, Name: "TOPIC_AUTHORIZATION_FAILED", Broker: "b1", Detail: "producing to orders", Message: "denied", Err: ErrTopicAuthorization}
	s = e.Error()
	for _, want := range []string{"producing to orders", "TOPIC_AUTHORIZATION_FAILED", "code 29", "b1", "denied"} {
		if !strings.Contains(s, want) {
			t.Errorf("Error() = %q, missing %q", s, want)
		}
	}
	// The code sentinel only repeats the name: it is not appended.
	if strings.Count(s, "TOPIC_AUTHORIZATION_FAILED") != 1 {
		t.Errorf("Error() = %q repeats the name", s)
	}

	cause := errors.New("connection refused")
	s = (&Error{Broker: "b3", Detail: "dialing", Err: cause}).Error()
	if !strings.Contains(s, "dialing") || !strings.Contains(s, "b3") || !strings.Contains(s, "connection refused") {
		t.Errorf("client-side Error() = %q", s)
	}

	if s := (&Error{}).Error(); s == "" {
		t.Errorf("empty Error has empty text")
	}
	if FromCode(0, "b1", "") != nil {
		t.Errorf("FromCode(0) != nil")
	}
}

func TestLookupUnknown(t *testing.T) {
	info := Lookup(31000)
	if info.Name != "UNKNOWN_ERROR_CODE_31000" || info.Retriable || info.Metadata || info.Text == "" {
		t.Errorf("Lookup(31000) = %+v", info)
	}
	if _, ok := codes[31000]; ok {
		t.Fatal("31000 is in the table")
	}
	e := FromCode(31000, "b1", "").(*Error)
	if e.Retriable || !strings.Contains(e.Error(), "31000") {
		t.Errorf("FromCode(unknown) = %+v / %q", e, e.Error())
	}
}

func TestTableComplete(t *testing.T) {
	for code := int16(-1); code <= 133; code++ {
		info, ok := codes[code]
		if !ok {
			t.Errorf("code %d missing", code)
			continue
		}
		if info.Name == "" || info.Text == "" {
			t.Errorf("code %d: empty name or text: %+v", code, info)
		}
		if strings.ToUpper(info.Name) != info.Name || strings.ContainsAny(info.Name, " -") {
			t.Errorf("code %d: name %q is not in protocol style", code, info.Name)
		}
	}
	seen := make(map[string]int16, len(codes))
	for code, info := range codes {
		if prev, dup := seen[info.Name]; dup {
			t.Errorf("name %s used by codes %d and %d", info.Name, prev, code)
		}
		seen[info.Name] = code
	}
	// Spot-check official names where older spellings exist.
	for code, name := range map[int16]string{-1: "UNKNOWN_SERVER_ERROR", 6: "NOT_LEADER_OR_FOLLOWER", 17: "INVALID_TOPIC_EXCEPTION", 47: "INVALID_PRODUCER_EPOCH", 120: "TRANSACTION_ABORTABLE"} {
		if got := Lookup(code).Name; got != name {
			t.Errorf("Lookup(%d).Name = %q, want %q", code, got, name)
		}
	}
}
