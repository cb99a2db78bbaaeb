package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The wire ceiling: what the broker on this machine accepts when no client
// does any work per record. Produce requests are encoded once (every
// partition gets one batch of the largest size the clients may build) and
// written back to back, up to 5 in flight like the clients; the consume
// ceiling fetches the prefilled topic and only reads batch headers.

// ceilingInFlight is the clients' requests in flight per broker.
const ceilingInFlight = 5

func runCeiling(ctx context.Context, s spec, r *result) error {
	r.Settings = fmt.Sprintf("pre-encoded Produce v8 requests (acks=all, not idempotent: the same bytes are replayed) with one batch of up to %d bytes per partition, %d in flight on one connection; consume: Fetch v11, batch headers only",
		s.Settings.MaxBatchBytes, ceilingInFlight)
	switch s.Kind {
	case kindProduce:
		var w window
		n, err := replayProduce(ctx, s, &w, r)
		r.Records = n
		return err
	case kindConsume:
		return fetchCeiling(ctx, s, r)
	}
	return errors.New("the ceiling has no " + string(s.Kind) + " workload")
}

// produceRequests encodes the requests that carry records records: one
// full request replayed, and a last one for the rest.
func produceRequests(c *rawConn, s spec) (full []byte, fullRecs int, tail []byte, tailRecs int, err error) {
	values := payloads(s.Settings.Values, s.ValueBytes)
	per := recordsPerBatch(s.ValueBytes, s.Settings.MaxBatchBytes)
	build := func(records int) ([]byte, int, error) {
		req := kmsg.NewPtrProduceRequest()
		req.Version = 8
		req.Acks = -1
		req.TimeoutMillis = 30_000
		t := kmsg.NewProduceRequestTopic()
		t.Topic = s.Topic
		v := 0
		total := 0
		for p := range s.Settings.Partitions {
			n := records / s.Settings.Partitions
			if p < records%s.Settings.Partitions {
				n++
			}
			if n == 0 {
				continue
			}
			vals := make([][]byte, n)
			for i := range vals {
				vals[i] = values[v%len(values)]
				v++
			}
			b, err := encodeBatch(vals, s.Codec)
			if err != nil {
				return nil, 0, err
			}
			pt := kmsg.NewProduceRequestTopicPartition()
			pt.Partition = int32(p)
			pt.Records = b
			t.Partitions = append(t.Partitions, pt)
			total += n
		}
		req.Topics = append(req.Topics, t)
		return c.encode(req), total, nil
	}
	perReq := per * s.Settings.Partitions
	if s.Records >= perReq {
		if full, fullRecs, err = build(perReq); err != nil {
			return
		}
	}
	if rest := s.Records % perReq; rest > 0 {
		tail, tailRecs, err = build(rest)
	}
	return
}

// replayProduce writes s.Records records as pre-encoded requests, timing
// the writing (in w) only, and returns how many the broker acknowledged.
func replayProduce(ctx context.Context, s spec, w *window, r *result) (int64, error) {
	c, err := dialRaw(ctx, s.Broker)
	if err != nil {
		return 0, err
	}
	defer c.close()
	full, fullRecs, tail, tailRecs, err := produceRequests(c, s)
	if err != nil {
		return 0, err
	}
	var reqs [][]byte
	var recs []int
	for fullRecs > 0 && len(reqs)*fullRecs+fullRecs <= s.Records {
		reqs, recs = append(reqs, full), append(recs, fullRecs)
	}
	if tail != nil {
		reqs, recs = append(reqs, tail), append(recs, tailRecs)
	}

	slots := make(chan struct{}, ceilingInFlight)
	readErr := make(chan error, 1)
	var acked int64
	var last time.Time
	if w != nil {
		if err := w.begin(s.CPUProfile); err != nil {
			return 0, err
		}
	}
	go func() {
		var buf []byte
		resp := kmsg.NewPtrProduceResponse()
		for k := range reqs {
			resp.Version = 8
			var err error
			if buf, err = c.read(buf, resp); err != nil {
				readErr <- fmt.Errorf("reading produce response %d: %w", k, err)
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if p.ErrorCode != 0 {
						readErr <- fmt.Errorf("partition %d: error code %d", p.Partition, p.ErrorCode)
						return
					}
				}
			}
			acked += int64(recs[k])
			last = time.Now()
			<-slots
		}
		readErr <- nil
	}()
	for _, b := range reqs {
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			return acked, err
		case <-ctx.Done():
			return acked, ctx.Err()
		}
		if err := c.write(b); err != nil {
			return acked, err
		}
	}
	select {
	case err = <-readErr:
	case <-ctx.Done():
		c.close() // ends the reader
		<-readErr
		return acked, ctx.Err()
	}
	if w != nil && r != nil {
		w.end(last, r)
	}
	return acked, err
}

