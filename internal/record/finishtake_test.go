package record

import (
	"bytes"
	"fmt"
	"testing"
)

// FinishTake must write exactly what Finish writes, hand over the batch,
// and leave the builder working on the spare buffer.
func TestFinishTakeMatchesFinish(t *testing.T) {
	recs := benchRecords()[:200]
	ps := ProducerState{ID: 9, Epoch: 2, BaseSequence: 40}
	for _, c := range []Compression{{Codec: CodecNone}, {Codec: CodecLZ4}, {Codec: CodecZstd}} {
		t.Run(c.String(), func(t *testing.T) {
			b := NewBatchBuilder(c)
			for round := range 3 {
				b.Reset()
				for i := range recs {
					r := recs[i]
					r.Value = fmt.Appendf(nil, "%s-%d", r.Value, round) // differs per round
					b.Append(&r)
				}
				want, err := b.Finish(nil, ps)
				if err != nil {
					t.Fatal(err)
				}
				spare := make([]byte, 0, b.Size())
				got, err := b.FinishTake(ps, spare)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("round %d: FinishTake wrote %d bytes unlike Finish's %d", round, len(got), len(want))
				}
				if c.Codec == CodecNone && &got[0] == &spare[:1][0] {
					t.Fatal("the uncompressed batch was copied into spare instead of taken")
				}
				// The batch handed over must not change when the builder
				// goes on.
				keep := bytes.Clone(got)
				b.Reset()
				b.Append(&Record{Value: []byte("next"), Timestamp: 1})
				if _, err := b.Finish(nil, NoProducer); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, keep) {
					t.Fatalf("round %d: the builder wrote into a batch it had handed over", round)
				}
				if _, _, err := readAll(got, NewDecompressor(0)); err != nil {
					t.Fatalf("round %d: the batch does not decode: %v", round, err)
				}
			}
		})
	}
}

func TestFinishTakeEmpty(t *testing.T) {
	b := NewBatchBuilder(Compression{})
	if _, err := b.FinishTake(NoProducer, nil); err != ErrEmptyBatch {
		t.Fatalf("empty builder: %v, want ErrEmptyBatch", err)
	}
	// A zero builder with a nil spare still works afterwards.
	b.Append(&Record{Value: []byte("v")})
	out, err := b.FinishTake(NoProducer, nil)
	if err != nil || len(out) == 0 {
		t.Fatalf("%d bytes, %v", len(out), err)
	}
	b.Reset()
	b.Append(&Record{Value: []byte("w")})
	if _, err := b.FinishTake(NoProducer, nil); err != nil {
		t.Fatal(err)
	}
}
