package produce

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/record"
)

// The segmented encoding of a produce request is byte for byte kmsg's, at
// every version keel may use, with and without a transactional id, with
// nil, empty and large record batches.
func TestProduceRequestSegmentsMatchKmsg(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 300)
	txn := "txn-1"
	for v := int16(0); v <= 13; v++ {
		for _, id := range []*string{nil, &txn} {
			req := kmsg.NewPtrProduceRequest()
			req.Version = v
			req.TransactionID = id
			req.Acks = -1
			req.TimeoutMillis = 30000
			for ti, name := range []string{"a", "topic-with-a-longer-name"} {
				rt := kmsg.NewProduceRequestTopic()
				rt.Topic = name
				for pi, recs := range [][]byte{big, nil, {}, []byte("xyz"), big[:129]} {
					rp := kmsg.NewProduceRequestTopicPartition()
					rp.Partition = int32(ti*10 + pi)
					rp.Records = recs
					rt.Partitions = append(rt.Partitions, rp)
				}
				req.Topics = append(req.Topics, rt)
			}
			want := req.AppendTo([]byte("prefix"))
			s := conn.Segments{Buf: []byte("prefix")}
			produceRequest{ProduceRequest: req}.AppendSegments(&s)
			if got := s.Bytes(); !bytes.Equal(got, want) {
				t.Errorf("v%d txn=%v: segmented encoding differs from kmsg's\n got %x\nwant %x", v, id != nil, got, want)
			}
			// The batches are referenced, not copied (versions keel
			// encodes itself).
			if v >= 3 && v <= 12 && len(s.Buf) >= len(want)-2*(len(big)+129) {
				t.Errorf("v%d: %d of %d bytes were copied inline; the batches should be referenced", v, len(s.Buf), len(want))
			}
		}
	}
}

func TestProduceRequestExpectsResponse(t *testing.T) {
	for _, acks := range []int16{-1, 0, 1} {
		req := kmsg.NewPtrProduceRequest()
		req.Acks = acks
		got, want := (produceRequest{ProduceRequest: req}).ExpectsResponse(), acks != 0
		if got != want {
			t.Errorf("acks=%d: ExpectsResponse %v, want %v", acks, got, want)
		}
	}
}

// An uncompressed batch encoded into the request as it is written carries
// exactly the bytes of the same batch encoded on its own, at every version
// (13 is encoded by kmsg, with the batch encoded alone first); a request
// mixing both kinds of batch too.
func TestProduceRequestInPlaceMatchesEncodedBatch(t *testing.T) {
	e, p, _ := testEngine()
	mk := func(n int) *batch {
		b := testBatch(p, 0)
		for i := range n {
			r := Rec{Record: record.Record{Key: []byte{byte(i)}, Value: bytes.Repeat([]byte{byte(i)}, 40*i), Timestamp: int64(1000 + 7*i)}}
			b.add(&r, b.recordSize(&r.Record))
		}
		b.pid, b.epoch, b.seq = 7, 3, 100
		return b
	}
	inPlace, alone := mk(300), mk(5)
	copyOf := mk(300)
	if err := copyOf.encode(copyOf.producerState()); err != nil {
		t.Fatal(err)
	}
	if err := alone.encode(alone.producerState()); err != nil {
		t.Fatal(err)
	}
	_ = e
	for v := int16(3); v <= 13; v++ {
		build := func(first []byte) *kmsg.ProduceRequest {
			req := kmsg.NewPtrProduceRequest()
			req.Version, req.Acks, req.TimeoutMillis = v, -1, 30000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "t"
			for pi, recs := range [][]byte{first, alone.wire} {
				rp := kmsg.NewProduceRequestTopicPartition()
				rp.Partition, rp.Records = int32(pi), recs
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
			return req
		}
		want := build(copyOf.wire).AppendTo(nil)
		s := conn.Segments{}
		pr := produceRequest{ProduceRequest: build(nil), batches: [][]*batch{{inPlace, nil}}, bb: record.NewBatchBuilder(record.Compression{})}
		pr.AppendSegments(&s)
		if got := s.Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("v%d: the batch encoded in place differs from the batch encoded alone (%d vs %d bytes)", v, len(got), len(want))
		}
	}
}
