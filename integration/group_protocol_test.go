package integration

import (
	"testing"

	"github.com/keel-go/keel"
)

// groupProtocol is a group protocol the group tests run under: the
// scenarios are written once and run under each (t.Run per protocol).
type groupProtocol struct {
	name string
	opts []keel.GroupOption
}

var (
	classicProtocol  = groupProtocol{"classic", nil}
	consumerProtocol = groupProtocol{"consumer", []keel.GroupOption{keel.GroupProtocol(keel.ConsumerProtocol)}}
	groupProtocols   = []groupProtocol{classicProtocol, consumerProtocol}
)

// forEachProtocol runs fn as a subtest per group protocol; fn passes
// proto (the protocol's options) to every member it starts.
func forEachProtocol(t *testing.T, fn func(t *testing.T, proto []keel.GroupOption)) {
	t.Helper()
	for _, p := range groupProtocols {
		t.Run(p.name, func(t *testing.T) { fn(t, p.opts) })
	}
}

// with returns proto followed by extra, for one member's options.
func with(proto []keel.GroupOption, extra ...keel.GroupOption) []keel.GroupOption {
	return append(append([]keel.GroupOption{}, proto...), extra...)
}

// protocolName and protocolNamed carry a protocol to a helper process.
func protocolName(proto []keel.GroupOption) string {
	if len(proto) > 0 {
		return consumerProtocol.name
	}
	return classicProtocol.name
}

func protocolNamed(name string) []keel.GroupOption {
	for _, p := range groupProtocols {
		if p.name == name {
			return p.opts
		}
	}
	return nil
}
