package uitest

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
)

func TestBrowserAuthTokenAskedOnceAndRequired(t *testing.T) {
	c := newConsole(t, ui.Config{Token: "s3cret-token"})
	c.createTopic("orders", 2)
	b := newTab(t, c.url)
	// The first answer is wrong: the page must say so by asking again,
	// then show the page with the right one.
	prompts := b.answerPrompts("wrong-token", "s3cret-token")
	b.open("topics")
	b.waitUntil("the topics page after the token", `[...document.querySelectorAll('[data-testid="topics-table"] tbody tr')].some(tr => tr.children[0].textContent === 'orders')`)
	if n := len(prompts); n != 2 {
		t.Fatalf("the page asked for the token %d time(s), want 2 (none given, then a wrong one)", n)
	}
	if msg := <-prompts; !strings.Contains(msg, "token") {
		t.Errorf("the prompt says %q", msg)
	}

	// The browser keeps the token for the session: a reload asks no more.
	if err := chromedp.Do(b.ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	b.open("groups")
	b.waitUntil("the groups page", `document.body.dataset.page === 'groups' && !document.querySelector('[data-testid="error"]')`)
	if n := len(prompts); n != 1 {
		t.Errorf("after a reload the page asked for the token again (%d more prompts)", n)
	}

	// Without the token (or with a wrong one) the API answers 401, from
	// the page's own origin too; the static page and the config do not
	// need it (they hold no cluster data).
	for _, call := range []struct {
		path, auth string
		want       int
	}{
		{"/api/topics", "", 401},
		{"/api/topics", "Bearer wrong-token", 401},
		{"/api/overview", "", 401},
		{"/api/topics/orders/tail?partition=0", "", 401},
		{"/api/topics", "Bearer s3cret-token", 200},
		{"/api/config", "", 200},
		{"/", "", 200},
	} {
		var status int
		headers := "{}"
		if call.auth != "" {
			headers = `{Authorization: ` + mustJSON(call.auth) + `}`
		}
		b.await(`fetch(`+mustJSON(call.path)+`, {headers: `+headers+`}).then(r => r.status)`, &status)
		if status != call.want {
			t.Errorf("GET %s with Authorization %q: %d, want %d", call.path, call.auth, status, call.want)
		}
	}
}
