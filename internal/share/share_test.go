package share

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
)

func TestAckRangesCoalesceSortAndDedupe(t *testing.T) {
	acks := []pendingAck{
		{offset: 7, typ: Accept}, {offset: 3, typ: Accept}, {offset: 4, typ: Accept},
		{offset: 5, typ: Release}, {offset: 6, typ: Accept},
		{offset: 9, typ: Renew}, {offset: 9, typ: Accept}, // the final ack wins over a renewal
		{offset: 10, typ: Accept}, {offset: 10, typ: Renew}, // whatever the order
		{offset: 12, typ: Renew},
	}
	got := ackRanges(acks)
	want := []ackRange{
		{3, 4, Accept}, {5, 5, Release}, {6, 7, Accept}, {9, 10, Accept}, {12, 12, Renew},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ackRanges = %v, want %v", got, want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].first <= got[i-1].last {
			t.Fatalf("ranges overlap or go back: %v (the broker refuses the request)", got)
		}
	}
	if offs := rangeOffsets(got, Accept); !slices.Equal(offs, []int64{3, 4, 6, 7, 9, 10}) {
		t.Errorf("accepted offsets %v", offs)
	}
	if len(ackRanges(nil)) != 0 {
		t.Error("no acks must give no ranges")
	}
}

func TestNewMemberIDIsAUUIDInKafkaForm(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		id := newMemberID()
		if len(id) != 22 {
			t.Fatalf("member id %q: %d characters, want 22 (and Kafka accepts at most 36)", id, len(id))
		}
		b, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil || len(b) != 16 || b[6]>>4 != 4 || b[8]>>6 != 2 {
			t.Fatalf("member id %q is not a base64url version 4 UUID: %x, %v", id, b, err)
		}
		if seen[id] {
			t.Fatalf("member id %q repeated", id)
		}
		seen[id] = true
	}
}

