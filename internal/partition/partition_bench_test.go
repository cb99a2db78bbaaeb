package partition

import (
	"fmt"
	"testing"
)

// Benchmarks of the partitioning step of every produced record, per
// partitioner and key shape, serial and from many goroutines (producers
// are shared by goroutines). Run with:
//
//	go test -run XXX -bench . -benchmem ./internal/partition

var benchAvail = []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}

// benchKeys are 1024 distinct keys of n bytes, so the hash is not of one
// key cached in registers.
func benchKeys(n int) [][]byte {
	keys := make([][]byte, 1024)
	for i := range keys {
		k := fmt.Appendf(nil, "user-%08d", i)
		for len(k) < n {
			k = append(k, byte('a'+i%26))
		}
		keys[i] = k[:n]
	}
	return keys
}

func BenchmarkMurmur2(b *testing.B) {
	for _, n := range []int{8, 16, 64, 256} {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			keys := benchKeys(n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var sink uint32
			i := 0
			for b.Loop() {
				sink += Murmur2(keys[i&1023])
				i++
			}
			_ = sink
		})
	}
}

func BenchmarkPick(b *testing.B) {
	keys := benchKeys(16)
	cases := []struct {
		name string
		p    func() Partitioner
		key  bool
	}{
		{"Default/key", func() Partitioner { return new(Default) }, true},
		{"Default/null", func() Partitioner { return new(Default) }, false},
		{"Sticky", func() Partitioner { return new(Sticky) }, false},
		{"RoundRobin", func() Partitioner { return new(RoundRobin) }, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := c.p()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				var key []byte
				if c.key {
					key = keys[i&1023]
				}
				if _, err := Pick(p, "topic", Unassigned, key, c.key, int32(len(benchAvail)), benchAvail); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			p := c.p()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					var key []byte
					if c.key {
						key = keys[i&1023]
					}
					if _, err := Pick(p, "topic", Unassigned, key, c.key, int32(len(benchAvail)), benchAvail); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		})
	}
}

// BenchmarkStickyNewBatch is the sticky partitioner switching partition at
// every batch (KIP-480), as it does under load.
func BenchmarkStickyNewBatch(b *testing.B) {
	var s Sticky
	b.ReportAllocs()
	for b.Loop() {
		p, _ := Pick(&s, "topic", Unassigned, nil, false, int32(len(benchAvail)), benchAvail)
		s.OnNewBatch("topic", p)
	}
}
