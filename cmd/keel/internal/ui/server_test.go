package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

func TestOverviewAndTopics(t *testing.T) {
	f := newFixture(t, Config{})
	f.createTopic("orders", 3)
	f.produce(&keel.Message{Topic: "orders", Partition: 1, Value: []byte("a")}, &keel.Message{Topic: "orders", Partition: 2, Value: []byte("b")})

	var o overviewJSON
	f.mustOK("GET", "/api/overview", nil, &o)
	if o.Topics != 1 || o.Partitions != 3 || len(o.Brokers) != 1 || o.ClusterID == "" {
		t.Fatalf("overview: %+v", o)
	}
	var rows []topicRowJSON
	f.mustOK("GET", "/api/topics", nil, &rows)
	if len(rows) != 1 || rows[0].Name != "orders" || rows[0].Partitions != 3 || rows[0].Records != 2 || rows[0].Replication != 1 {
		t.Fatalf("topics: %+v", rows)
	}
	var tj topicJSON
	f.mustOK("GET", "/api/topics/orders", nil, &tj)
	if len(tj.Partitions) != 3 || tj.Partitions[1].End != 1 || tj.Partitions[0].End != 0 || len(tj.Configs) == 0 {
		t.Fatalf("topic: %+v", tj)
	}
}

func TestMessagesShowJSONTextHexAndHeaders(t *testing.T) {
	f := newFixture(t, Config{})
	f.createTopic("m", 1)
	f.produce(
		&keel.Message{Topic: "m", Key: []byte("k1"), Value: []byte(`{"id":7,"tags":["a"]}`), Headers: []keel.Header{{Key: "trace", Value: []byte("abc")}}},
		&keel.Message{Topic: "m", Key: []byte("k2"), Value: []byte(`<script>window.pwned=1</script>`)},
		&keel.Message{Topic: "m", Value: []byte{0xff, 0x00, 0x10}},
		&keel.Message{Topic: "m", Key: []byte("k1"), Value: nil},
	)
	var page pageJSON
	f.mustOK("GET", "/api/topics/m/messages?partition=0", nil, &page)
	if len(page.Records) != 4 || page.LogEnd != 4 || page.Next != 4 {
		t.Fatalf("page: %+v", page)
	}
	r0, r1, r2, r3 := page.Records[0], page.Records[1], page.Records[2], page.Records[3]
	if r0.Key.Kind != "text" || r0.Key.Text != "k1" || r0.Value.Kind != "json" || !strings.Contains(r0.Value.Text, "\n  \"id\": 7") {
		t.Errorf("json record: %+v", r0)
	}
	if len(r0.Headers) != 1 || r0.Headers[0].Key != "trace" || r0.Headers[0].Value.Text != "abc" {
		t.Errorf("headers: %+v", r0.Headers)
	}
	if r1.Value.Kind != "text" || r1.Value.Text != `<script>window.pwned=1</script>` {
		t.Errorf("a script value must come back as the text it is: %+v", r1.Value)
	}
	if r2.Key.Kind != "null" || r2.Value.Kind != "hex" || r2.Value.Text != "ff0010" {
		t.Errorf("binary record: %+v", r2)
	}
	if r3.Value.Kind != "null" {
		t.Errorf("tombstone: %+v", r3.Value)
	}
}

