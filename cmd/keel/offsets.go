package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keel-go/keel"
)

// offsetKind is what -o names.
type offsetKind int8

const (
	offsetBeginning offsetKind = iota // the first record the broker holds
	offsetEnd                         // after the last record: only new ones
	offsetExact                       // an absolute offset
	offsetFromEnd                     // n records before the end
	offsetTime                        // the first record at or after a time
)

// offsetSpec is a parsed -o value.
type offsetSpec struct {
	kind offsetKind
	n    int64     // offsetExact: the offset; offsetFromEnd: how many before the end
	at   time.Time // offsetTime
}

const offsetHelp = `beginning, end, N (an offset), -N (N records before the end) or s@MS (the first record at or after a time in ms since the epoch)`

// parseOffset parses -o as kcat does: beginning, end, N, -N and s@<unix ms>.
// earliest, latest, oldest and newest are accepted too.
func parseOffset(s string) (offsetSpec, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "beginning", "earliest", "oldest", "start":
		return offsetSpec{kind: offsetBeginning}, nil
	case "end", "latest", "newest":
		return offsetSpec{kind: offsetEnd}, nil
	case "":
		return offsetSpec{}, fmt.Errorf("empty offset: use %s", offsetHelp)
	}
	s = strings.TrimSpace(s)
	if ms, ok := strings.CutPrefix(s, "s@"); ok {
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil || n < 0 {
			return offsetSpec{}, fmt.Errorf("offset %q: s@ needs a time in milliseconds since the epoch, e.g. s@%d", s, time.Now().Add(-time.Hour).UnixMilli())
		}
		return offsetSpec{kind: offsetTime, at: time.UnixMilli(n)}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return offsetSpec{}, fmt.Errorf("offset %q: use %s", s, offsetHelp)
	}
	if strings.HasPrefix(s, "-") {
		return offsetSpec{kind: offsetFromEnd, n: -n}, nil
	}
	return offsetSpec{kind: offsetExact, n: n}, nil
}

// String gives the spec back in -o syntax.
func (o offsetSpec) String() string {
	switch o.kind {
	case offsetBeginning:
		return "beginning"
	case offsetEnd:
		return "end"
	case offsetExact:
		return strconv.FormatInt(o.n, 10)
	case offsetFromEnd:
		return "-" + strconv.FormatInt(o.n, 10)
	case offsetTime:
		return "s@" + strconv.FormatInt(o.at.UnixMilli(), 10)
	}
	return "?"
}

// start is where a partition whose log holds [logStart, end) starts for
// this spec: -N is clamped to the log start, as kcat does. logStart and
// end are needed only for offsetFromEnd.
func (o offsetSpec) start(logStart, end int64) keel.StartOffset {
	switch o.kind {
	case offsetBeginning:
		return keel.AtEarliest()
	case offsetEnd:
		return keel.AtLatest()
	case offsetExact:
		return keel.AtOffset(o.n)
	case offsetFromEnd:
		return keel.AtOffset(max(logStart, end-o.n))
	}
	return keel.AtTime(o.at)
}

// reset is the group reset policy -o stands for in group mode, where only
// beginning and end make sense (committed offsets decide the rest).
func (o offsetSpec) reset() (keel.OffsetReset, error) {
	switch o.kind {
	case offsetBeginning:
		return keel.ResetEarliest, nil
	case offsetEnd:
		return keel.ResetLatest, nil
	}
	return 0, fmt.Errorf("with -G, -o is where partitions without a committed offset start: beginning or end, not %s", o)
}
