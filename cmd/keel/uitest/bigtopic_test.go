package uitest

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
)

// bigRecordsEnv sets how many records TestBrowserBigTopicPagesReadOnlyAPage
// writes (KEEL_UI_BIG_RECORDS=1000000 for the million); unset, a
// smaller topic keeps the test quick in CI.
const bigRecordsEnv = "KEEL_UI_BIG_RECORDS"

// The message browser reads only the page it shows: on a big topic the
// first, a middle and the last page show the right offsets, and the
// topics page counts every record. The load times are logged (the
// figures in docs/UI.md), not asserted.
func TestBrowserBigTopicPagesReadOnlyAPage(t *testing.T) {
	n := int64(50_000)
	if s := os.Getenv(bigRecordsEnv); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 100 {
			t.Fatalf("%s=%q: give a number of records, 100 or more", bigRecordsEnv, s)
		}
		n = v
	}
	c := newConsole(t, ui.Config{})
	c.createTopic("big", 1)
	began := time.Now()
	const batch = 5000
	for from := int64(0); from < n; from += batch {
		msgs := make([]*keel.Message, 0, batch)
		for i := from; i < min(from+batch, n); i++ {
			msgs = append(msgs, &keel.Message{Topic: "big", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, `{"n":%d}`, i)})
		}
		c.produce(msgs...)
	}
	t.Logf("wrote %d records in %v", n, time.Since(began).Round(time.Millisecond))

	b := newTab(t, c.url)
	timed := func(what, route string, want []int64) {
		t.Helper()
		began := time.Now()
		b.open(route)
		b.waitUntil(what, fmt.Sprintf(`JSON.stringify([...document.querySelectorAll('[data-testid="records-table"] tbody tr')].map(tr => Number(tr.children[1].textContent))) === %q`, mustJSON(want)))
		t.Logf("%s of %d records: shown %v after opening #/%s", what, n, time.Since(began).Round(time.Millisecond), route)
	}
	timed("the first page", "messages/big?limit=50", offsetRange(0, 50))
	timed("a middle page", fmt.Sprintf("messages/big?limit=50&start=offset&offset=%d", n/2), offsetRange(n/2, n/2+50))
	timed("the last page", "messages/big?limit=50&start=latest", offsetRange(n-50, n))
	// What the middle page cost the server: the records of one page.
	var page struct {
		Scanned int
		Records []struct{ Offset int64 }
	}
	b.await(fmt.Sprintf(`fetch('/api/topics/big/messages?partition=0&limit=50&start=offset&offset=%d').then(r => r.json())`, n/2), &page)
	if page.Scanned > 50+batch || len(page.Records) != 50 || page.Records[0].Offset != n/2 {
		t.Errorf("a middle page read %d records to show %d from offset %d, want one page (50, at most a produced batch more) from %d", page.Scanned, len(page.Records), page.Records[0].Offset, n/2)
	}
	t.Logf("the middle page read %d records", page.Scanned)

	began = time.Now()
	b.open("topics")
	want := fmtThousands(n)
	b.waitUntil("the record count", fmt.Sprintf(`[...document.querySelectorAll('[data-testid="topics-table"] tbody tr')].some(tr => tr.children[0].textContent === 'big' && tr.children[3].textContent === %q)`, want))
	t.Logf("the topics page with %s records in big: shown %v", want, time.Since(began).Round(time.Millisecond))
}

// fmtThousands writes n as the pages do (en-US grouping).
func fmtThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
