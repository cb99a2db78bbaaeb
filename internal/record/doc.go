// Package record encodes and decodes Kafka record batches (magic 2, the only
// format since Kafka 0.11 that brokers of 4.0 still accept) and compresses
// their records sections.
//
// Producing, per partition batch:
//
//	b := record.NewBatchBuilder(record.Compression{Codec: record.CodecZstd})
//	for each message {
//		r := record.Record{Key: k, Value: v, Headers: hs, Timestamp: ms}
//		if b.NumRecords() > 0 && b.Size()+b.RecordSize(&r) > maxBatchBytes {
//			// seal the current batch first
//		}
//		b.Append(&r)
//	}
//	// when the batch is drained and its sequence is known:
//	wire, err := b.Finish(buf[:0], record.ProducerState{ID: pid, Epoch: ep, BaseSequence: seq})
//	b.Reset()
//
// The wire bytes go into the Produce request unchanged, and are resent
// unchanged on retry. SetProducer rewrites the producer fields (and CRC) of
// a finished batch that was never sent.
//
// Consuming, per fetched partition:
//
//	var rd record.Reader
//	rd.Reset(partition.RecordBatches)
//	var b record.Batch
//	for {
//		err := rd.Next(&b)
//		if err == io.EOF { break }        // done; a trailing partial batch is dropped
//		if err != nil { return err }      // ErrCorrupt / ErrUnsupportedMagic
//		if b.Attributes.Control() { t, err := b.ControlType(dec); ...; continue }
//		recs, err = b.AppendRecords(recs[:0], dec) // or Decompress + Iter
//		next = b.NextOffset()
//	}
//
// Decoded keys, values and header values alias either the fetch buffer
// (uncompressed batches) or the decompression buffer; they are never copied.
package record