// fetchCeiling reads s.Records records of the prefilled topic with
// sessionless fetches, one in flight as a client would, decoding nothing
// but batch headers.
func fetchCeiling(ctx context.Context, s spec, r *result) error {
	c, err := dialRaw(ctx, s.Broker)
	if err != nil {
		return err
	}
	defer c.close()
	offsets := make([]int64, s.Settings.Partitions)
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.ReplicaID = -1
	req.MaxWaitMillis = 500
	req.MinBytes = 1
	req.MaxBytes = 50 << 20
	req.SessionEpoch = -1
	resp := kmsg.NewPtrFetchResponse()
	var buf []byte
	// As for the clients, the window opens once a fifth of the records
	// arrived.
	var w window
	var got, skipped int64
	skip := int64(consumeSkip(s.Records))
	for got < int64(s.Records) {
		if err := ctx.Err(); err != nil {
			r.Records = got
			return err
		}
		t := kmsg.NewFetchRequestTopic()
		t.Topic = s.Topic
		for p, off := range offsets {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition = int32(p)
			fp.FetchOffset = off
			fp.PartitionMaxBytes = 1 << 20
			t.Partitions = append(t.Partitions, fp)
		}
		req.Topics = []kmsg.FetchRequestTopic{t}
		if err := c.write(c.encode(req)); err != nil {
			return err
		}
		resp.Default()
		resp.Version = 11
		if buf, err = c.read(buf, resp); err != nil {
			return fmt.Errorf("reading fetch response: %w", err)
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != 0 {
					return fmt.Errorf("fetch partition %d: error code %d", rp.Partition, rp.ErrorCode)
				}
				b := rp.RecordBatches
				for len(b) > 0 {
					_, n, next, size, err := batchRecords(b)
					if err != nil {
						return err
					}
					if size == 0 {
						break
					}
					got += int64(n)
					offsets[rp.Partition] = next
					b = b[size:]
				}
			}
		}
		if w.start.IsZero() && got >= skip && got < int64(s.Records) {
			skipped = got
			if err := w.begin(s.CPUProfile); err != nil {
				return err
			}
		}
	}
	if w.start.IsZero() {
		return fmt.Errorf("all %d records came in the first fetch answers: too few to time", got)
	}
	w.end(time.Now(), r)
	r.Records = min(got, int64(s.Records))
	r.WindowRecords = r.Records - skipped
	return nil
}

// prefill writes the consume workload's records into the fresh topic
// before the consumer starts (not timed, not any client's code).
func prefill(ctx context.Context, s spec) error {
	n, err := replayProduce(ctx, s, nil, nil)
	if err != nil {
		return fmt.Errorf("prefilling %s: %w", s.Topic, err)
	}
	if n != int64(s.Records) {
		return fmt.Errorf("prefilling %s: %d of %d records acknowledged", s.Topic, n, s.Records)
	}
	return nil
}

// prefillCluster fills the topic of a workload on several brokers, where
// a replay to one broker would meet partitions it does not lead: it
// produces with franz-go (unkeyed, the values the consumers check, the
// workload's codec), and waits for every record to be acknowledged.
// The codec is set, not left to franz-go's default (snappy): before
// 2026-12-03 20:10 UTC consume-100B-64p was prefilled snappy-compressed
// while consume-100B, replayed uncompressed, was not, so the two consume
// workloads measured different decoding work.
func prefillCluster(ctx context.Context, s spec) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(s.Broker, ",")...),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(int32(s.Settings.MaxBatchBytes)),
		kgo.ProducerBatchCompression(franzCodec(s.Codec)),
		kgo.MaxBufferedRecords(1<<20),
	)
	if err != nil {
		return fmt.Errorf("prefilling %s: %w", s.Topic, err)
	}
	defer cl.Close()
	values := payloads(s.Settings.Values, s.ValueBytes)
	var failed atomic.Int64
	var first atomic.Value
	for i := range s.Records {
		cl.Produce(ctx, &kgo.Record{Topic: s.Topic, Value: values[i%len(values)]}, func(_ *kgo.Record, err error) {
			if err != nil && failed.Add(1) == 1 {
				first.Store(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("prefilling %s: %w", s.Topic, err)
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("prefilling %s: %d of %d records failed, first: %v", s.Topic, n, s.Records, first.Load())
	}
	return nil
}