func TestMessagesPagingStartsAndKeyFilter(t *testing.T) {
	f := newFixture(t, Config{})
	f.createTopic("p", 1)
	var msgs []*keel.Message
	for i := range 25 {
		msgs = append(msgs, &keel.Message{Topic: "p", Key: []byte(fmt.Sprintf("k%d", i%5)), Value: []byte(fmt.Sprint(i)), Timestamp: time.UnixMilli(int64(1_700_000_000_000 + i*1000))})
	}
	f.produce(msgs...)
	offsets := func(p pageJSON) []int64 {
		var out []int64
		for _, r := range p.Records {
			out = append(out, r.Offset)
		}
		return out
	}
	var page pageJSON
	f.mustOK("GET", "/api/topics/p/messages?partition=0&limit=10", nil, &page)
	if got := offsets(page); len(got) != 10 || got[0] != 0 || got[9] != 9 || page.Next != 10 {
		t.Fatalf("first page %v next %d", got, page.Next)
	}
	f.mustOK("GET", fmt.Sprintf("/api/topics/p/messages?partition=0&limit=10&start=offset&offset=%d", page.Next), nil, &page)
	if got := offsets(page); got[0] != 10 || got[9] != 19 || page.Prev != 0 {
		t.Fatalf("second page %v prev %d", got, page.Prev)
	}
	f.mustOK("GET", "/api/topics/p/messages?partition=0&limit=10&start=latest", nil, &page)
	if got := offsets(page); got[0] != 15 || got[9] != 24 || page.Next != 25 {
		t.Fatalf("latest page %v next %d", got, page.Next)
	}
	f.mustOK("GET", "/api/topics/p/messages?partition=0&limit=3&start=time&time=1700000020000", nil, &page)
	if got := offsets(page); len(got) != 3 || got[0] != 20 {
		t.Fatalf("time page %v", got)
	}
	f.mustOK("GET", "/api/topics/p/messages?partition=0&start=time&time=2030-01-01", nil, &page)
	if len(page.Records) != 0 || page.From != 25 {
		t.Fatalf("a time after the last record is the end: %+v", page)
	}
	f.mustOK("GET", "/api/topics/p/messages?partition=0&limit=3&key=k2", nil, &page)
	if got := offsets(page); len(got) != 3 || got[0] != 2 || got[1] != 7 || got[2] != 12 || page.Next != 13 {
		t.Fatalf("key filter %v next %d", got, page.Next)
	}
	f.mustOK("GET", "/api/topics/p/messages?partition=0&start=offset&offset=1000", nil, &page)
	if len(page.Records) != 0 || page.From != 25 {
		t.Fatalf("past the end: %+v", page)
	}
}

// Every endpoint answers bad input with a 4xx and a JSON error that says
// what is wrong.
func TestBadInputsGetClearErrors(t *testing.T) {
	f := newFixture(t, Config{})
	f.createTopic("t", 2)
	cases := []struct {
		method, path string
		body         any
		status       int
		says         string
	}{
		{"GET", "/api/topics/nosuch", nil, 404, "does not exist"},
		{"GET", "/api/topics/bad%2Fname", nil, 400, "not a legal Kafka topic name"},
		{"GET", "/api/topics/nosuch/messages?partition=0", nil, 404, "does not exist"},
		{"GET", "/api/topics/t/messages", nil, 400, "partition"},
		{"GET", "/api/topics/t/messages?partition=-1", nil, 400, "partition"},
		{"GET", "/api/topics/t/messages?partition=7", nil, 404, "no partition 7"},
		{"GET", "/api/topics/t/messages?partition=0&start=offset&offset=-5", nil, 400, "0 or more"},
		{"GET", "/api/topics/t/messages?partition=0&start=offset&offset=abc", nil, 400, "whole numbers"},
		{"GET", "/api/topics/t/messages?partition=0&start=sideways", nil, 400, "use earliest, latest"},
		{"GET", "/api/topics/t/messages?partition=0&start=time&time=yesterday", nil, 400, "RFC 3339"},
		{"GET", "/api/topics/t/messages?partition=0&limit=100000", nil, 400, "1 to 200"},
		{"GET", "/api/topics/t/messages?partition=0&limit=0", nil, 400, "1 to 200"},
		{"GET", "/api/topics/t/tail?partition=9", nil, 400, "partitions 0 to 1"},
		{"GET", "/api/groups/nosuch-group", nil, 404, "nosuch-group"},
		{"POST", "/api/topics", map[string]any{"name": "..", "partitions": 1}, 400, "not a legal Kafka topic name"},
		{"POST", "/api/topics", map[string]any{"name": "x", "partitions": 0}, 400, "partitions must be"},
		{"POST", "/api/topics", map[string]any{"name": "x", "partitions": 99999999}, 400, "partitions must be"},
		{"POST", "/api/topics", map[string]any{"name": "t", "partitions": 1}, 400, "already exists"},
		{"POST", "/api/topics", map[string]any{"nmae": "x"}, 400, "unknown field"},
		{"POST", "/api/topics", "not an object", 400, "not the JSON"},
		{"POST", "/api/topics/t/partitions", map[string]any{"total": 1}, 400, "cannot remove partitions"},
		{"POST", "/api/topics/nosuch/partitions", map[string]any{"total": 3}, 404, "does not exist"},
		{"POST", "/api/topics/t/messages", map[string]any{"value": "v", "partition": -2}, 400, "numbered from 0"},
		{"POST", "/api/topics/t/messages", map[string]any{"value": strings.Repeat("x", 3<<20)}, 413, "over"},
		{"POST", "/api/groups/g/reset-offsets", map[string]any{"to": "earliest"}, 400, "say which partitions"},
		{"POST", "/api/groups/g/reset-offsets", map[string]any{"to": "sideways", "allTopics": true}, 400, "use earliest"},
		{"POST", "/api/groups/g/reset-offsets", map[string]any{"to": "offset", "offset": -1, "allTopics": true}, 400, "0 or more"},
		{"POST", "/api/deadletters/t.dlt/replay", map[string]any{}, 400, "exactly one"},
		{"POST", "/api/deadletters/t.dlt/replay", map[string]any{"all": true, "since": "2024-01-01"}, 400, "exactly one"},
		{"POST", "/api/deadletters/t.dlt/replay", map[string]any{"all": true, "to": "t.dlt"}, 400, "dead-letter topic itself"},
		{"POST", "/api/deadletters/t.dlt/replay", map[string]any{"since": "last tuesday"}, 400, "RFC 3339"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			code, raw := f.call(c.method, c.path, c.body, nil)
			var e errorBody
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("status %d, not a JSON error: %s", code, raw)
			}
			if code != c.status || e.Status != c.status || !strings.Contains(e.Error, c.says) {
				t.Fatalf("got %d %q, want %d saying %q", code, e.Error, c.status, c.says)
			}
		})
	}
}

