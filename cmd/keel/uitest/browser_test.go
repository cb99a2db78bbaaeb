package uitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The browser tests need a Chromium. Without one they skip — unless
// KEEL_REQUIRE_BROWSER=1 (CI sets it), where a missing browser must be a
// failure and not a silently green run.
const requireBrowserEnv = "KEEL_REQUIRE_BROWSER"

// chromiumPath finds the browser: $KEEL_CHROMIUM, else Debian's chromium
// or one of the usual names.
func chromiumPath() (string, error) {
	if p := os.Getenv("KEEL_CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH (apt-get install chromium, or set KEEL_CHROMIUM)")
}

// browserTimeout bounds each test's whole browser session. It is a
// bound against hangs, not a performance assertion: the machine may be
// shared and slow.
const browserTimeout = 5 * time.Minute

// tab is one headless Chromium tab pointed at a console.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string // http://127.0.0.1:PORT
}

// newTab starts a headless Chromium for the test (closed at its end) and
// returns a tab on base.
func newTab(t *testing.T, base string) *tab {
	t.Helper()
	path, err := chromiumPath()
	if err != nil {
		if os.Getenv(requireBrowserEnv) == "1" {
			t.Fatalf("%s=1 but %v", requireBrowserEnv, err)
		}
		t.Skipf("browser test skipped: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root, where Chromium refuses its sandbox
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, tabCancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		tabCancel()
		allocCancel() // waits for the browser process to end
		cancel()
	})
	// Start the browser now so a broken installation fails here, clearly.
	if err := chromedp.Do(tabCtx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return &tab{t: t, ctx: tabCtx, base: base}
}

// open navigates to a page of the console (route is what follows "#/")
// and waits until the page has shown it: its content or its error.
func (b *tab) open(route string) {
	b.t.Helper()
	target := b.base + "/#/" + route
	var here string
	_ = b.evalInto(`(document.body && (document.body.dataset.routed = '')), location.href`, &here)
	nav := chromedp.Navigate(target)
	if here == target {
		nav = chromedp.Reload() // the same address again is no navigation at all
	}
	if err := chromedp.Do(b.ctx, nav); err != nil {
		b.t.Fatalf("open #/%s: %v", route, err)
	}
	b.waitUntil("page #/"+route, fmt.Sprintf(`document.body.dataset.routed === %q`, route))
}

// evalInto runs a JavaScript expression in the page and decodes its
// (JSON) value into out.
func (b *tab) evalInto(js string, out any) error {
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string]("JSON.stringify(("+js+") ?? null)"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(s), out); err != nil {
		return fmt.Errorf("result of %q: %w (%s)", js, err, s)
	}
	return nil
}

// eval is evalInto that fails the test on error.
func (b *tab) eval(js string, out any) {
	b.t.Helper()
	if err := b.evalInto(js, out); err != nil {
		b.t.Fatalf("eval %s: %v", js, err)
	}
}

// await runs an async expression (a Promise) and decodes its value.
func (b *tab) await(js string, out any) {
	b.t.Helper()
	raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[string]("(async () => JSON.stringify(await ("+js+")))()", chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("await %s: %v", js, err)
	}
	if err := json.Unmarshal([]byte(raw), out); err != nil {
		b.t.Fatalf("await %s: %v (%s)", js, err, raw)
	}
}

// waitBound bounds one wait for the page. It is a bound against a page
// that will never show what the test waits for, not a timed assertion:
// pages here appear in well under a second even on a busy machine.
const waitBound = 90 * time.Second

