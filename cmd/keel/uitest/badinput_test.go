package uitest

import (
	"strings"
	"testing"

	"github.com/keel-go/keel/cmd/keel/internal/ui"
)

// Bad input typed into the pages, or an unknown name in the address,
// shows the server's reason on the page instead of a blank or a hang.
func TestBrowserBadInputShowsTheServersReason(t *testing.T) {
	c := newConsole(t, ui.Config{})
	c.createTopic("log", 2)
	b := newTab(t, c.url)

	for _, tc := range []struct{ route, says string }{
		{"topic/nosuch", "does not exist"},
		{"messages/nosuch", "does not exist"},
		{"group/nosuch-group", "nosuch-group"},
		{"sideways", "No such page"},
	} {
		b.open(tc.route)
		b.waitUntil("an error for #/"+tc.route, `document.querySelector('#main .error')`)
		if s := b.text("#main .error"); !strings.Contains(s, tc.says) {
			t.Errorf("#/%s says %q, want it to say %q", tc.route, s, tc.says)
		}
	}

	b.open("messages/log")
	b.waitUntil("the page", `document.querySelector('[data-testid="page-info"]').textContent !== ''`)
	for _, tc := range []struct{ field, value, says string }{
		{"time", "last tuesday", "RFC 3339"},
		{"offset", "", "whole numbers"}, // a cleared field
	} {
		start := "time"
		if tc.field == "offset" {
			start = "offset"
		}
		b.fill(`[data-testid="browse"] [name="start"]`, start)
		b.fill(`[data-testid="browse"] [name="`+tc.field+`"]`, tc.value)
		b.click(`[data-testid="browse"] button[type="submit"]`)
		b.waitUntil("the error for "+tc.field+"="+tc.value+" saying "+tc.says, `document.querySelector('[data-testid="error"]')?.textContent.includes(`+mustJSON(tc.says)+`)`)
	}
	// An oversize page: the form's own limits refuse to send it, and the
	// paging buttons, which do not check them, get the server's reason.
	b.fill(`[data-testid="browse"] [name="start"]`, "earliest")
	b.fill(`[data-testid="browse"] [name="limit"]`, "5000")
	var valid bool
	b.eval(`document.querySelector('[data-testid="browse"]').checkValidity()`, &valid)
	if valid {
		t.Errorf("the browse form accepts a page of 5000 records")
	}
	b.eval(`(() => { [...document.querySelectorAll('button')].find(b => b.textContent === 'Next ▶').click(); return true })()`, new(bool))
	b.waitUntil("the error for an oversize page", `document.querySelector('[data-testid="error"]')?.textContent.includes('1 to 200')`)
}
