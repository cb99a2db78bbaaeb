package ui

import (
	"strings"
	"testing"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/cmd/keel/internal/ui/uifixture"
	"github.com/keel-go/keel/retry"
)

func TestDeadLettersListedWithErrorOriginAndReplayed(t *testing.T) {
	f := newFixture(t, Config{})
	f.createTopic("orders", 1)
	f.produce(&keel.Message{Topic: "orders", Key: []byte("good"), Value: []byte("1")},
		&keel.Message{Topic: "orders", Key: []byte("bad"), Value: []byte("NaN")})
	dl, err := uifixture.DeadLetterOne(f.client, "orders")
	if err != nil {
		t.Fatal(err)
	}

	var topics []deadTopicJSON
	f.mustOK("GET", "/api/deadletters", nil, &topics)
	if len(topics) != 1 || topics[0].Topic != dl.Topic || topics[0].Kind != "dead-letter" || topics[0].Origin != "orders" || topics[0].Records != 1 {
		t.Fatalf("dead-letter topics: %+v (written to %s)", topics, dl.Topic)
	}
	var page pageJSON
	f.mustOK("GET", "/api/topics/"+dl.Topic+"/messages?partition=0", nil, &page)
	if len(page.Records) != 1 || page.Records[0].DeadLetter == nil {
		t.Fatalf("dead-letter page: %+v", page)
	}
	info := page.Records[0].DeadLetter
	if !strings.Contains(info.Error, "price is not a number") || info.OriginalTopic != "orders" || info.OriginalOffset != 1 || info.Reason != "permanent" || info.Attempt != 1 || info.Group != "billing" {
		t.Fatalf("dead-letter info: %+v", info)
	}

	var res replayResultJSON
	f.mustOK("POST", "/api/deadletters/"+dl.Topic+"/replay", map[string]any{"records": []map[string]any{{"partition": dl.Partition, "offset": dl.Offset}}}, &res)
	if res.Replayed != 1 || len(res.Records) != 1 || res.Records[0].Topic != "orders" || res.Records[0].Offset != 2 {
		t.Fatalf("replay: %+v", res)
	}
	f.mustOK("GET", "/api/topics/orders/messages?partition=0&start=offset&offset=2", nil, &page)
	if len(page.Records) != 1 || page.Records[0].Key.Text != "bad" || page.Records[0].Value.Text != "NaN" {
		t.Fatalf("replayed record: %+v", page.Records)
	}
	replayedFrom := false
	for _, h := range page.Records[0].Headers {
		if h.Key == retry.HeaderReplayedFrom {
			replayedFrom = true
		}
		if h.Key == retry.HeaderError {
			t.Errorf("a replayed record must not carry the retry headers: %+v", h)
		}
	}
	if !replayedFrom {
		t.Errorf("no %s header on the replayed record", retry.HeaderReplayedFrom)
	}
	// The same selection again finds nothing left to replay.
	f.mustOK("POST", "/api/deadletters/"+dl.Topic+"/replay", map[string]any{"records": []map[string]any{{"partition": dl.Partition, "offset": dl.Offset}}}, &res)
	if res.Replayed != 0 {
		t.Fatalf("second replay of one record: %+v", res)
	}
}
