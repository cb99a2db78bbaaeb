package keel

import (
	"sync"
	"testing"

	"github.com/keel-go/keel/internal/group"
)

func TestMarkCellPositions(t *testing.T) {
	var c markCell
	if _, ok := c.position(); ok {
		t.Fatal("a new cell has a position")
	}
	steps := []struct {
		offset int64
		epoch  int32
		want   group.Offset
	}{
		{0, -1, group.Offset{At: 1, Epoch: -1}},
		{5, 3, group.Offset{At: 6, Epoch: 3}},
		{4, 9, group.Offset{At: 6, Epoch: 3}},                                 // older: ignored
		{5, 9, group.Offset{At: 6, Epoch: 3}},                                 // again: ignored
		{1<<43 - 2, 1<<20 - 2, group.Offset{At: 1<<43 - 1, Epoch: 1<<20 - 2}}, // largest packed
		{1 << 43, 7, group.Offset{At: 1<<43 + 1, Epoch: 7}},                   // too large: slow
		{1<<43 + 5, 1 << 25, group.Offset{At: 1<<43 + 6, Epoch: 1 << 25}},
		{10, 1, group.Offset{At: 1<<43 + 6, Epoch: 1 << 25}}, // small again: still monotonic
		{1<<43 + 6, 2, group.Offset{At: 1<<43 + 7, Epoch: 2}},
	}
	for i, s := range steps {
		c.mark(s.offset, s.epoch)
		if got, ok := c.position(); !ok || got != s.want {
			t.Fatalf("step %d: mark(%d, %d): position %+v, want %+v", i, s.offset, s.epoch, got, s.want)
		}
	}
	var d markCell
	d.mark(3, -7) // an epoch that does not pack
	if got, _ := d.position(); got != (group.Offset{At: 4, Epoch: -7}) {
		t.Fatalf("unpackable epoch: %+v", got)
	}
}

func TestMarkCellPending(t *testing.T) {
	var c markCell
	if _, ok := c.pending(nil); ok {
		t.Fatal("pending with nothing marked")
	}
	c.mark(7, 2)
	o, ok := c.pending(nil)
	if !ok || o != (group.Offset{At: 8, Epoch: 2}) {
		t.Fatalf("pending %+v %v", o, ok)
	}
	c.committed(o)
	if _, ok := c.pending(nil); ok {
		t.Fatal("pending again after its commit")
	}
	c.mark(8, 2)
	if o, ok := c.pending(nil); !ok || o.At != 9 {
		t.Fatalf("pending after a new mark: %+v %v", o, ok)
	}
}

// Marks from many goroutines, some crossing into the slow form, end at the
// highest offset marked, with its epoch.
func TestMarkCellConcurrent(t *testing.T) {
	for _, base := range []int64{0, 1<<43 - 500} {
		var c markCell
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int64(g); i < 1000; i += 8 {
					c.mark(base+i, int32(base+i)%1000)
				}
			}()
		}
		wg.Wait()
		last := base + 999
		if got, _ := c.position(); got != (group.Offset{At: last + 1, Epoch: int32(last) % 1000}) {
			t.Fatalf("base %d: position %+v, want %d/%d", base, got, last+1, int32(last)%1000)
		}
	}
}

// reset moves the position anywhere, backwards too, including to 0 and to
// positions only the slow form holds; marks go on monotonically from
// there, and pending reports the reset position for commit.
func TestMarkCellReset(t *testing.T) {
	var c markCell
	c.mark(100, 2)
	c.committed(group.Offset{At: 101, Epoch: 2})
	for _, to := range []group.Offset{{At: 0, Epoch: -1}, {At: 50, Epoch: -1}, {At: 1 << 50, Epoch: -1}, {At: 7, Epoch: 1}} {
		c.reset(to.At, to.Epoch)
		if got, ok := c.position(); !ok || got != to {
			t.Fatalf("reset to %+v: position %+v %v", to, got, ok)
		}
		if o, ok := c.pending(nil); !ok || o != to {
			t.Fatalf("reset to %+v: pending %+v %v", to, o, ok)
		}
	}
	c.mark(5, 1) // before the reset position: ignored
	if got, _ := c.position(); got.At != 7 {
		t.Fatalf("an older mark moved the reset position to %d", got.At)
	}
	c.mark(9, 1)
	if got, _ := c.position(); got.At != 10 {
		t.Fatalf("mark after reset: %d", got.At)
	}
}

func TestMarkCellPendingMetadata(t *testing.T) {
	var c markCell
	c.mark(4, 0)
	md := "a"
	o, ok := c.pending(func(int64) string { return md })
	if !ok || o.Metadata != "a" {
		t.Fatalf("pending %+v %v", o, ok)
	}
	c.committed(o)
	if _, ok := c.pending(func(int64) string { return md }); ok {
		t.Fatal("unchanged position and metadata pending again")
	}
	md = "b"
	if o, ok := c.pending(func(int64) string { return md }); !ok || o.Metadata != "b" || o.At != 5 {
		t.Fatalf("new metadata at the same position: %+v %v", o, ok)
	}
}
