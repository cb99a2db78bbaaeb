package uitest

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
)

// lagWant is what admin reports for group: the total and each
// partition's "committed/end/lag" as the page's cells show them.
func lagWant(t *testing.T, c *console, group string) (int64, map[string][3]string) {
	t.Helper()
	rows, err := c.admin.Lag(c.ctx(), group)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	per := map[string][3]string{}
	for _, l := range rows {
		total += l.Lag
		committed := strconv.FormatInt(l.Committed, 10)
		if l.NoCommit {
			committed = "none"
		}
		per[fmt.Sprintf("%s/%d", l.Topic, l.Partition)] = [3]string{committed, strconv.FormatInt(l.End, 10), strconv.FormatInt(l.Lag, 10)}
	}
	return total, per
}

func TestBrowserGroupPageShowsTheLagAdminReports(t *testing.T) {
	c := newConsole(t, ui.Config{})
	c.createTopic("events", 2)
	var msgs []*keel.Message
	for i := range 10 {
		msgs = append(msgs, &keel.Message{Topic: "events", Partition: 0, Value: fmt.Appendf(nil, "e%d", i)})
	}
	for i := range 6 {
		msgs = append(msgs, &keel.Message{Topic: "events", Partition: 1, Value: fmt.Appendf(nil, "f%d", i)})
	}
	c.produce(msgs...)
	if err := c.admin.AlterGroupOffsets(c.ctx(), "analytics", map[keel.TopicPartition]int64{{Topic: "events", Partition: 0}: 4, {Topic: "events", Partition: 1}: 6}); err != nil {
		t.Fatal(err)
	}
	total, per := lagWant(t, c, "analytics")
	if total != 6 {
		t.Fatalf("admin reports total lag %d, the setup meant 6: %v", total, per)
	}

	b := newTab(t, c.url)
	b.open("groups")
	b.waitUntil("the groups table", `document.querySelector('[data-testid="groups-table"]')`)
	// columns: group, state, protocol, members, lag
	if rows := b.rows("groups-table"); !cellsContain(rows, "analytics", "", "", "0", strconv.FormatInt(total, 10)) {
		t.Fatalf("groups table %q, want analytics with lag %d", rows, total)
	}

	b.click(`[data-testid="groups-table"] a[href="#/group/analytics"]`)
	b.waitUntil("the lag table", `document.querySelector('[data-testid="lag-table"]')`)
	checkGroupPage(t, b, total, per)
	if n := b.count(`[data-testid="lag-chart"] circle`); n != 1 {
		t.Errorf("the lag chart marks %d sample(s) after the first load, want 1", n)
	}
	if b.count(`[data-testid="no-members"]`) != 1 {
		t.Errorf("an empty group's page does not say it has no members")
	}

	// The page follows the lag live: three more records on partition 0.
	c.produce(&keel.Message{Topic: "events", Partition: 0, Value: []byte("g1")}, &keel.Message{Topic: "events", Partition: 0, Value: []byte("g2")}, &keel.Message{Topic: "events", Partition: 0, Value: []byte("g3")})
	total, per = lagWant(t, c, "analytics")
	if total != 9 {
		t.Fatalf("admin reports total lag %d after 3 more records, want 9", total)
	}
	b.waitUntil("the page to update to the new lag", fmt.Sprintf(`document.querySelector('[data-testid="total-lag"] .v')?.textContent === %q`, strconv.FormatInt(total, 10)))
	checkGroupPage(t, b, total, per)
	var points int
	b.eval(`document.querySelector('[data-testid="lag-chart"] polyline').getAttribute('points').split(' ').length`, &points)
	if points < 2 || b.count(`[data-testid="lag-chart"] circle`) != points {
		t.Errorf("lag chart has %d point(s) and %d dot(s) after an update, want at least 2 of each", points, b.count(`[data-testid="lag-chart"] circle`))
	}
	b.screenshot("ui-group.png")

	// Reset offsets: the preview is the plan admin (and so the CLI) makes
	// and changes nothing; executing it moves the committed offsets there.
	plan, err := c.admin.ResetOffsetsPlan(c.ctx(), "analytics", admin.ResetScope{AllTopics: true}, admin.ShiftBy(-2))
	if err != nil {
		t.Fatal(err)
	}
	b.fill(`[data-testid="reset"] [name="to"]`, "shift")
	b.fill(`[data-testid="reset"] [name="arg"]`, "-2")
	b.click(`[data-testid="reset"] button[type="submit"]`)
	b.waitUntil("the reset preview", `document.querySelector('[data-testid="reset-execute"]')`)
	// columns: topic, partition, current, new
	shown := b.rowsIn(`[data-testid="reset-plan"] table`)
	if len(shown) != len(plan) {
		t.Fatalf("the preview shows %q, admin plans %+v", shown, plan)
	}
	for _, ch := range plan {
		if !cellsContain(shown, ch.Topic, strconv.Itoa(int(ch.Partition)), strconv.FormatInt(ch.Current, 10), strconv.FormatInt(ch.New, 10)) {
			t.Errorf("the preview %q lacks admin's change %+v", shown, ch)
		}
	}
	if _, now := lagWant(t, c, "analytics"); now["events/0"][0] != "4" {
		t.Fatalf("the preview moved the committed offset: %v", now)
	}
	b.click(`[data-testid="reset-execute"]`)
	b.waitUntil("the reset to execute", `document.querySelector('[data-testid="reset-plan"] .ok')`)
	offsets, err := c.admin.GroupOffsets(c.ctx(), "analytics")
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range plan {
		if got := offsets[keel.TopicPartition{Topic: ch.Topic, Partition: ch.Partition}]; got != ch.New {
			t.Errorf("after executing the plan, %s[%d] is at %d, the plan said %d", ch.Topic, ch.Partition, got, ch.New)
		}
	}
}

// checkGroupPage compares the group page with what admin reported.
func checkGroupPage(t *testing.T, b *tab, total int64, per map[string][3]string) {
	t.Helper()
	var shownTotal string
	b.eval(`document.querySelector('[data-testid="total-lag"] .v')?.textContent`, &shownTotal)
	if shownTotal != strconv.FormatInt(total, 10) {
		t.Errorf("total lag shown %q, admin reports %d", shownTotal, total)
	}
	// columns: topic, partition, committed, end, lag, consumer
	rows := b.rows("lag-table")
	if len(rows) != len(per) {
		t.Fatalf("lag table %q, admin reports %v", rows, per)
	}
	for _, r := range rows {
		want, ok := per[r[0]+"/"+r[1]]
		if !ok || r[2] != want[0] || r[3] != want[1] || r[4] != want[2] {
			t.Errorf("lag row %q, admin reports committed/end/lag %q", r, want)
		}
	}
}
