package ui

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/keel-go/keel"
)

// maxShownBytes is the most of one key, value or header the API sends:
// a page of large records must not become a page of megabytes.
const maxShownBytes = 64 << 10

// bytesJSON is a key, value or header value as the pages show it.
type bytesJSON struct {
	// Kind is "null" (Kafka's null), "json" (it parses: Text is indented),
	// "text" (UTF-8) or "hex" (anything else: Text is hex digits).
	Kind      string `json:"kind"`
	Text      string `json:"text"`
	Size      int    `json:"size"`      // bytes in the record
	Truncated bool   `json:"truncated"` // Text shows only the first maxShownBytes
}

// renderBytes decides how b is shown. Nothing here makes it safe for
// HTML: the pages insert it as text, never as markup.
func renderBytes(b []byte) bytesJSON {
	if b == nil {
		return bytesJSON{Kind: "null"}
	}
	out := bytesJSON{Size: len(b)}
	shown := b
	if len(shown) > maxShownBytes {
		shown, out.Truncated = shown[:maxShownBytes], true
	}
	switch {
	case !out.Truncated && json.Valid(b) && looksLikeJSONDocument(b):
		var buf bytes.Buffer
		if json.Indent(&buf, b, "", "  ") == nil {
			out.Kind, out.Text = "json", buf.String()
			return out
		}
		fallthrough
	case utf8.Valid(shown) || (out.Truncated && utf8.Valid(trimPartialRune(shown))):
		out.Kind, out.Text = "text", string(trimPartialRune(shown))
	default:
		out.Kind, out.Text = "hex", hex.EncodeToString(shown)
	}
	return out
}

// looksLikeJSONDocument keeps bare numbers and strings as text: "42" is
// valid JSON but reads better as what it is.
func looksLikeJSONDocument(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}

// trimPartialRune drops a rune cut in half by truncation.
func trimPartialRune(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(b) > 0; i++ {
		if utf8.Valid(b) {
			return b
		}
		b = b[:len(b)-1]
	}
	return b
}

type headerJSON struct {
	Key   string    `json:"key"`
	Value bytesJSON `json:"value"`
}

type recordJSON struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Timestamp time.Time    `json:"timestamp"`
	Key       bytesJSON    `json:"key"`
	Value     bytesJSON    `json:"value"`
	Headers   []headerJSON `json:"headers"`
	// DeadLetter is what the retry package's headers say, when the record
	// carries them (it is in a retry or dead-letter topic).
	DeadLetter *deadInfoJSON `json:"deadLetter,omitempty"`
}

func recordOf(m *keel.Message) recordJSON {
	r := recordJSON{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Timestamp: m.Timestamp,
		Key: renderBytes(m.Key), Value: renderBytes(m.Value), Headers: make([]headerJSON, 0, len(m.Headers)), DeadLetter: deadInfoOf(m)}
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, headerJSON{Key: h.Key, Value: renderBytes(h.Value)})
	}
	return r
}
