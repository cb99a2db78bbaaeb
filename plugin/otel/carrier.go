package otel

import (
	"slices"

	"github.com/keel-go/keel"
)

// writeCarrier writes propagation headers into a record about to be
// produced. The first Set copies the headers into a slice of the
// carrier's own: the caller's slice may share its spare capacity with
// other messages' (one base slice appended to per message), and appending
// into it would write into theirs. A key already present (a message
// produced again) is replaced, not repeated.
type writeCarrier struct {
	msg    *keel.Message
	copied bool
}

func (c *writeCarrier) Get(key string) string { return readCarrier(c.msg.Headers).Get(key) }

func (c *writeCarrier) Set(key, value string) {
	if !c.copied {
		c.msg.Headers = slices.Grow(slices.Clip(c.msg.Headers), 2)
		c.copied = true
	}
	for i := range c.msg.Headers {
		if c.msg.Headers[i].Key == key {
			c.msg.Headers[i].Value = []byte(value)
			return
		}
	}
	c.msg.Headers = append(c.msg.Headers, keel.Header{Key: key, Value: []byte(value)})
}

func (c *writeCarrier) Keys() []string { return readCarrier(c.msg.Headers).Keys() }

// readCarrier reads propagation headers from a consumed record. With a
// key repeated, the last one wins, as a later writer's would.
type readCarrier []keel.Header

func (c readCarrier) Get(key string) string {
	for i := len(c) - 1; i >= 0; i-- {
		if c[i].Key == key {
			return string(c[i].Value)
		}
	}
	return ""
}

func (readCarrier) Set(string, string) {}

func (c readCarrier) Keys() []string {
	keys := make([]string, len(c))
	for i, h := range c {
		keys[i] = h.Key
	}
	return keys
}
