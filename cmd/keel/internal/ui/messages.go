package ui

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

const (
	defaultPageSize = 50
	maxPageSize     = 200
	// maxScanned bounds how many records one filtered page reads looking
	// for matches; the answer's next offset continues the scan.
	maxScanned = 10000
	// pageReadTime bounds the reading of one page: a partition whose
	// leader does not answer gives a partial page, not a hung request.
	pageReadTime = 5 * time.Second
)

// pageJSON is one page of a partition's records.
type pageJSON struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	LogStart  int64        `json:"logStart"`
	LogEnd    int64        `json:"logEnd"`
	From      int64        `json:"from"` // the first offset read
	Next      int64        `json:"next"` // where the next page starts; == logEnd at the end
	Prev      int64        `json:"prev"` // where the previous page starts (no filter); == from at the start
	Scanned   int          `json:"scanned"`
	Partial   bool         `json:"partial"` // reading stopped at its time bound before the page was full
	Records   []recordJSON `json:"records"`
}

// pageQuery is a parsed messages request.
type pageQuery struct {
	tp    keel.TopicPartition
	start string // earliest, latest, offset, time
	off   int64
	at    time.Time
	limit int
	key   []byte // filter: only records with exactly this key
	byKey bool
}

func parsePageQuery(r *http.Request, topic string) (pageQuery, error) {
	q := r.URL.Query()
	pq := pageQuery{tp: keel.TopicPartition{Topic: topic}, start: q.Get("start"), limit: defaultPageSize}
	p, err := strconv.ParseInt(q.Get("partition"), 10, 32)
	if err != nil || p < 0 {
		return pq, badRequest("partition=%q: give the partition number, 0 or more", q.Get("partition"))
	}
	pq.tp.Partition = int32(p)
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			return pq, badRequest("limit=%q: a page holds 1 to %d records", s, maxPageSize)
		}
		pq.limit = n
	}
	if q.Has("key") {
		pq.key, pq.byKey = []byte(q.Get("key")), true
	}
	switch pq.start {
	case "", "earliest":
		pq.start = "earliest"
	case "latest":
	case "offset":
		pq.off, err = strconv.ParseInt(q.Get("offset"), 10, 64)
		if err != nil || pq.off < 0 {
			return pq, badRequest("offset=%q: offsets are whole numbers, 0 or more", q.Get("offset"))
		}
	case "time":
		pq.at, err = parseTime(q.Get("time"))
		if err != nil {
			return pq, err
		}
	default:
		return pq, badRequest("start=%q: use earliest, latest, offset (with offset=N) or time (with time=RFC 3339 or Unix milliseconds)", pq.start)
	}
	return pq, nil
}

func parseTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms >= 0 {
		return time.UnixMilli(ms), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, badRequest("time=%q: give RFC 3339 (2024-05-01T10:00:00Z), 2024-05-01T10:00, 2024-05-01 or Unix milliseconds", s)
}

func (s *Server) getMessages(ctx context.Context, r *http.Request) (any, error) {
	topic, err := topicParam(r)
	if err != nil {
		return nil, err
	}
	pq, err := parsePageQuery(r, topic)
	if err != nil {
		return nil, err
	}
	starts, ends, err := s.offsetRange(ctx, topic)
	if err != nil {
		return nil, err
	}
	logStart, ok := starts[pq.tp]
	if !ok {
		return nil, &apiError{status: http.StatusNotFound, msg: "topic " + strconv.Quote(topic) + " has no partition " + strconv.Itoa(int(pq.tp.Partition)) + " (it has " + strconv.Itoa(len(starts)) + ")"}
	}
	logEnd := ends[pq.tp]
	from, err := s.pageStart(ctx, pq, logStart, logEnd)
	if err != nil {
		return nil, err
	}
	page := pageJSON{Topic: topic, Partition: pq.tp.Partition, LogStart: logStart, LogEnd: logEnd, From: from, Next: from, Records: []recordJSON{}}
	page.Prev = max(from-int64(pq.limit), logStart)
	if from >= logEnd {
		page.Next = logEnd
		return page, nil
	}
	if err := s.readPage(ctx, pq, logEnd, &page); err != nil {
		return nil, err
	}
	return page, nil
}

