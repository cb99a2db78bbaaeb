package produce

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/record"
)

// BenchmarkBatchRecords measures a record's bookkeeping in its batch:
// appended to its partition, sealed and sent, acknowledged and reported,
// its batch's memory taken back (no encoding, no network). Batches of a
// fixed size, and of sizes that vary as they do with keyed records over
// many partitions (where a batch's estimate lags its size).
func BenchmarkBatchRecords(b *testing.B) {
	varied := []int{12, 40, 7, 150, 25, 60, 3, 300, 18, 90}
	for _, c := range []struct {
		name  string
		sizes []int
	}{{"fixed1000", []int{1000}}, {"fixed20", []int{20}}, {"varied", varied}} {
		b.Run(c.name, func(b *testing.B) {
			e, p, s := testEngine()
			val := make([]byte, 100)
			later := e.now() + 1<<50
			next, k := 0, 0
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r := Rec{Owner: i, Record: record.Record{Value: val, Timestamp: 1}}
				p.append(&r, true)
				if k++; k < c.sizes[next] {
					continue
				}
				k, next = 0, (next+1)%len(c.sizes)
				bt, _ := p.nextBatch(s, later, true, 1<<30, 7, curEpoch(e))
				if bt == nil {
					b.Fatal("nothing to send")
				}
				p.resolve(bt, "b", kmsg.ProduceResponseTopicPartition{})
			}
		})
	}
}
