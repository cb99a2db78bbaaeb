package record

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// A batch encoded in place allocates nothing once the builder exists, and
// is the same batch an ordinary Finish makes: BeginIn after FinishIn made
// (and dropped) a 4 KiB buffer per batch (issue 11).
func TestBeginInEncodesInPlaceWithoutAllocating(t *testing.T) {
	recs := []Record{{Value: []byte("a"), Timestamp: 5}, {Key: []byte("k"), Value: []byte("bc"), Timestamp: 7}}
	size := BatchHeaderLen
	for i := range recs {
		size += EncodedRecordLen(&recs[i], recs[i].Timestamp-recs[0].Timestamp, int32(i))
	}
	dst := make([]byte, 3, 3+size+binary.MaxVarintLen32)
	bb := NewBatchBuilder(Compression{})
	var got []byte
	allocs := testing.AllocsPerRun(50, func() {
		bb.BeginIn(dst)
		for i := range recs {
			bb.Append(&recs[i])
		}
		var err error
		if got, err = bb.FinishIn(NoProducer); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch encoded in place, want 0", allocs)
	}
	if len(got) != size || &got[0] != &dst[:4][3] {
		t.Fatalf("batch of %d bytes (want %d) not encoded in dst's memory", len(got), size)
	}
	ref := NewBatchBuilder(Compression{})
	for i := range recs {
		ref.Append(&recs[i])
	}
	want, err := ref.Finish(nil, NoProducer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the batch encoded in place differs from Finish's")
	}
}
