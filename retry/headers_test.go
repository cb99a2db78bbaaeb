package retry

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/keel-go/keel"
)

func headerValue(hs []keel.Header, k string) (string, int) {
	v, n := "", 0
	for _, h := range hs {
		if h.Key == k {
			v, n = string(h.Value), n+1
		}
	}
	return v, n
}

// A failure's headers read back as the state they describe; the
// record's own headers are kept, in order, and keel's are not doubled.
func TestHeadersRoundTrip(t *testing.T) {
	orig := time.UnixMilli(1_700_000_000_123)
	at := time.UnixMilli(1_700_000_100_456)
	consumed := &keel.Message{Topic: "orders", Partition: 3, Offset: 77, Timestamp: orig,
		Headers: []keel.Header{{Key: "trace", Value: []byte("abc")}, {Key: HeaderAttempt, Value: []byte("9")}, {Key: "empty", Value: nil}}}
	prev := Info{Attempt: 1, OriginalTopic: "orders", OriginalPartition: 3, OriginalOffset: 77, OriginalTimestamp: orig}
	f := failure{prev: prev, attempt: 1, at: at, err: errors.New("db down"), group: "billing", retryAt: at.Add(time.Second), consumed: consumed}
	hs := f.outHeaders()
	if hs[0].Key != "trace" || hs[1].Key != "empty" || hs[1].Value != nil {
		t.Fatalf("own headers not kept first and in order: %v", hs)
	}
	if _, n := headerValue(hs, HeaderAttempt); n != 1 {
		t.Fatalf("%d %s headers", n, HeaderAttempt)
	}
	m := &keel.Message{Topic: "orders.retry.1", Partition: 0, Offset: 5, Timestamp: at, Headers: hs}
	info, ok, err := InfoOf(m)
	if err != nil || !ok {
		t.Fatalf("InfoOf: ok %v, err %v", ok, err)
	}
	want := Info{Attempt: 2, RetryAfter: at.Add(time.Second), OriginalTopic: "orders", OriginalPartition: 3, OriginalOffset: 77,
		OriginalTimestamp: orig, FirstFailure: at, LastError: "db down", Group: "billing"}
	if !infoEqual(info, want) {
		t.Fatalf("InfoOf:\n got %+v\nwant %+v", info, want)
	}
	if v, _ := headerValue(hs, HeaderRetryAfter); v != "1700000101456" {
		t.Errorf("retry-after written as %q, want Unix milliseconds", v)
	}

	// The second failure keeps the origin and the first failure time.
	later := at.Add(5 * time.Second)
	f2 := failure{prev: info, attempt: 2, at: later, err: errors.New("still down"), group: "billing", retryAt: later.Add(5 * time.Second), consumed: m}
	info2, _, err := InfoOf(&keel.Message{Headers: f2.outHeaders()})
	if err != nil {
		t.Fatal(err)
	}
	if info2.Attempt != 3 || !info2.FirstFailure.Equal(at) || info2.OriginalOffset != 77 || info2.LastError != "still down" {
		t.Fatalf("second hop: %+v", info2)
	}

	// A dead letter says how many attempts were made, and why.
	f3 := failure{prev: info2, attempt: 3, at: later, err: errors.New("gave up"), group: "billing", deadWhy: ReasonExhausted, consumed: m}
	hs3 := f3.outHeaders()
	info3, _, err := InfoOf(&keel.Message{Headers: hs3})
	if err != nil {
		t.Fatal(err)
	}
	if info3.Attempt != 3 || info3.DeadLetterReason != ReasonExhausted || !info3.RetryAfter.IsZero() {
		t.Fatalf("dead letter: %+v", info3)
	}
	if _, n := headerValue(hs3, HeaderRetryAfter); n != 0 {
		t.Error("a dead letter carries a retry-after")
	}
}

func infoEqual(a, b Info) bool {
	return a.Attempt == b.Attempt && a.RetryAfter.Equal(b.RetryAfter) && a.OriginalTopic == b.OriginalTopic &&
		a.OriginalPartition == b.OriginalPartition && a.OriginalOffset == b.OriginalOffset &&
		a.OriginalTimestamp.Equal(b.OriginalTimestamp) && a.FirstFailure.Equal(b.FirstFailure) &&
		a.LastError == b.LastError && a.Group == b.Group && a.DeadLetterReason == b.DeadLetterReason && a.ReplayedFrom == b.ReplayedFrom
}

func TestInfoOfWithoutHeadersDescribesTheRecord(t *testing.T) {
	ts := time.UnixMilli(42)
	info, ok, err := InfoOf(&keel.Message{Topic: "orders", Partition: 2, Offset: 9, Timestamp: ts, Headers: []keel.Header{{Key: "x", Value: []byte("y")}}})
	if ok || err != nil {
		t.Fatalf("ok %v err %v", ok, err)
	}
	if info.Attempt != 1 || info.OriginalTopic != "orders" || info.OriginalPartition != 2 || info.OriginalOffset != 9 || !info.OriginalTimestamp.Equal(ts) {
		t.Fatalf("%+v", info)
	}
	if Attempt(&keel.Message{}) != 1 {
		t.Fatal("Attempt of a plain record is not 1")
	}
}

func TestInfoOfMalformed(t *testing.T) {
	m := &keel.Message{Topic: "t", Headers: []keel.Header{
		{Key: HeaderAttempt, Value: []byte("zero")},
		{Key: HeaderRetryAfter, Value: []byte("soon")},
		{Key: HeaderOriginalOffset, Value: []byte("12")},
	}}
	info, _, err := InfoOf(m)
	if err == nil || !strings.Contains(err.Error(), HeaderAttempt) || !strings.Contains(err.Error(), HeaderRetryAfter) {
		t.Fatalf("err = %v", err)
	}
	if info.OriginalOffset != 12 || info.Attempt != 1 {
		t.Fatalf("what could be read was not kept: %+v", info)
	}
	for _, bad := range []string{"0", "-3", ""} {
		if _, _, err := InfoOf(&keel.Message{Headers: []keel.Header{{Key: HeaderAttempt, Value: []byte(bad)}}}); err == nil {
			t.Errorf("attempt %q accepted", bad)
		}
	}
}

func TestMissingTimesRoundTrip(t *testing.T) {
	if formatMillis(time.Time{}) != "-1" {
		t.Fatal(formatMillis(time.Time{}))
	}
	got, err := parseMillis([]byte("-1"))
	if err != nil || !got.IsZero() {
		t.Fatalf("%v %v", got, err)
	}
}

func TestErrorTextBoundedAndValidUTF8(t *testing.T) {
	long := strings.Repeat("é", maxErrorText) // 2 bytes each
	s := errorText(errors.New(long))
	if len(s) > maxErrorText {
		t.Fatalf("%d bytes", len(s))
	}
	if !utf8.ValidString(s) || !strings.HasSuffix(s, "…") {
		t.Fatal("cut inside a character or without a mark")
	}
	if errorText(nil) != "" || errorText(errors.New("short")) != "short" {
		t.Fatal("short texts changed")
	}
}

func TestStripOwnKeepsOthers(t *testing.T) {
	in := []keel.Header{{Key: "a"}, {Key: HeaderError}, {Key: "b"}, {Key: HeaderReplayedFrom}, {Key: HeaderGroup}}
	out := stripOwn(in)
	if len(out) != 2 || out[0].Key != "a" || out[1].Key != "b" {
		t.Fatalf("%v", out)
	}
	if len(in) != 5 {
		t.Fatal("input changed")
	}
}
