package fetch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime/metrics"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/internal/topicpart"
)

// FuzzFetchResponse runs the consumer's decode path on arbitrary bytes: a
// Fetch response body (at a version keel speaks, 4-12) parsed as the
// connection parses it, then every partition's records turned into records
// as the source does (decodeAs, read_uncommitted and read_committed with
// the response's aborted transactions). Garbage must give an error or
// nothing, never a panic, a loop, records out of order or below the fetch
// offset, or allocations out of proportion to the input. Each partition is
// decoded as sent and with its batches' CRCs recomputed, so mutations get
// past the CRC to the records. docs/RELIABILITY.md has the long runs.
func FuzzFetchResponse(f *testing.F) {
	for _, s := range fetchSeeds(f) {
		f.Add(s.version, s.readCommitted, s.fetchOffset, s.body)
	}
	dec := record.NewDecompressor(1 << 20)
	f.Fuzz(func(t *testing.T, version uint8, readCommitted bool, fetchOffset int64, body []byte) {
		before := heapAllocs()
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = int16(4 + version%9)
		if err := resp.ReadFrom(body); err != nil {
			return // the connection reports ErrProtocol; nothing is decoded
		}
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				rp := &resp.Topics[i].Partitions[j]
				checkDecoded(t, rp.RecordBatches, fetchOffset, readCommitted, abortedOf(rp), dec)
				checkDecoded(t, fixCRCs(rp.RecordBatches), fetchOffset, readCommitted, abortedOf(rp), dec)
			}
		}
		// kmsg allocates each array's elements before reading them (bounded
		// by the bytes left), and decoding copies records out; both are
		// proportional to the input. The slack is the decompressor's pool.
		if grew := heapAllocs() - before; grew > uint64(512*len(body)+(8<<20)) {
			t.Fatalf("%d bytes of response allocated %d bytes", len(body), grew)
		}
	})
}

func checkDecoded(t *testing.T, data []byte, fetchOffset int64, readCommitted bool, aborted []abortedTxn, dec *record.Decompressor) {
	t.Helper()
	d := decodeAs(&RecordShape, topicpart.TP{Topic: "t"}, data, fetchOffset, readCommitted, aborted, dec)
	if d.err != nil && !errors.Is(d.err, errs.ErrCorruptMessage) && !errors.Is(d.err, record.ErrUnsupportedMagic) &&
		!errors.Is(d.err, record.ErrTooLarge) && !errors.Is(d.err, record.ErrUnknownCodec) {
		t.Fatalf("decode error matching no sentinel: %v", d.err)
	}
	if d.next < fetchOffset {
		t.Fatalf("next offset %d below the fetch offset %d", d.next, fetchOffset)
	}
	if len(d.records) > len(data) {
		t.Fatalf("%d records from %d bytes", len(d.records), len(data))
	}
	// Offsets never go below the fetch offset nor back across batches (a
	// batch's base offset is outside its CRC), and the next fetch starts
	// past every record returned. Within one CRC-valid batch the offsets
	// are taken as the broker wrote them.
	for i, r := range d.records {
		if r.Offset < fetchOffset || r.Offset >= d.next {
			t.Fatalf("record %d at offset %d: fetch offset %d, next fetch at %d", i, r.Offset, fetchOffset, d.next)
		}
	}
	for i := 1; i < len(d.spans); i++ {
		prevLast, first := d.records[d.spans[i-1].end-1].Offset, d.records[d.spans[i-1].end].Offset
		if first <= prevLast {
			t.Fatalf("batch %d starts at offset %d, at or below the previous batch's last record %d", i, first, prevLast)
		}
	}
	if n := len(d.spans); n > 0 && d.spans[n-1].end != len(d.records) {
		t.Fatalf("spans end at %d, %d records", d.spans[n-1].end, len(d.records))
	}
}

// fixCRCs returns a copy of data with the CRC of each complete batch
// recomputed.
func fixCRCs(data []byte) []byte {
	out := bytes.Clone(data)
	for p := out; len(p) >= record.BatchHeaderLen; {
		length := int(int32(binary.BigEndian.Uint32(p[8:])))
		if length < record.BatchHeaderLen-12 || 12+length > len(p) {
			break
		}
		batch := p[:12+length]
		binary.BigEndian.PutUint32(batch[17:], record.CRC32C(batch[21:]))
		p = p[len(batch):]
	}
	return out
}

type fetchSeed struct {
	version       uint8 // the response version is 4 + version%9
	readCommitted bool
	fetchOffset   int64
	body          []byte
}

// fetchSeeds are Fetch responses encoded by kmsg (franz-go) around batches
// encoded by keel's builder with every codec, transactional data with its
// commit and abort markers and aborted-transaction list, a partition error,
// and a response cut short.
func fetchSeeds(tb testing.TB) []fetchSeed {
	var plain []byte
	for i, c := range []record.Codec{record.CodecNone, record.CodecGzip, record.CodecSnappy, record.CodecLZ4, record.CodecZstd} {
		plain = append(plain, seedBatch(tb, int64(10*i), 3, record.NoProducer, c)...)
	}
	txnData := append(seedBatch(tb, 0, 3, txn(7), record.CodecNone), controlBatch(3, 7, record.ControlAbort)...)
	txnData = append(txnData, seedBatch(tb, 4, 2, txn(8), record.CodecZstd)...)
	txnData = append(txnData, controlBatch(6, 8, record.ControlCommit)...)

	build := func(v int16, parts ...kmsg.FetchResponseTopicPartition) []byte {
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = v
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = "t"
		rt.Partitions = parts
		resp.Topics = append(resp.Topics, rt)
		return resp.AppendTo(nil)
	}
	part := func(p int32, code int16, data []byte, aborted ...kmsg.FetchResponseTopicPartitionAbortedTransaction) kmsg.FetchResponseTopicPartition {
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition, rp.ErrorCode, rp.HighWatermark, rp.LastStableOffset = p, code, 50, 50
		rp.RecordBatches, rp.AbortedTransactions = data, aborted
		return rp
	}
	abort7 := kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: 7, FirstOffset: 0}
	var seeds []fetchSeed
	for _, v := range []int16{4, 7, 11, 12} {
		body := build(v, part(0, 0, plain), part(1, 0, txnData, abort7), part(2, errs.CodeNotLeaderOrFollower, nil))
		seeds = append(seeds,
			fetchSeed{uint8(v - 4), false, 0, body},
			fetchSeed{uint8(v - 4), true, 2, body},
		)
	}
	full := seeds[len(seeds)-1].body
	seeds = append(seeds, fetchSeed{8, false, 0, full[:len(full)-30]})
	return seeds
}

// seedBatch is dataBatch with headers, for a testing.TB.
func seedBatch(tb testing.TB, base int64, n int, p record.ProducerState, codec record.Codec) []byte {
	b := record.NewBatchBuilder(record.Compression{Codec: codec})
	for i := range n {
		b.Append(&record.Record{Key: []byte("k"), Value: []byte("value value value value value value"), Timestamp: 1000 + int64(i),
			Headers: []record.Header{{Key: "h", Value: []byte("x")}}})
	}
	out, err := b.Finish(nil, p)
	if err != nil {
		tb.Fatal(err)
	}
	binary.BigEndian.PutUint64(out, uint64(base))
	return out
}

// heapAllocs is the process's cumulative heap allocation in bytes, cheap
// enough to read per fuzz input (it does not stop the world).
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
