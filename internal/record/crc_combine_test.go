package record

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestCRC32CCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 1<<20+77)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, split := range []int{0, 1, 7, 61, 4096, 100_000, len(data) - 1, len(data)} {
		a, b := data[:split], data[split:]
		got := crc32cCombine(CRC32C(a), CRC32C(b), len(b))
		if want := CRC32C(data); got != want {
			t.Errorf("split at %d: combined %08x, want %08x", split, got, want)
		}
	}
}

// Batches larger than crcChunk get their CRC from the records' running CRC
// combined with the header's: it must equal the CRC of the batch's bytes,
// through Finish, FinishTake, Reset, a rebuilt builder, and SetProducer.
func TestBuilderRunningCRC(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	value := make([]byte, 9000)
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	check := func(what string, batch []byte) {
		t.Helper()
		if got, want := binary.BigEndian.Uint32(batch[offCRC:]), CRC32C(batch[offAttributes:]); got != want {
			t.Fatalf("%s: CRC field %08x, batch sums to %08x", what, got, want)
		}
	}
	b := NewBatchBuilder(Compression{})
	p := ProducerState{ID: 7, Epoch: 1, BaseSequence: 42}
	for round, n := range []int{1, 3, 4, 17, 111} { // 9 KB records: 0 to 30 chunks of running CRC
		b.Reset()
		for i := range n {
			b.Append(&Record{Key: []byte{byte(i)}, Value: value[:len(value)-i], Timestamp: int64(1000 + i)})
		}
		copied, err := b.Finish(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		check("Finish", copied)
		taken, err := b.FinishTake(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		check("FinishTake", taken)
		if !bytes.Equal(copied, taken) {
			t.Fatalf("round %d: Finish and FinishTake differ", round)
		}
		if err := SetProducer(taken, 8, 2, 0); err != nil {
			t.Fatal(err)
		}
		check("SetProducer", taken)
	}
}
