package uitest

import (
	"testing"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
)

// A page that finishes loading after the user has gone elsewhere must
// not cover the newer page, and the refresh timer it starts must end.
// The test holds the group page's API answer until the user has moved on
// to the topics page.
func TestBrowserSlowPageDoesNotCoverTheNextOne(t *testing.T) {
	c := newConsole(t, ui.Config{})
	c.createTopic("orders", 1)
	c.produce(&keel.Message{Topic: "orders", Value: []byte("x")})
	if err := c.admin.AlterGroupOffsets(c.ctx(), "analytics", map[keel.TopicPartition]int64{{Topic: "orders"}: 0}); err != nil {
		t.Fatal(err)
	}
	b := newTab(t, c.url)
	b.open("topics")
	b.eval(`(() => {
		const f = window.fetch;
		let release;
		const held = new Promise(r => { release = r; });
		window.__release = release;
		window.fetch = async (url, opts) => {
			if (!String(url).startsWith('/api/groups/analytics')) return f(url, opts);
			window.__held = true;
			await held;
			return f(url, opts);
		};
		const si = window.setInterval, ci = window.clearInterval;
		window.__intervals = new Set(); window.__started = 0;
		window.setInterval = (fn, ms) => { const id = si(fn, ms); window.__intervals.add(id); window.__started++; return id; };
		window.clearInterval = id => { window.__intervals.delete(id); ci(id); };
		return true;
	})()`, new(bool))

	b.eval(`(location.hash = '#/group/analytics', true)`, new(bool))
	b.waitUntil("the group page to ask for its data", `window.__held === true`)
	b.eval(`(document.body.dataset.routed = '', location.hash = '#/topics', true)`, new(bool))
	b.waitUntil("the topics page", `document.body.dataset.routed === 'topics'`)
	b.eval(`(window.__release(), true)`, new(bool))
	b.waitUntil("the slow group page to finish", `window.__started >= 1`)

	var shown struct {
		Routed   string
		Topics   bool
		Group    bool
		Timers   int
		NavGroup bool
	}
	b.eval(`({routed: document.body.dataset.routed, topics: !!document.querySelector('[data-testid="topics-table"]'),
		group: !!document.querySelector('[data-testid="lag-table"]'), timers: window.__intervals.size,
		navGroup: document.querySelector('header nav a[data-nav="groups"]').classList.contains('active')})`, &shown)
	if shown.Routed != "topics" || !shown.Topics || shown.Group || shown.NavGroup {
		t.Errorf("after the slow group page finished, the screen shows %+v, want the topics page", shown)
	}
	if shown.Timers != 0 {
		t.Errorf("%d refresh timer(s) of the left group page still run", shown.Timers)
	}
}
