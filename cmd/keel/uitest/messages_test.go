package uitest

import (
	"strings"
	"testing"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
)

// hostile is a value that runs script wherever a page inserts it as
// markup: an inline script, an image error handler and an svg onload,
// each setting window.pwned.
const hostile = `<script>window.pwned = 'script'</script><img src=x onerror="window.pwned='img'"><svg onload="window.pwned='svg'"></svg>`

func TestBrowserMessagesShowKeyJSONValueHeadersAndScriptStaysText(t *testing.T) {
	c := newConsole(t, ui.Config{})
	c.createTopic("orders", 1)
	c.produce(
		&keel.Message{Topic: "orders", Key: []byte("order-1"), Value: []byte(`{"id":1,"item":"book","tags":["new"]}`),
			Headers: []keel.Header{{Key: "trace-id", Value: []byte("abc-123")}, {Key: "source", Value: []byte("web")}}},
		&keel.Message{Topic: "orders", Key: []byte(`<b id="boldkey">k</b>`), Value: []byte(hostile),
			Headers: []keel.Header{{Key: `<i onmouseover="window.pwned='hdr'">h</i>`, Value: []byte(`<img src=y onerror="window.pwned='hdrval'">`)}}},
		&keel.Message{Topic: "orders", Value: []byte{0x00, 0xff, 0x10, 'A'}}, // no key: Kafka's null
	)
	b := newTab(t, c.url)
	b.open("messages/orders")
	b.waitUntil("three records", `document.querySelectorAll('[data-testid="records-table"] tbody tr').length === 3`)

	// columns: partition, offset, timestamp, key, value, headers
	rows := b.rows("records-table")
	first := rows[0]
	if first[1] != "0" || first[3] != "order-1" {
		t.Errorf("first record: partition/offset/key cells %q", first)
	}
	// The JSON value is pretty-printed: one field per line, indented.
	var jsonValue string
	b.eval(`document.querySelector('[data-testid="records-table"] tbody tr td:nth-child(5) pre[data-kind="json"]')?.textContent`, &jsonValue)
	if !strings.Contains(jsonValue, "\n  \"item\": \"book\"") || !strings.Contains(jsonValue, "\"id\": 1") {
		t.Errorf("JSON value shown as %q, want it indented", jsonValue)
	}
	if !strings.Contains(first[5], "trace-id") || !strings.Contains(first[5], "abc-123") || !strings.Contains(first[5], "source") || !strings.Contains(first[5], "web") {
		t.Errorf("headers cell: %q", first[5])
	}

	// The hostile record is shown, character for character, as text.
	second := rows[1]
	if second[3] != `<b id="boldkey">k</b>` {
		t.Errorf("hostile key shown as %q", second[3])
	}
	if second[4] != hostile {
		t.Errorf("hostile value shown as %q, want the text %q", second[4], hostile)
	}
	if !strings.Contains(second[5], `<i onmouseover=`) || !strings.Contains(second[5], `<img src=y onerror=`) {
		t.Errorf("hostile header shown as %q", second[5])
	}
	// A value that is not UTF-8 is shown as hex, a missing key as null.
	if third := rows[2]; third[3] != "null" || third[4] != "hex00ff1041" {
		t.Errorf("binary record: key %q value %q, want null and hex 00ff1041", third[3], third[4])
	}

	// ...and none of it became markup or ran.
	for _, css := range []string{"#main script", "#main img", "#main svg:not(.chart)", "#main i", "#boldkey"} {
		if n := b.count(css); n != 0 {
			t.Errorf("%d element(s) %s in the page: record contents became markup", n, css)
		}
	}
	b.hover(`[data-testid="records-table"] tbody tr:nth-child(2) td:nth-child(6)`)
	var pwned string
	b.eval(`typeof window.pwned === 'undefined' ? 'undefined' : String(window.pwned)`, &pwned)
	if pwned != "undefined" {
		t.Fatalf("window.pwned = %q: a record's contents ran as script", pwned)
	}
	b.screenshot("ui-messages.png")

	// Behind the text-only rendering, the Content-Security-Policy: even
	// markup that did get into the page (put there by the test, as a
	// rendering bug would) runs no inline script in a real browser.
	b.eval(`(() => {
		const img = document.createElement('img');
		img.addEventListener('error', () => { window.__imgFailed = true; }); // the test's own listener, not inline
		img.setAttribute('onerror', "window.pwned = 'csp'");
		img.src = '/no-such-image.png';
		document.getElementById('main').append(img);
		const s = document.createElement('script');
		s.textContent = "window.pwned = 'inline-script'";
		document.getElementById('main').append(s);
		return true;
	})()`, new(bool))
	b.waitUntil("the injected image to fail loading", `window.__imgFailed === true`)
	b.eval(`typeof window.pwned === 'undefined' ? 'undefined' : String(window.pwned)`, &pwned)
	if pwned != "undefined" {
		t.Fatalf("window.pwned = %q: the Content-Security-Policy let inline script run", pwned)
	}
}
