package uitest

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
)

// shownOffsets is the offset column of the records table.
func shownOffsets(t *testing.T, b *tab, testid string) []int64 {
	t.Helper()
	var out []int64
	for _, r := range b.rows(testid) {
		n, err := strconv.ParseInt(r[1], 10, 64)
		if err != nil {
			t.Fatalf("offset cell %q: %v", r[1], err)
		}
		out = append(out, n)
	}
	return out
}

func offsetRange(from, to int64) []int64 {
	var out []int64
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}

func TestBrowserMessagesPageStartTimeAndKeyFilter(t *testing.T) {
	c := newConsole(t, ui.Config{})
	c.createTopic("log", 1)
	// A record a minute, so that a start time picks an offset.
	base := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var msgs []*keel.Message
	for i := range 25 {
		msgs = append(msgs, &keel.Message{Topic: "log", Key: fmt.Appendf(nil, "k%02d", i), Value: fmt.Appendf(nil, "v%d", i),
			Timestamp: base.Add(time.Duration(i) * time.Minute)})
	}
	c.produce(msgs...)
	b := newTab(t, c.url)

	// waitPage waits for the records table to show exactly these offsets.
	waitPage := func(what string, want []int64) {
		t.Helper()
		b.waitUntil(what, fmt.Sprintf(`JSON.stringify([...document.querySelectorAll('[data-testid="records-table"] tbody tr')].map(tr => Number(tr.children[1].textContent))) === %q`, mustJSON(want)))
	}
	clickButton := func(label string) {
		t.Helper()
		var ok bool
		b.eval(fmt.Sprintf(`(() => { const e = [...document.querySelectorAll('button')].find(b => b.textContent === %q); if (e) e.click(); return !!e })()`, label), &ok)
		if !ok {
			t.Fatalf("no button %q", label)
		}
	}

	b.open("messages/log?limit=10")
	waitPage("the first page", offsetRange(0, 10))
	clickButton("Next ▶")
	waitPage("the second page", offsetRange(10, 20))
	clickButton("Next ▶")
	waitPage("the last page", offsetRange(20, 25))
	clickButton("◀ Previous")
	waitPage("the second page again", offsetRange(10, 20))

	b.fill(`[data-testid="browse"] [name="start"]`, "offset")
	b.fill(`[data-testid="browse"] [name="offset"]`, "7")
	clickButton("Load")
	waitPage("a page from offset 7", offsetRange(7, 17))

	b.fill(`[data-testid="browse"] [name="start"]`, "time")
	b.fill(`[data-testid="browse"] [name="time"]`, "2026-05-01T10:11:30Z")
	clickButton("Load")
	waitPage("a page from the first record at or after 10:11:30", offsetRange(12, 22))
	if rows := b.rows("records-table"); rows[0][2] != "2026-05-01 10:12:00.000 UTC" {
		t.Errorf("the record at offset 12 shows timestamp %q", rows[0][2])
	}

	b.fill(`[data-testid="browse"] [name="start"]`, "latest")
	clickButton("Load")
	waitPage("the latest page", offsetRange(15, 25))

	b.fill(`[data-testid="browse"] [name="start"]`, "earliest")
	b.fill(`[data-testid="browse"] [name="key"]`, "k13")
	clickButton("Load")
	waitPage("only the record keyed k13", []int64{13})
	if rows := b.rows("records-table"); rows[0][3] != "k13" || rows[0][4] != "v13" {
		t.Fatalf("key filter k13 shows %q", rows)
	}
}

func TestBrowserLiveTailStreamsNewRecords(t *testing.T) {
	c := newConsole(t, ui.Config{})
	c.createTopic("live", 1)
	c.produce(&keel.Message{Topic: "live", Key: []byte("before"), Value: []byte("written before the tail")})
	b := newTab(t, c.url)
	b.open("messages/live")
	b.waitUntil("the page", `document.querySelector('[data-testid="page-info"]').textContent !== ''`)
	var ok bool
	b.eval(`(() => { const e = [...document.querySelectorAll('button')].find(b => b.textContent === 'Live tail'); e.click(); return true })()`, &ok)

	// Once the stream is open, every record written streams in, in
	// order, and none from before.
	b.waitUntil("the tail to open", `document.querySelector('[data-testid="tail"]').dataset.open === 'true'`)
	var first, last int64 = -1, 0
	for i := range 5 {
		d := c.produce(&keel.Message{Topic: "live", Key: fmt.Appendf(nil, "new-%d", i), Value: fmt.Appendf(nil, `{"n":%d}`, i)})
		if first < 0 {
			first = d[0].Offset
		}
		last = d[0].Offset
	}
	if first != 1 {
		t.Fatalf("the first new record went to offset %d, want 1 (after the one written before)", first)
	}
	b.waitUntil("the five new records in the tail", fmt.Sprintf(`[...document.querySelectorAll('[data-testid="tail"] tbody tr')].some(tr => tr.children[1].textContent === %q)`, strconv.FormatInt(last, 10)))
	offs := shownOffsets(t, b, "tail")
	want := offsetRange(first, last+1)
	slices.Reverse(want) // newest first
	if !slices.Equal(offs, want) {
		t.Fatalf("the tail shows offsets %v, want every one from %d to %d, newest first", offs, first, last)
	}
	if rows := b.rows("tail"); rows[0][3] != "new-4" || rows[0][4] != "json{\n  \"n\": 4\n}" {
		t.Fatalf("newest tail row %q", rows[0])
	}
	b.eval(`(() => { const e = [...document.querySelectorAll('button')].find(b => b.textContent === 'Stop tail'); e.click(); return true })()`, &ok)
	b.waitUntil("the tail button to offer a new tail", `[...document.querySelectorAll('button')].some(b => b.textContent === 'Live tail')`)
}