// pageStart is the first offset a page reads, inside the log.
func (s *Server) pageStart(ctx context.Context, pq pageQuery, logStart, logEnd int64) (int64, error) {
	switch pq.start {
	case "latest":
		return max(logEnd-int64(pq.limit), logStart), nil
	case "offset":
		return min(max(pq.off, logStart), logEnd), nil
	case "time":
		listed, err := s.admin.ListOffsets(ctx, admin.AtTime(pq.at), pq.tp.Topic)
		if err != nil {
			return 0, err
		}
		o := listed[pq.tp].Offset
		if o < 0 { // no record at or after the time
			return logEnd, nil
		}
		return min(max(o, logStart), logEnd), nil
	}
	return logStart, nil
}

// readPage reads records from page.From with a consumer of its own,
// stopping at a full page, the end the log had when the request came, the
// scan bound or the time bound — never more than one page of records is
// kept.
func (s *Server) readPage(ctx context.Context, pq pageQuery, logEnd int64, page *pageJSON) error {
	cons, err := keel.NewConsumer(s.cfg.Client)
	if err != nil {
		return err
	}
	defer cons.Close(context.Background())
	if err := cons.Assign(pq.tp, keel.AtOffset(page.From)); err != nil {
		return err
	}
	readCtx, cancel := context.WithTimeout(ctx, pageReadTime)
	defer cancel()
	next := page.From
	for next < logEnd && len(page.Records) < pq.limit && page.Scanned < maxScanned {
		msgs, err := cons.Poll(readCtx)
		if err != nil {
			if readCtx.Err() != nil && ctx.Err() == nil {
				page.Partial = true
				break
			}
			if len(msgs) == 0 {
				return err
			}
		}
		for _, m := range msgs {
			if m.Offset < next || m.Offset >= logEnd {
				continue
			}
			next = m.Offset + 1
			page.Scanned++
			if pq.byKey && (m.Key == nil || !bytes.Equal(m.Key, pq.key)) {
				continue
			}
			page.Records = append(page.Records, recordOf(m))
			if len(page.Records) == pq.limit || page.Scanned == maxScanned {
				break
			}
		}
	}
	page.Next = next
	return nil
}

// produceJSON is a record to produce from the console.
type produceJSON struct {
	Partition *int32  `json:"partition"` // nil: the default partitioner (by key)
	Key       *string `json:"key"`       // nil: Kafka's null key
	Value     *string `json:"value"`     // nil: a null value (a tombstone)
	Headers   []struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	} `json:"headers"`
}

type deliveredJSON struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Timestamp time.Time `json:"timestamp"`
}

func (s *Server) produce(ctx context.Context, r *http.Request) (any, error) {
	topic, err := topicParam(r)
	if err != nil {
		return nil, err
	}
	var req produceJSON
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	msg := &keel.Message{Topic: topic}
	if req.Key != nil {
		msg.Key = []byte(*req.Key)
	}
	if req.Value != nil {
		msg.Value = []byte(*req.Value)
	}
	for _, h := range req.Headers {
		hd := keel.Header{Key: h.Key}
		if h.Value != nil {
			hd.Value = []byte(*h.Value)
		}
		msg.Headers = append(msg.Headers, hd)
	}
	manual := req.Partition != nil
	if manual {
		if *req.Partition < 0 {
			return nil, badRequest("partition %d: partitions are numbered from 0 (leave it out to partition by key)", *req.Partition)
		}
		msg.Partition = *req.Partition
	}
	p, err := s.prod.get(manual)
	if err != nil {
		return nil, err
	}
	d, err := p.Send(ctx, msg)
	if err != nil {
		return nil, err
	}
	return deliveredJSON{Topic: topic, Partition: d.Partition, Offset: d.Offset, Timestamp: d.Timestamp}, nil
}
