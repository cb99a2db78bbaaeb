package main

import (
	"fmt"
	"strconv"

	"github.com/keel-go/keel"
)

// formatVerbs lists the -f verbs, kcat's, for help and error messages.
const formatVerbs = `%t topic, %p partition, %o offset, %k key, %s value,
%h headers (k=v,k=v; a null value prints NULL, as in kcat), %T timestamp (ms since the epoch), %S value size and
%K key size (-1 for null), %% a percent sign; escapes \n \r \t \\ \xNN`

// formatter prints consumed records the way kcat's -f does. It is compiled
// once from the format string, so a bad format is a usage error before
// anything is consumed, and printing a record is a walk over parts.
type formatter struct {
	parts []fmtPart
}

// fmtPart is literal text (verb 0) or one verb.
type fmtPart struct {
	lit  []byte
	verb byte
}

// parseFormat compiles a kcat-style format string.
func parseFormat(s string) (*formatter, error) {
	f := &formatter{}
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			f.parts = append(f.parts, fmtPart{lit: lit})
			lit = nil
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("format %q ends with a lone %%: write %%%% for a percent sign", s)
			}
			i++
			switch v := s[i]; v {
			case '%':
				lit = append(lit, '%')
			case 't', 'p', 'o', 'k', 's', 'h', 'T', 'S', 'K':
				flush()
				f.parts = append(f.parts, fmtPart{verb: v})
			default:
				return nil, fmt.Errorf("format %q: unknown verb %%%c; the verbs are %s", s, v, formatVerbs)
			}
		case '\\':
			b, next, err := unescape(s, i)
			if err != nil {
				return nil, fmt.Errorf("format %q: %w", s, err)
			}
			lit = append(lit, b)
			i = next - 1
		default:
			lit = append(lit, c)
		}
	}
	flush()
	return f, nil
}

// defaultFormat is kcat's output without -f: the value, or with -K the key,
// the delimiter and the value; one record per line.
func defaultFormat(keyDelim []byte) *formatter {
	f := &formatter{}
	if keyDelim != nil {
		f.parts = append(f.parts, fmtPart{verb: 'k'}, fmtPart{lit: keyDelim})
	}
	f.parts = append(f.parts, fmtPart{verb: 's'}, fmtPart{lit: []byte{'\n'}})
	return f
}

// append appends m, formatted, to dst.
func (f *formatter) append(dst []byte, m *keel.Message) []byte {
	for _, p := range f.parts {
		switch p.verb {
		case 0:
			dst = append(dst, p.lit...)
		case 't':
			dst = append(dst, m.Topic...)
		case 'p':
			dst = strconv.AppendInt(dst, int64(m.Partition), 10)
		case 'o':
			dst = strconv.AppendInt(dst, m.Offset, 10)
		case 'k':
			dst = append(dst, m.Key...)
		case 's':
			dst = append(dst, m.Value...)
		case 'h':
			for i, h := range m.Headers {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, h.Key...)
				dst = append(dst, '=')
				if h.Value == nil {
					dst = append(dst, "NULL"...) // as kcat prints a null header value
				} else {
					dst = append(dst, h.Value...)
				}
			}
		case 'T':
			dst = strconv.AppendInt(dst, m.Timestamp.UnixMilli(), 10)
		case 'S':
			dst = strconv.AppendInt(dst, size(m.Value), 10)
		case 'K':
			dst = strconv.AppendInt(dst, size(m.Key), 10)
		}
	}
	return dst
}

// size is a key's or value's length, -1 for Kafka's null.
func size(b []byte) int64 {
	if b == nil {
		return -1
	}
	return int64(len(b))
}

// unescape decodes the escape at s[i] (a backslash): \n \r \t \\ or \xNN.
// It returns the byte and the index after the escape.
func unescape(s string, i int) (byte, int, error) {
	if i+1 >= len(s) {
		return 0, 0, fmt.Errorf(`ends with a lone \: write \\ for a backslash`)
	}
	switch e := s[i+1]; e {
	case 'n':
		return '\n', i + 2, nil
	case 'r':
		return '\r', i + 2, nil
	case 't':
		return '\t', i + 2, nil
	case '\\':
		return '\\', i + 2, nil
	case 'x':
		if i+4 > len(s) {
			return 0, 0, fmt.Errorf(`\x needs two hex digits`)
		}
		b, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
		if err != nil {
			return 0, 0, fmt.Errorf(`\x%s is not two hex digits`, s[i+2:i+4])
		}
		return byte(b), i + 4, nil
	default:
		return 0, 0, fmt.Errorf(`unknown escape \%c; use \n \r \t \\ or \xNN`, e)
	}
}

// parseDelim reads a -K delimiter the way kcat does: literal text with
// the escapes \n \r \t \\ and \xNN, so -K '\t' splits at a tab.
func parseDelim(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("empty delimiter")
	}
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		b, next, err := unescape(s, i)
		if err != nil {
			return nil, fmt.Errorf("delimiter %q: %w", s, err)
		}
		out = append(out, b)
		i = next - 1
	}
	return out, nil
}
