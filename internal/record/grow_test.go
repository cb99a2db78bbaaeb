package record

import (
	"bytes"
	"testing"
)

// A builder grows by doubling (a handful of reallocations up to a 1 MB
// batch, not append's quarter steps), and Reserve makes appending up to
// the reserved size allocation-free; the batch is the same either way.
func TestBuilderGrowthAndReserve(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 10_000)
	build := func(reserve int) (batch []byte, grows int) {
		b := NewBatchBuilder(Compression{})
		b.Reserve(reserve)
		last := cap(b.buf)
		for i := range 100 {
			b.Append(&Record{Value: value, Timestamp: int64(i)})
			if c := cap(b.buf); c != last {
				grows++
				last = c
			}
		}
		out, err := b.Finish(nil, NoProducer)
		if err != nil {
			t.Fatal(err)
		}
		return out, grows
	}
	plain, grows := build(0)
	if grows > 10 {
		t.Errorf("growing to %d bytes took %d reallocations, want at most 10 (doubling)", len(plain), grows)
	}
	reserved, grows := build(len(plain))
	if grows != 0 {
		t.Errorf("after Reserve(%d) the buffer still grew %d times", len(plain), grows)
	}
	if !bytes.Equal(plain, reserved) {
		t.Error("a reserved builder encoded a different batch")
	}
}
