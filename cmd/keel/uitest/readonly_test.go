package uitest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
	"github.com/keel-go/keel/cmd/keel/internal/ui/uifixture"
)

// seeded is a console with something on every page: a topic with
// records, a group with committed offsets and a dead letter.
type seeded struct {
	*console
	dlt string
}

func newSeeded(t *testing.T, cfg ui.Config) *seeded {
	t.Helper()
	c := newConsole(t, cfg)
	c.createTopic("orders", 1)
	c.produce(&keel.Message{Topic: "orders", Key: []byte("good"), Value: []byte(`{"price":3}`)},
		&keel.Message{Topic: "orders", Key: []byte(uifixture.BadKey), Value: []byte(`{"price":"NaN"}`)})
	if err := c.admin.AlterGroupOffsets(c.ctx(), "analytics", map[keel.TopicPartition]int64{{Topic: "orders", Partition: 0}: 1}); err != nil {
		t.Fatal(err)
	}
	dl, err := uifixture.DeadLetterOne(c.client, "orders")
	if err != nil {
		t.Fatal(err)
	}
	return &seeded{console: c, dlt: dl.Topic}
}

// writeControls visits every page of the console and lists the write
// controls it shows.
func writeControls(t *testing.T, b *tab, s *seeded) []string {
	t.Helper()
	var found []string
	visit := func(route, ready string, controls ...string) {
		b.open(route)
		b.waitUntil("page #/"+route, ready)
		for _, css := range controls {
			if b.count(css) > 0 {
				found = append(found, route+": "+css)
			}
		}
	}
	visit("topics", `document.querySelector('[data-testid="topics-table"]')`, `[data-testid="create-topic"]`)
	visit("topic/orders", `document.querySelector('[data-testid="partitions-table"]')`, `[data-testid="add-partitions"]`)
	visit("messages/orders", `document.querySelectorAll('[data-testid="records-table"] tbody tr').length === 2`, `[data-testid="produce"]`)
	visit("deadletters/"+s.dlt, `document.querySelectorAll('[data-testid="dl-table"] tbody tr').length === 1`,
		`[data-testid="replay-actions"]`, `[data-testid="replay-one"]`, `[data-testid="dl-table"] input[type="checkbox"]`)
	// The reset preview is a read (the same plan the CLI prints); only its
	// Execute button writes.
	visit("group/analytics", `document.querySelector('[data-testid="lag-table"]')`)
	b.click(`[data-testid="reset"] button[type="submit"]`)
	b.waitUntil("the reset preview", `document.querySelector('[data-testid="reset-plan"] table')`)
	if b.count(`[data-testid="reset-execute"]`) > 0 {
		found = append(found, `group/analytics: [data-testid="reset-execute"]`)
	}
	var stray bool
	b.eval(`[...document.querySelector('[data-testid="reset-plan"]').childNodes].some(n => n.nodeType === Node.TEXT_NODE && /null|undefined/.test(n.textContent))`, &stray)
	if stray {
		t.Errorf("the reset preview shows a stray null or undefined: %q", b.text(`[data-testid="reset-plan"]`))
	}
	return found
}

// writeCalls is every write the API has, as the pages send them.
func writeCalls(dlt string) [][2]string {
	return [][2]string{
		{"/api/topics", `{"name":"intruder","partitions":1}`},
		{"/api/topics/orders/partitions", `{"total":4}`},
		{"/api/topics/orders/messages", `{"key":"k","value":"written although read-only"}`},
		{"/api/deadletters/" + dlt + "/replay", `{"all":true}`},
		{"/api/groups/analytics/reset-offsets", `{"to":"earliest","allTopics":true,"execute":true}`},
	}
}

func TestBrowserReadOnlyShowsNoWritesAndRefusesThem(t *testing.T) {
	// The same pages of a writable console show every control this test
	// looks for: the selectors are the real ones.
	rw := newSeeded(t, ui.Config{})
	b := newTab(t, rw.url)
	if got := writeControls(t, b, rw); len(got) != 7 {
		t.Fatalf("a writable console shows %d of the 7 write controls: %q", len(got), got)
	}

	ro := newSeeded(t, ui.Config{ReadOnly: true})
	b.base = ro.url
	if got := writeControls(t, b, ro); len(got) != 0 {
		t.Errorf("a read-only console shows write controls: %q", got)
	}
	var mode string
	b.eval(`document.getElementById('mode').textContent`, &mode)
	if mode != "read-only" {
		t.Errorf("the header says %q, want read-only", mode)
	}
	b.screenshot("ui-read-only.png")

	// Every write, sent from the page the way its forms send it, is refused.
	for _, call := range writeCalls(ro.dlt) {
		var res struct {
			Status int
			Error  string
		}
		b.await(fmt.Sprintf(`fetch(%q, {method: 'POST', headers: {'Content-Type': 'application/json'}, body: %q}).then(async r => ({status: r.status, error: (await r.json()).error}))`, call[0], call[1]), &res)
		if res.Status != 403 || !strings.Contains(res.Error, "read-only") {
			t.Errorf("POST %s on a read-only console: %d %q, want 403 saying read-only", call[0], res.Status, res.Error)
		}
	}
	// ...and nothing changed.
	names, err := ro.admin.ListTopics(ro.ctx())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n.Name == "intruder" {
			t.Errorf("a read-only console created topic intruder")
		}
	}
	ends, err := ro.admin.EndOffsets(ro.ctx(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(ends) != 1 || ends[keel.TopicPartition{Topic: "orders"}] != 2 {
		t.Errorf("orders after refused writes: end offsets %v, want one partition ending at 2", ends)
	}
	offsets, err := ro.admin.GroupOffsets(ro.ctx(), "analytics")
	if err != nil {
		t.Fatal(err)
	}
	if offsets[keel.TopicPartition{Topic: "orders"}] != 1 {
		t.Errorf("group analytics after a refused reset: %v, want orders[0] at 1", offsets)
	}
}
