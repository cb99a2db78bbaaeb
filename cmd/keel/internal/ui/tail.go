package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/keel-go/keel"
)

// tailLimits bound a live tail: a forgotten browser tab must not hold a
// consumer forever, and a busy topic must not flood it.
type tailLimits struct {
	maxDuration time.Duration // the stream ends after this; the page reconnects
	heartbeat   time.Duration // a comment line keeps proxies from closing an idle stream
	maxPerEvent int           // records sent per poll at most; the rest are counted as skipped
}

var defaultTailLimits = tailLimits{maxDuration: 10 * time.Minute, heartbeat: 15 * time.Second, maxPerEvent: 100}

// tailMessages streams records appended to a topic (one partition with
// partition=N) as Server-Sent Events: "record" events carry a record's
// JSON, "skipped" events how many records a busy topic produced beyond
// what the stream sends.
func (s *Server) tailMessages(w http.ResponseWriter, r *http.Request) {
	topic, err := topicParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, &apiError{status: http.StatusInternalServerError, msg: "this server cannot stream"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.tail.maxDuration)
	defer cancel()
	stop := context.AfterFunc(s.closing, cancel)
	defer stop()

	tps, err := s.tailPartitions(ctx, r, topic)
	if err != nil {
		writeError(w, err)
		return
	}
	// The stream starts at the end each partition has now, read before the
	// answer goes out: every record written after the browser saw the
	// stream open is sent. (AtLatest would find the end only at the first
	// poll, and miss what was written in between.)
	endCtx, endCancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	ends, err := s.admin.EndOffsets(endCtx, topic)
	endCancel()
	if err != nil {
		writeError(w, err)
		return
	}
	cons, err := keel.NewConsumer(s.cfg.Client)
	if err != nil {
		writeError(w, err)
		return
	}
	defer cons.Close(context.Background())
	for _, tp := range tps {
		end, ok := ends[tp]
		if !ok {
			writeError(w, &apiError{status: http.StatusBadGateway, msg: fmt.Sprintf("the cluster gave no end offset for %s[%d]", tp.Topic, tp.Partition)})
			return
		}
		if err := cons.Assign(tp, keel.AtOffset(end)); err != nil {
			writeError(w, err)
			return
		}
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": tailing\n\n")
	flusher.Flush()

	for ctx.Err() == nil {
		pollCtx, pollCancel := context.WithTimeout(ctx, s.tail.heartbeat)
		msgs, _ := cons.Poll(pollCtx) // a partition's error is retried by the next poll
		pollCancel()
		if len(msgs) == 0 {
			if _, err := fmt.Fprint(w, ": idle\n\n"); err != nil {
				return
			}
			flusher.Flush()
			continue
		}
		sent := min(len(msgs), s.tail.maxPerEvent)
		for _, m := range msgs[:sent] {
			b, _ := json.Marshal(recordOf(m))
			if _, err := fmt.Fprintf(w, "event: record\ndata: %s\n\n", b); err != nil {
				return
			}
		}
		if skipped := len(msgs) - sent; skipped > 0 {
			fmt.Fprintf(w, "event: skipped\ndata: %d\n\n", skipped)
		}
		flusher.Flush()
	}
}

func (s *Server) tailPartitions(ctx context.Context, r *http.Request, topic string) ([]keel.TopicPartition, error) {
	md, err := s.cfg.Client.Metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	n := len(md.Topics[0].Partitions)
	if ps := r.URL.Query().Get("partition"); ps != "" {
		p, err := strconv.Atoi(ps)
		if err != nil || p < 0 || p >= n {
			return nil, badRequest("partition=%q: topic %q has partitions 0 to %d", ps, topic, n-1)
		}
		return []keel.TopicPartition{{Topic: topic, Partition: int32(p)}}, nil
	}
	out := make([]keel.TopicPartition, n)
	for i := range out {
		out[i] = keel.TopicPartition{Topic: topic, Partition: int32(i)}
	}
	return out, nil
}
