package main

import (
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
)

// formatRecord is the known record the format tests print.
var formatRecord = &keel.Message{
	Topic:     "orders",
	Partition: 3,
	Offset:    1207,
	Key:       []byte("k1"),
	Value:     []byte("hello world"),
	Headers:   []keel.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("")}, {Key: "n"}},
	Timestamp: time.UnixMilli(1700000000123),
}

func TestFormatVerbs(t *testing.T) {
	nullKey := *formatRecord
	nullKey.Key, nullKey.Value, nullKey.Headers = nil, nil, nil
	empty := *formatRecord
	empty.Key, empty.Value = []byte{}, []byte{}
	for _, tc := range []struct {
		format string
		m      *keel.Message
		want   string
	}{
		{"%t", formatRecord, "orders"},
		{"%p", formatRecord, "3"},
		{"%o", formatRecord, "1207"},
		{"%k", formatRecord, "k1"},
		{"%s", formatRecord, "hello world"},
		{"%h", formatRecord, "a=1,b=,n=NULL"},
		{"%T", formatRecord, "1700000000123"},
		{"%S", formatRecord, "11"},
		{"%K", formatRecord, "2"},
		{"%%", formatRecord, "%"},
		{`\n\t\\\r\x41`, formatRecord, "\n\t\\\rA"},
		{`Topic %t [%p] at offset %o: key %k: %s\n`, formatRecord, "Topic orders [3] at offset 1207: key k1: hello world\n"},
		{"100%% %k", formatRecord, "100% k1"},
		{"[%k][%s][%K][%S][%h]", &nullKey, "[][][-1][-1][]"},
		{"[%k][%s][%K][%S]", &empty, "[][][0][0]"},
		{"plain text", formatRecord, "plain text"},
		{"", formatRecord, ""},
	} {
		f, err := parseFormat(tc.format)
		if err != nil {
			t.Errorf("parseFormat(%q): %v", tc.format, err)
			continue
		}
		if got := string(f.append(nil, tc.m)); got != tc.want {
			t.Errorf("format %q: got %q, want %q", tc.format, got, tc.want)
		}
	}
}

func TestFormatErrors(t *testing.T) {
	for _, tc := range []struct{ format, want string }{
		{"%x", "unknown verb %x"},
		{"abc%", "lone %"},
		{`abc\`, `lone \`},
		{`\q`, `unknown escape \q`},
		{`\x4`, `\x needs two hex digits`},
		{`\xzz`, `\xzz is not two hex digits`},
	} {
		_, err := parseFormat(tc.format)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFormat(%q) = %v, want an error with %q", tc.format, err, tc.want)
		}
	}
}

func TestFormatDefault(t *testing.T) {
	if got := string(defaultFormat(nil).append(nil, formatRecord)); got != "hello world\n" {
		t.Errorf("default format: %q", got)
	}
	if got := string(defaultFormat([]byte("::")).append(nil, formatRecord)); got != "k1::hello world\n" {
		t.Errorf("default format with -K: %q", got)
	}
}

func TestFormatDelimiter(t *testing.T) {
	for in, want := range map[string]string{":": ":", `\t`: "\t", "::": "::", `\x00`: "\x00", "%": "%", `a\\b`: `a\b`} {
		got, err := parseDelim(in)
		if err != nil || string(got) != want {
			t.Errorf("parseDelim(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", `\`, `\y`} {
		if _, err := parseDelim(bad); err == nil {
			t.Errorf("parseDelim(%q) accepted", bad)
		}
	}
}