// waitUntil polls a JavaScript condition until it is true, and on
// failure says what it waited for and what the page showed.
func (b *tab) waitUntil(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(waitBound)
	var lastErr error
	for {
		var ok bool
		if lastErr = b.evalInto("!!("+cond+")", &ok); lastErr == nil && ok {
			return
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			b.t.Fatalf("the page never showed %s (waited %v; last error: %v)\npage shows:\n%s", what, waitBound, lastErr, b.pageText())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pageText is the visible text of the page, for failure messages.
func (b *tab) pageText() string {
	var s string
	if err := b.evalInto("document.body ? document.body.innerText : ''", &s); err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// rows returns the text of each cell of the table marked data-testid.
func (b *tab) rows(testid string) [][]string {
	b.t.Helper()
	var out [][]string
	b.eval(fmt.Sprintf(`[...document.querySelectorAll('[data-testid=%q] tbody tr')].map(tr => [...tr.children].map(td => td.textContent))`, testid), &out)
	return out
}

// rowsIn returns the text of each cell of the table the CSS selector names.
func (b *tab) rowsIn(css string) [][]string {
	b.t.Helper()
	var out [][]string
	b.eval(fmt.Sprintf(`[...document.querySelectorAll(%q + ' tbody tr')].map(tr => [...tr.children].map(td => td.textContent))`, css), &out)
	return out
}

// click clicks the element the CSS selector names.
func (b *tab) click(css string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(css))); err != nil {
		b.t.Fatalf("click %s: %v", css, err)
	}
}

// count is how many elements match the CSS selector.
func (b *tab) count(css string) int {
	b.t.Helper()
	var n int
	b.eval(fmt.Sprintf(`document.querySelectorAll(%q).length`, css), &n)
	return n
}

// screenshotEnv names a directory to write the pages' screenshots into
// (the README's pictures: KEEL_UI_SCREENSHOTS=../../../docs).
const screenshotEnv = "KEEL_UI_SCREENSHOTS"

// screenshot saves the page as name in $KEEL_UI_SCREENSHOTS, when set.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv(screenshotEnv)
	if dir == "" {
		return
	}
	// The whole page in a viewport as tall as it is, so the fixed footer
	// sits at its bottom and not over the middle of the content.
	var height int64
	b.eval(`Math.max(720, document.documentElement.scrollHeight)`, &height)
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(1280, height)); err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("wrote %s", filepath.Join(dir, name))
}

// cellsContain reports whether some row has every want as a substring of
// the cell at the same index ("" matches any cell).
func cellsContain(rows [][]string, want ...string) bool {
	for _, r := range rows {
		if len(r) < len(want) {
			continue
		}
		ok := true
		for i, w := range want {
			if !strings.Contains(r[i], w) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// hover moves the mouse onto the element and clicks it, so that an
// injected onmouseover or onclick would fire.
func (b *tab) hover(css string) {
	b.t.Helper()
	node, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSS(css)))
	if err != nil || len(node) == 0 {
		b.t.Fatalf("hover %s: %v", css, err)
	}
	if err := chromedp.Do(b.ctx, chromedp.MouseClickNode(node[0])); err != nil {
		b.t.Fatalf("hover %s: %v", css, err)
	}
}

// fill sets the value of the form field the CSS selector names, as typing
// would (the pages read .value when the form is sent).
func (b *tab) fill(css, value string) {
	b.t.Helper()
	var ok bool
	b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.value = %q; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return true })()`, css, value), &ok)
	if !ok {
		b.t.Fatalf("fill %s: no such field\npage shows:\n%s", css, b.pageText())
	}
}

// text is the textContent of the first element the CSS selector names
// ("" when there is none).
func (b *tab) text(css string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf(`document.querySelector(%q)?.textContent ?? ''`, css), &s)
	return s
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// answerPrompts answers the page's prompts (the token prompt) with the
// answers in turn, the last one again for any more, and returns the
// prompts it saw. Start it before the page that prompts opens: a prompt
// blocks the page until it is answered.
func (b *tab) answerPrompts(answers ...string) <-chan string {
	seen := make(chan string, 16)
	dialogs := chromedp.Events(b.ctx, page.JavascriptDialogOpening)
	go func() {
		n := 0
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			answer := answers[min(n, len(answers)-1)]
			n++
			select {
			case seen <- ev.Message:
			default:
			}
			if _, err := chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true, PromptText: answer}); err != nil {
				return
			}
		}
	}()
	return seen
}
