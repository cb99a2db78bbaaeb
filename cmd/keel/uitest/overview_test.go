package uitest

import (
	"strconv"
	"testing"

	"github.com/keel-go/keel/cmd/keel/internal/ui"
	"github.com/keel-go/keel/keeltest"
)

func TestBrowserOverviewShowsBrokersControllerAndCounts(t *testing.T) {
	c := newConsole(t, ui.Config{}, keeltest.Brokers(3))
	c.createTopic("orders", 3)
	c.createTopic("payments", 2)
	md, err := c.client.Metadata(c.ctx())
	if err != nil {
		t.Fatal(err)
	}
	b := newTab(t, c.url)
	b.open("")
	b.waitUntil("the overview", `document.querySelector('[data-testid="overview-topics"]')`)
	var cards map[string]string
	b.eval(`Object.fromEntries([...document.querySelectorAll('.card')].map(c => [c.querySelector('.k').textContent, c.querySelector('.v').textContent]))`, &cards)
	if cards["Topics"] != "2" || cards["Partitions"] != "5" || cards["Brokers"] != "3" ||
		cards["Controller"] != strconv.Itoa(int(md.Controller)) || cards["Cluster id"] != md.ClusterID {
		t.Errorf("overview cards %v; metadata says cluster %q, controller %d, 3 brokers, 2 topics with 5 partitions", cards, md.ClusterID, md.Controller)
	}
	var brokers [][]string
	b.eval(`[...document.querySelectorAll('main table tbody tr')].map(tr => [...tr.children].map(td => td.textContent))`, &brokers)
	if len(brokers) != 3 {
		t.Fatalf("brokers table %q, want 3 rows", brokers)
	}
	for _, br := range md.Brokers {
		role := ""
		if br.ID == md.Controller {
			role = "controller"
		}
		if !cellsContain(brokers, strconv.Itoa(int(br.ID)), br.Addr, "", role) {
			t.Errorf("brokers table %q has no row for broker %d at %s (%q)", brokers, br.ID, br.Addr, role)
		}
	}
	b.screenshot("ui-overview.png")
}
