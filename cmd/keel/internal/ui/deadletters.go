package ui

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/retry"
)

// deadInfoJSON is what the retry package's headers say of a record.
type deadInfoJSON struct {
	Kind              string    `json:"kind"` // "dead-letter" or "retry"
	Attempt           int       `json:"attempt"`
	Reason            string    `json:"reason,omitempty"` // permanent or exhausted, for a dead letter
	Error             string    `json:"error"`
	Group             string    `json:"group"`
	OriginalTopic     string    `json:"originalTopic"`
	OriginalPartition int32     `json:"originalPartition"`
	OriginalOffset    int64     `json:"originalOffset"`
	OriginalTimestamp time.Time `json:"originalTimestamp"`
	FirstFailure      time.Time `json:"firstFailure"`
	RetryAfter        time.Time `json:"retryAfter,omitzero"`
	Malformed         string    `json:"malformed,omitempty"` // why a header could not be read
}

// deadInfoOf reads the retry headers of m; nil when it carries none.
func deadInfoOf(m *keel.Message) *deadInfoJSON {
	info, ok, err := retry.InfoOf(m)
	if !ok && err == nil {
		return nil
	}
	d := &deadInfoJSON{Kind: "retry", Attempt: info.Attempt, Reason: info.DeadLetterReason, Error: info.LastError, Group: info.Group,
		OriginalTopic: info.OriginalTopic, OriginalPartition: info.OriginalPartition, OriginalOffset: info.OriginalOffset,
		OriginalTimestamp: info.OriginalTimestamp, FirstFailure: info.FirstFailure, RetryAfter: info.RetryAfter}
	if info.DeadLetterReason != "" {
		d.Kind = "dead-letter"
	}
	if err != nil {
		d.Malformed = err.Error()
	}
	return d
}

type deadTopicJSON struct {
	Topic    string    `json:"topic"`
	Kind     string    `json:"kind"` // dead-letter or retry
	Records  int64     `json:"records"`
	Origin   string    `json:"origin,omitempty"` // the source topic its last record names
	LastSeen time.Time `json:"lastSeen,omitzero"`
}

// peekTime bounds the reading of each partition's last record when
// looking for dead-letter topics.
const peekTime = 3 * time.Second

// maxPeekedPartitions bounds that reading on clusters with many topics:
// past it only topics named like the retry package's (.dlt, .retry.N)
// are looked at.
const maxPeekedPartitions = 2000

// listDeadLetterTopics finds the topics the retry package writes: it
// reads the last record of each partition and keeps the topics whose
// records carry the retry headers (a dead-letter reason: a dead-letter
// topic; an attempt count only: a retry topic).
func (s *Server) listDeadLetterTopics(ctx context.Context, r *http.Request) (any, error) {
	md, err := s.cfg.Client.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, t := range md.Topics {
		if !t.Internal {
			names = append(names, t.Name)
		}
	}
	out := []deadTopicJSON{}
	if len(names) == 0 {
		return out, nil
	}
	starts, ends, err := s.offsetRange(ctx, names...)
	if err != nil {
		return nil, err
	}
	var last []keel.TopicPartition
	for tp, end := range ends {
		if end > starts[tp] {
			last = append(last, tp)
		}
	}
	if len(last) > maxPeekedPartitions {
		last = slices.DeleteFunc(last, func(tp keel.TopicPartition) bool { return !namedLikeRetry(tp.Topic) })
	}
	found, err := s.peekLast(ctx, last, ends)
	if err != nil {
		return nil, err
	}
	for topic, d := range found {
		row := deadTopicJSON{Topic: topic, Kind: d.info.Kind, Origin: d.info.OriginalTopic, LastSeen: d.at}
		for tp, end := range ends {
			if tp.Topic == topic {
				row.Records += max(end-starts[tp], 0)
			}
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b deadTopicJSON) int { return strings.Compare(a.Topic, b.Topic) })
	return out, nil
}

func namedLikeRetry(topic string) bool {
	if strings.HasSuffix(topic, ".dlt") {
		return true
	}
	i := strings.LastIndex(topic, ".retry.")
	if i < 0 {
		return false
	}
	_, err := strconv.Atoi(topic[i+len(".retry."):])
	return err == nil
}

type peeked struct {
	info *deadInfoJSON
	at   time.Time
}

// peekLast reads the last record of each partition in tps with one
// consumer and returns, per topic, the retry headers of the newest one
// that has them. A dead-letter kind wins over retry for the topic.
func (s *Server) peekLast(ctx context.Context, tps []keel.TopicPartition, ends map[keel.TopicPartition]int64) (map[string]peeked, error) {
	found := map[string]peeked{}
	if len(tps) == 0 {
		return found, nil
	}
	cons, err := keel.NewConsumer(s.cfg.Client)
	if err != nil {
		return nil, err
	}
	defer cons.Close(context.Background())
	for _, tp := range tps {
		if err := cons.Assign(tp, keel.AtOffset(ends[tp]-1)); err != nil {
			return nil, err
		}
	}
	readCtx, cancel := context.WithTimeout(ctx, peekTime)
	defer cancel()
	pending := len(tps)
	for pending > 0 {
		msgs, err := cons.Poll(readCtx)
		if err != nil && len(msgs) == 0 {
			if readCtx.Err() != nil {
				break // what was read is what the list shows
			}
			continue
		}
		for _, m := range msgs {
			tp := keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}
			if m.Offset != ends[tp]-1 {
				continue
			}
			pending--
			cons.Unassign(tp)
			d := deadInfoOf(m)
			if d == nil {
				continue
			}
			if prev, ok := found[m.Topic]; !ok || (prev.info.Kind != "dead-letter" && d.Kind == "dead-letter") || m.Timestamp.After(prev.at) && prev.info.Kind == d.Kind {
				found[m.Topic] = peeked{info: d, at: m.Timestamp}
			}
		}
	}
	return found, nil
}