func TestWritesCreateAddPartitionsProduce(t *testing.T) {
	f := newFixture(t, Config{})
	f.mustOK("POST", "/api/topics", map[string]any{"name": "made", "partitions": 2}, nil)
	f.mustOK("POST", "/api/topics/made/partitions", map[string]any{"total": 5}, nil)
	md, err := f.client.Metadata(ctx20(t), "made")
	if err != nil || len(md.Topics[0].Partitions) != 5 {
		t.Fatalf("after adding partitions: %v %+v", err, md)
	}
	var d deliveredJSON
	f.mustOK("POST", "/api/topics/made/messages", map[string]any{"key": "k", "value": `{"x":1}`, "headers": []map[string]any{{"key": "h", "value": "v"}}, "partition": 3}, &d)
	if d.Partition != 3 || d.Offset != 0 {
		t.Fatalf("delivered: %+v", d)
	}
	var page pageJSON
	f.mustOK("GET", "/api/topics/made/messages?partition=3", nil, &page)
	if len(page.Records) != 1 || page.Records[0].Key.Text != "k" || page.Records[0].Headers[0].Key != "h" {
		t.Fatalf("read back: %+v", page.Records)
	}
	f.mustOK("POST", "/api/topics/made/messages", map[string]any{"key": nil, "value": "by key"}, &d)
}

func TestReadOnlyRefusesEveryWrite(t *testing.T) {
	f := newFixture(t, Config{ReadOnly: true})
	f.createTopic("t", 1)
	var cfg map[string]any
	f.mustOK("GET", "/api/config", nil, &cfg)
	if cfg["readOnly"] != true {
		t.Fatalf("config: %v", cfg)
	}
	writes := []struct {
		path string
		body any
	}{
		{"/api/topics", map[string]any{"name": "x", "partitions": 1}},
		{"/api/topics/t/partitions", map[string]any{"total": 3}},
		{"/api/topics/t/messages", map[string]any{"value": "v"}},
		{"/api/groups/g/reset-offsets", map[string]any{"to": "earliest", "allTopics": true, "execute": true}},
		{"/api/deadletters/t.dlt/replay", map[string]any{"all": true}},
	}
	for _, w := range writes {
		code, raw := f.call("POST", w.path, w.body, nil)
		if code != http.StatusForbidden || !strings.Contains(string(raw), "read-only") {
			t.Errorf("POST %s: %d %s, want 403 read-only", w.path, code, raw)
		}
	}
	if _, err := f.client.Metadata(ctx20(t), "x"); err == nil {
		t.Error("a read-only console created a topic")
	}
	// A preview changes nothing, so it stays allowed.
	if code, raw := f.call("POST", "/api/groups/g/reset-offsets", map[string]any{"to": "earliest", "topics": map[string][]int32{"t": nil}}, nil); code != http.StatusOK {
		t.Errorf("preview refused when read-only: %d %s", code, raw)
	}
}