func TestNextEpochSkipsZeroAndMinusOne(t *testing.T) {
	for _, c := range []struct{ in, want int32 }{{0, 1}, {1, 2}, {1<<31 - 2, 1<<31 - 1}, {1<<31 - 1, 1}} {
		if got := nextEpoch(c.in); got != c.want {
			t.Errorf("nextEpoch(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

// batch builds a batch of n records at base with values "v<offset>".
func batch(t *testing.T, base int64, n int, codec record.Codec) []byte {
	t.Helper()
	b := record.NewBatchBuilder(record.Compression{Codec: codec})
	for i := range n {
		b.Append(&record.Record{Value: fmt.Appendf(nil, "v%d", base+int64(i)), Timestamp: 1000})
	}
	out, err := b.Finish(nil, record.ProducerState{ID: -1, Epoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint64(out, uint64(base)) // outside the CRC
	return out
}

// controlBatch is a transaction marker at offset.
func controlBatch(offset int64) []byte {
	kr := kmsg.Record{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 1}}
	kr.Length = int32(len(kr.AppendTo(nil)) - 1)
	recs := kr.AppendTo(nil)
	kb := kmsg.RecordBatch{
		FirstOffset: offset, Length: int32(49 + len(recs)), Magic: 2,
		Attributes:     int16(record.AttrControl | record.AttrTransactional),
		FirstTimestamp: 1, MaxTimestamp: 1, ProducerID: 7, FirstSequence: -1, NumRecords: 1, Records: recs,
	}
	raw := kb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], record.CRC32C(raw[21:]))
	return raw
}

func acq(first, last int64, count int16) kmsg.ShareFetchResponseTopicPartitionAcquiredRecord {
	return kmsg.ShareFetchResponseTopicPartitionAcquiredRecord{FirstOffset: first, LastOffset: last, DeliveryCount: count}
}

func recOffsets(rs []Record) (offs []int64, counts []int16) {
	for _, r := range rs {
		offs = append(offs, r.Offset)
		counts = append(counts, r.DeliveryCount)
		if string(r.Value) != fmt.Sprintf("v%d", r.Offset) {
			panic(fmt.Sprintf("offset %d has value %q", r.Offset, r.Value))
		}
	}
	return offs, counts
}

// TestDecodeAcquiredKeepsOnlyAcquiredOffsets: whole batches come back,
// but only acquired offsets are handed out, each with its range's
// delivery count; acquired offsets without a record (a transaction
// marker, a compacted hole) become gap acknowledgements.
func TestDecodeAcquiredKeepsOnlyAcquiredOffsets(t *testing.T) {
	tp := TP{"t", 0}
	for _, codec := range []record.Codec{record.CodecNone, record.CodecLZ4} {
		var data []byte
		data = append(data, batch(t, 0, 10, codec)...) // 0-9
		data = append(data, controlBatch(10)...)       // 10: marker
		data = append(data, batch(t, 14, 6, codec)...) // 14-19 (11-13 compacted away)
		ranges := []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord{
			acq(15, 16, 1), acq(2, 4, 3), acq(8, 12, 2), // unsorted on purpose
		}
		got := decodeAcquired(tp, data, ranges, record.NewDecompressor(0))
		if got.err != nil {
			t.Fatal(got.err)
		}
		offs, counts := recOffsets(got.records)
		if !slices.Equal(offs, []int64{2, 3, 4, 8, 9, 15, 16}) || !slices.Equal(counts, []int16{3, 3, 3, 2, 2, 1, 1}) {
			t.Errorf("%v: records %v with counts %v", codec, offs, counts)
		}
		if want := []ackRange{{10, 12, Gap}}; !slices.Equal(got.gaps, want) || len(got.unreadable) != 0 {
			t.Errorf("%v: gaps %v unreadable %v, want %v and none", codec, got.gaps, got.unreadable, want)
		}
	}
}

// TestDecodeAcquiredReleasesUnreadableBatches: a batch that fails its
// CRC stops decoding; the acquired offsets from it on are released (not
// gap-acknowledged, which would lose them), and the error matches
// ErrCorruptMessage.
func TestDecodeAcquiredReleasesUnreadableBatches(t *testing.T) {
	tp := TP{"t", 3}
	good := batch(t, 0, 5, record.CodecNone)
	bad := batch(t, 5, 5, record.CodecNone)
	bad[len(bad)-1] ^= 0xff // break the CRC
	data := append(append(append([]byte{}, good...), bad...), batch(t, 10, 5, record.CodecNone)...)
	got := decodeAcquired(tp, data, []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord{acq(3, 12, 1)}, record.NewDecompressor(0))
	if !errors.Is(got.err, errs.ErrCorruptMessage) {
		t.Errorf("error %v does not match ErrCorruptMessage", got.err)
	}
	offs, _ := recOffsets(got.records)
	if !slices.Equal(offs, []int64{3, 4}) || len(got.gaps) != 0 || !slices.Equal(got.unreadable, []ackRange{{5, 12, Release}}) {
		t.Errorf("records %v gaps %v unreadable %v", offs, got.gaps, got.unreadable)
	}
}

// TestDecodeAcquiredSurvivesBrokenRanges: overlapping, inverted and
// negative ranges from a broken broker neither duplicate nor drop
// records.
func TestDecodeAcquiredSurvivesBrokenRanges(t *testing.T) {
	data := batch(t, 0, 10, record.CodecNone)
	ranges := []kmsg.ShareFetchResponseTopicPartitionAcquiredRecord{acq(4, 6, 1), acq(2, 5, 1), acq(9, 8, 1), acq(-3, -1, 1), acq(8, 20, 1)}
	got := decodeAcquired(TP{"t", 0}, data, ranges, record.NewDecompressor(0))
	offs, _ := recOffsets(got.records)
	if !slices.Equal(offs, []int64{2, 3, 4, 5, 6, 8, 9}) || !slices.Equal(got.gaps, []ackRange{{10, 20, Gap}}) {
		t.Errorf("records %v gaps %v", offs, got.gaps)
	}
	if got := decodeAcquired(TP{"t", 0}, data, nil, nil); len(got.records)+len(got.gaps) != 0 {
		t.Errorf("nothing acquired gave %+v", got)
	}
}
