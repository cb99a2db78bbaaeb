package produce

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/conn"
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
			produceRequest{req}.AppendSegments(&s)
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
		got, want := (produceRequest{req}).ExpectsResponse(), acks != 0
		if got != want {
			t.Errorf("acks=%d: ExpectsResponse %v, want %v", acks, got, want)
		}
	}
}
