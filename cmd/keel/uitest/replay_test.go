package uitest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
	"github.com/keel-go/keel/cmd/keel/internal/ui/uifixture"
)

// Replay a selection of dead letters, then all of them (after the
// page's confirm), each time checking what reached the origin topic.
func TestBrowserReplaySelectionAndAll(t *testing.T) {
	c := newConsole(t, ui.Config{})
	c.createTopic("orders", 1)
	c.produce(&keel.Message{Topic: "orders", Key: []byte(uifixture.BadKey), Value: []byte(`{"n":1}`)})
	dl, err := uifixture.DeadLetterOne(c.client, "orders")
	if err != nil {
		t.Fatal(err)
	}
	c.produce(&keel.Message{Topic: "orders", Key: []byte(uifixture.BadKey), Value: []byte(`{"n":2}`)})
	if _, err := uifixture.DeadLetterOne(c.client, "orders"); err != nil {
		t.Fatal(err)
	}
	// The retry package may dead-letter a record twice when its group's
	// commit did not land before the fixture stopped it; the dead-letter
	// topic's end is what there is to replay.
	dltEnd := endOffset(t, c, dl.Topic, 0)
	if dltEnd < 2 {
		t.Fatalf("%s holds %d dead letters, want at least 2", dl.Topic, dltEnd)
	}
	originEnd := endOffset(t, c, "orders", 0)

	b := newTab(t, c.url)
	confirms := b.answerPrompts("") // "Replay all" asks window.confirm first
	b.open("deadletters/" + dl.Topic)
	b.waitUntil("the dead letters", fmt.Sprintf(`document.querySelectorAll('[data-testid="dl-table"] tbody tr').length === %d`, dltEnd))

	b.click(`[data-testid="dl-table"] input[data-offset="0"]`)
	b.click(`[data-testid="dl-table"] input[data-offset="1"]`)
	b.click(`[data-testid="replay-selected"]`)
	b.waitUntil("the replay of the selection", `document.querySelector('[data-testid="replay-result"] .ok')`)
	if s := b.text(`[data-testid="replay-result"] .ok`); !strings.HasPrefix(s, "Replayed 2 record(s)") {
		t.Fatalf("replaying two selected says %q", s)
	}
	if got := endOffset(t, c, "orders", 0); got != originEnd+2 {
		t.Fatalf("orders ends at %d after replaying two, want %d", got, originEnd+2)
	}
	for i := range int64(2) {
		want := readBackKeel(t, c, dl.Topic, 0, i)
		if r := readBackKeel(t, c, "orders", 0, originEnd+i); r.value != want.value || r.key != uifixture.BadKey {
			t.Errorf("the copy of dead letter %d reads back as %+v, want key %q value %s", i, r, uifixture.BadKey, want.value)
		}
	}

	b.eval(`(() => { [...document.querySelectorAll('button')].find(b => b.textContent === 'Replay all').click(); return true })()`, new(bool))
	b.waitUntil("the replay of all", `document.querySelector('[data-testid="replay-result"] .ok')?.textContent.startsWith('Replayed ' + `+fmt.Sprint(dltEnd)+`)`)
	if n := len(confirms); n != 1 {
		t.Errorf("Replay all asked %d confirmation(s), want 1", n)
	}
	if got := endOffset(t, c, "orders", 0); got != originEnd+2+dltEnd {
		t.Fatalf("orders ends at %d after replaying all %d, want %d", got, dltEnd, originEnd+2+dltEnd)
	}

	// Since a time: one after every dead letter finds none; one before
	// them all replays each.
	replaySince := func(since string, want int64) {
		t.Helper()
		b.eval(`(document.querySelector('[data-testid="replay-result"]').replaceChildren(), true)`, new(bool))
		b.fill(`[data-testid="replay-actions"] [name="since"]`, since)
		b.eval(`(() => { [...document.querySelectorAll('button')].find(b => b.textContent === 'Replay since').click(); return true })()`, new(bool))
		b.waitUntil("the replay since "+since, `document.querySelector('[data-testid="replay-result"] .ok')`)
		if s := b.text(`[data-testid="replay-result"] .ok`); !strings.HasPrefix(s, fmt.Sprintf("Replayed %d record(s)", want)) {
			t.Fatalf("replay since %s says %q, want %d replayed", since, s, want)
		}
	}
	before := endOffset(t, c, "orders", 0)
	replaySince(time.Now().Add(time.Hour).UTC().Format(time.RFC3339), 0)
	replaySince("2020-01-01T00:00:00Z", dltEnd)
	if got := endOffset(t, c, "orders", 0); got != before+dltEnd {
		t.Fatalf("orders ends at %d after replaying since 2020, want %d", got, before+dltEnd)
	}
}

func endOffset(t *testing.T, c *console, topic string, partition int32) int64 {
	t.Helper()
	ends, err := c.admin.EndOffsets(c.ctx(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return ends[keel.TopicPartition{Topic: topic, Partition: partition}]
}
