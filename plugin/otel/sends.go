package otel

import (
	"sync"
	"unsafe"

	"github.com/keel-go/keel"
)

// sendTable holds each record's send (span and start) from OnProduce to
// its report, keyed by the *keel.Message keel hands to both. Records are
// added on the producing goroutines and removed on the one handing out
// reports, once each: sharded maps holding sends by value cost one map
// insert and delete a record and no allocation of their own (a sync.Map
// allocated two nodes a record, BenchmarkProduceHooks).
type sendTable struct {
	shards [sendShards]sendShard
}

const sendShards = 32

type sendShard struct {
	mu sync.Mutex
	m  map[*keel.Message]send
	_  [48]byte // a shard a 64-byte cache line: shards' locks do not share one
}

func (t *sendTable) shard(m *keel.Message) *sendShard {
	// Messages are heap objects at least 8-byte aligned; the bits above
	// the alignment spread them over the shards.
	h := uintptr(unsafe.Pointer(m))
	h ^= h >> 17
	return &t.shards[(h>>4)%sendShards]
}

// swap stores s for m and returns what was stored before, if anything.
func (t *sendTable) swap(m *keel.Message, s send) (send, bool) {
	sh := t.shard(m)
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = make(map[*keel.Message]send)
	}
	old, ok := sh.m[m]
	sh.m[m] = s
	sh.mu.Unlock()
	return old, ok
}

// take removes and returns m's send.
func (t *sendTable) take(m *keel.Message) (send, bool) {
	sh := t.shard(m)
	sh.mu.Lock()
	s, ok := sh.m[m]
	if ok {
		delete(sh.m, m)
	}
	sh.mu.Unlock()
	return s, ok
}
