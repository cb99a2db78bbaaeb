package keel

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Finishing entries in any order retires exactly the contiguous finished
// prefix, never past an unfinished entry, and the finished runs after it
// are reported as ranges.
func TestOffsetTrackPrefixAndRuns(t *testing.T) {
	var tr offsetTrack
	offsets := []int64{10, 11, 12, 15, 16, 20, 21} // gaps: compaction, markers
	seqs := make([]uint64, len(offsets))
	for i, o := range offsets {
		seqs[i] = tr.push(o, 3, false)
	}
	tr.finish(seqs[1])
	tr.finish(seqs[2])
	tr.finish(seqs[4])
	if _, ok := tr.retire(); ok {
		t.Fatal("retired past the unfinished head")
	}
	if got, want := tr.doneRuns(nil), []offsetRange{{11, 13}, {16, 17}}; !slices.Equal(got, want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
	tr.finish(seqs[0])
	last, ok := tr.retire()
	if !ok || last.offset != 12 || tr.len() != 4 {
		t.Fatalf("retired to %+v %v, %d left; want 12 with 4 left", last, ok, tr.len())
	}
	if tr.finish(seqs[0]) {
		t.Fatal("finish of a retired entry reported true")
	}
	tr.reset()
	if tr.finish(seqs[5]) || tr.len() != 0 {
		t.Fatal("entries survived reset")
	}
	s := tr.push(30, 1, true)
	if s <= seqs[len(seqs)-1] {
		t.Fatal("sequence numbers reused after reset")
	}
	if last, ok := tr.retire(); !ok || last.offset != 30 {
		t.Fatalf("pre-finished entry not retired: %+v", last)
	}
}

// A random completion order over many entries (the ring wraps and grows):
// after every finish, the retired prefix is exactly the entries before the
// first unfinished one.
func TestOffsetTrackRandomOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tr offsetTrack
	const n = 5000
	done := make([]bool, n)
	var seqs []uint64
	next, prefix := 0, 0 // next to push, first not retired
	for prefix < n {
		for next < n && next-prefix < 300 {
			seqs = append(seqs, tr.push(int64(next), 0, false))
			next++
		}
		i := prefix + rng.IntN(next-prefix)
		if !done[i] {
			done[i] = true
			tr.finish(seqs[i])
		}
		last, ok := tr.retire()
		want := prefix
		for want < n && done[want] {
			want++
		}
		if ok != (want > prefix) || ok && last.offset != int64(want-1) {
			t.Fatalf("retire: %+v %v, want up to %d", last, ok, want-1)
		}
		prefix = want
	}
}

func TestDoneRangesRoundTrip(t *testing.T) {
	d := doneRanges{{105, 107}, {110, 111}, {200, 1200}}
	md := d.encode(100)
	if !strings.HasPrefix(md, doneMetadataPrefix) {
		t.Fatalf("metadata %q", md)
	}
	if got := decodeDoneRanges(md, 100); !slices.Equal(got, d) {
		t.Fatalf("decoded %v, want %v", got, d)
	}
	if got := decodeDoneRanges(md, 101); got != nil {
		t.Fatalf("metadata of another offset decoded: %v", got)
	}
	for _, bad := range []string{"", "hello", doneMetadataPrefix + "100:!!", doneMetadataPrefix + "100:AA"} {
		if got := decodeDoneRanges(bad, 100); got != nil {
			t.Errorf("%q decoded to %v", bad, got)
		}
	}
	// Ranges before the committed offset are left out, a range across it
	// is cut.
	if got := decodeDoneRanges(d.encode(106), 106); !slices.Equal(got, doneRanges{{106, 107}, {110, 111}, {200, 1200}}) {
		t.Fatalf("cut at 106: %v", got)
	}
	if md := (doneRanges{{1, 5}}).encode(10); md != "" {
		t.Fatalf("nothing after the offset gave %q", md)
	}
	// Too many ranges: the encoding stops below the limit and keeps a
	// prefix of them (the rest are only processed again).
	var many doneRanges
	for i := range int64(5000) {
		many = append(many, offsetRange{start: 10 + 3*i, end: 11 + 3*i})
	}
	md = many.encode(0)
	if len(md) > maxDoneMetadata {
		t.Fatalf("metadata of %d bytes, limit %d", len(md), maxDoneMetadata)
	}
	got := decodeDoneRanges(md, 0)
	if len(got) == 0 || !slices.Equal(got, many[:len(got)]) {
		t.Fatalf("truncated ranges are not a prefix of the input (%d of them)", len(got))
	}
	at := 0
	for o := int64(0); o < 40; o++ {
		want := o >= 10 && (o-10)%3 == 0
		if many.contains(o, &at) != want {
			t.Fatalf("contains(%d) != %v", o, want)
		}
	}
}