func TestTokenRequired(t *testing.T) {
	f := newFixture(t, Config{Token: "s3cret"})
	f.token = ""
	if code, _ := f.call("GET", "/api/topics", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	f.token = "wrong"
	if code, _ := f.call("GET", "/api/topics", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	if code, _ := f.call("GET", "/api/config", nil, nil); code != http.StatusOK {
		t.Fatalf("config must stay readable so the page can ask for the token: %d", code)
	}
	if code, _ := f.call("GET", "/", nil, nil); code != http.StatusOK {
		t.Fatalf("the page itself: %d", code)
	}
	f.token = "s3cret"
	f.mustOK("GET", "/api/topics", nil, nil)
	if code, _ := f.call("GET", "/api/topics/x/tail?token=s3cret&partition=0", nil, nil); code == http.StatusUnauthorized {
		t.Fatal("the tail's query token was refused")
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, Config{})
	res, err := f.srv.Client().Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers: %v", res.Header)
	}
	for _, asset := range []string{"/app.js", "/style.css"} {
		if code, _ := f.call("GET", asset, nil, nil); code != http.StatusOK {
			t.Errorf("%s: %d", asset, code)
		}
	}
}

func TestGroupLagMatchesAdminAndReset(t *testing.T) {
	f := newFixture(t, Config{})
	f.createTopic("lagged", 2)
	var msgs []*keel.Message
	for i := range 30 {
		msgs = append(msgs, &keel.Message{Topic: "lagged", Partition: int32(i % 2), Value: []byte("v")})
	}
	f.produce(msgs...)
	ctx := ctx20(t)
	if err := f.admin.AlterGroupOffsets(ctx, "billing", map[keel.TopicPartition]int64{{Topic: "lagged", Partition: 0}: 5, {Topic: "lagged", Partition: 1}: 12}); err != nil {
		t.Fatal(err)
	}
	want, err := f.admin.Lag(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	var rows []groupRowJSON
	f.mustOK("GET", "/api/groups", nil, &rows)
	if len(rows) != 1 || rows[0].Group != "billing" || rows[0].Lag != totalLag(want) || rows[0].Lag != 10+3 {
		t.Fatalf("groups: %+v (admin: %+v)", rows, want)
	}
	var g groupJSON
	f.mustOK("GET", "/api/groups/billing", nil, &g)
	if len(g.Lag) != len(want) {
		t.Fatalf("lag rows %+v, admin %+v", g.Lag, want)
	}
	for i, l := range g.Lag {
		if l.Lag != want[i].Lag || l.Committed != want[i].Committed || l.End != want[i].End {
			t.Errorf("partition %d: console %+v, admin %+v", l.Partition, l, want[i])
		}
	}

	var preview struct {
		Executed bool          `json:"executed"`
		Plan     []planRowJSON `json:"plan"`
	}
	f.mustOK("POST", "/api/groups/billing/reset-offsets", map[string]any{"to": "earliest", "topics": map[string][]int32{"lagged": nil}}, &preview)
	if preview.Executed || len(preview.Plan) != 2 || preview.Plan[0].Current != 5 || preview.Plan[0].New != 0 {
		t.Fatalf("preview: %+v", preview)
	}
	after, _ := f.admin.GroupOffsets(ctx, "billing")
	if after[keel.TopicPartition{Topic: "lagged", Partition: 0}] != 5 {
		t.Fatal("a preview moved the offsets")
	}
	f.mustOK("POST", "/api/groups/billing/reset-offsets", map[string]any{"to": "earliest", "topics": map[string][]int32{"lagged": nil}, "execute": true}, &preview)
	after, _ = f.admin.GroupOffsets(ctx, "billing")
	if !preview.Executed || after[keel.TopicPartition{Topic: "lagged", Partition: 0}] != 0 || after[keel.TopicPartition{Topic: "lagged", Partition: 1}] != 0 {
		t.Fatalf("execute: %+v, offsets now %v", preview, after)
	}
}

func TestTailStreamsNewRecords(t *testing.T) {
	f := newFixture(t, Config{})
	f.createTopic("live", 2)
	f.produce(&keel.Message{Topic: "live", Partition: 0, Value: []byte("old")})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/api/topics/live/tail", nil)
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	if !sc.Scan() || sc.Text() != ": tailing" {
		t.Fatalf("first line %q", sc.Text())
	}
	// The stream starts at the end it found before answering: "old" must
	// not come, "new" (written right after the answer) must.
	f.produce(&keel.Message{Topic: "live", Partition: 1, Value: []byte("new")})
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var r recordJSON
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			t.Fatalf("event data %q: %v", data, err)
		}
		if r.Value.Text != "new" || r.Partition != 1 {
			t.Fatalf("tail sent %+v, want the new record", r)
		}
		return
	}
	t.Fatalf("stream ended without the new record: %v", sc.Err())
}

func TestAdminErrorsAreMapped(t *testing.T) {
	if got := statusOf(fmt.Errorf("x: %w", admin.ErrGroupNotFound)); got != http.StatusNotFound {
		t.Fatalf("group not found: %d", got)
	}
	if got := statusOf(fmt.Errorf("x: %w", keel.ErrTopicAuthorization)); got != http.StatusForbidden {
		t.Fatalf("authorization: %d", got)
	}
}