// replayJSON says which dead letters to replay.
type replayJSON struct {
	// Records replays exactly these (partition and offset in the
	// dead-letter topic); Since replays every dead letter from that time
	// on; All replays the whole topic. Exactly one of them.
	Records []struct {
		Partition int32 `json:"partition"`
		Offset    int64 `json:"offset"`
	} `json:"records"`
	Since string `json:"since"`
	All   bool   `json:"all"`
	// To sends them to this topic instead of each record's origin.
	To string `json:"to"`
}

type replayedJSON struct {
	From      string `json:"from"` // dead-letter topic/partition@offset
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Error     string `json:"error,omitempty"`
}

type replayResultJSON struct {
	Group    string         `json:"group"`
	Replayed int            `json:"replayed"`
	Skipped  int            `json:"skipped"`
	Records  []replayedJSON `json:"records"`
	Error    string         `json:"error,omitempty"`
}

// maxReplayList bounds the per-record list in a replay's answer; the
// counts stay exact.
const maxReplayList = 1000

// replay moves dead letters back with retry.Replay, the code behind
// `keel dlq replay`: each record's key, value and own headers go to its
// origin topic, the replay's progress is kept by a consumer group, and
// every copy was acknowledged before it counts.
func (s *Server) replay(ctx context.Context, r *http.Request) (any, error) {
	dlt, err := topicParam(r)
	if err != nil {
		return nil, err
	}
	var req replayJSON
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	choices := 0
	for _, set := range []bool{len(req.Records) > 0, req.Since != "", req.All} {
		if set {
			choices++
		}
	}
	if choices != 1 {
		return nil, badRequest("say what to replay: records [{partition, offset}], since (a time) or all true — exactly one")
	}
	if req.To != "" {
		if err := keel.ValidateTopicName(req.To); err != nil {
			return nil, &apiError{status: http.StatusBadRequest, msg: "bad topic name in to", err: err}
		}
		if req.To == dlt {
			return nil, badRequest("to names the dead-letter topic itself; replay to the topic the records came from")
		}
	}
	opts := retry.ReplayOptions{DLT: dlt, Topic: req.To}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s|%v|", dlt, req.To, req.All)
	switch {
	case len(req.Records) > 0:
		want := make(map[keel.TopicPartition]map[int64]bool)
		for _, rec := range req.Records {
			tp := keel.TopicPartition{Topic: dlt, Partition: rec.Partition}
			if want[tp] == nil {
				want[tp] = map[int64]bool{}
			}
			want[tp][rec.Offset] = true
			fmt.Fprintf(h, "%d@%d,", rec.Partition, rec.Offset)
		}
		opts.Filter = func(m *keel.Message) bool {
			return want[keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}][m.Offset]
		}
	case req.Since != "":
		t, err := parseTime(req.Since)
		if err != nil {
			return nil, err
		}
		opts.Since = t
		fmt.Fprintf(h, "since %d", t.UnixMilli())
	}
	// A group per selection: replaying the same selection again resumes
	// (and finds nothing left); another selection starts afresh instead
	// of skipping what this one passed over.
	opts.Group = fmt.Sprintf("keel-ui-replay.%s.%x", dlt, h.Sum64())
	var mu sync.Mutex
	res := replayResultJSON{Records: []replayedJSON{}}
	opts.OnReplay = func(from *keel.Message, to keel.Delivery) {
		mu.Lock()
		defer mu.Unlock()
		if len(res.Records) == maxReplayList {
			return
		}
		rj := replayedJSON{From: fmt.Sprintf("%s/%d@%d", from.Topic, from.Partition, from.Offset), Partition: to.Partition, Offset: to.Offset}
		if to.Message != nil {
			rj.Topic = to.Message.Topic
		}
		if to.Err != nil {
			rj.Error = to.Err.Error()
		}
		res.Records = append(res.Records, rj)
	}
	p, err := s.prod.get(false)
	if err != nil {
		return nil, err
	}
	opts.Producer = p
	out, err := retry.Replay(ctx, s.cfg.Client, opts)
	mu.Lock()
	defer mu.Unlock()
	res.Group, res.Replayed, res.Skipped = out.Group, out.Replayed, out.Skipped
	if err != nil {
		if out.Replayed == 0 {
			return nil, err
		}
		res.Error = err.Error() // say what it did, even when it failed later
	}
	return res, nil
}
