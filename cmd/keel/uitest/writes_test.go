package uitest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/keel-go/keel/cmd/keel/internal/ui"
)

// The write forms do what they say, as the cluster (not the page) tells.
func TestBrowserFormsCreateTopicAddPartitionsAndProduce(t *testing.T) {
	c := newConsole(t, ui.Config{})
	b := newTab(t, c.url)

	b.open("topics")
	b.waitUntil("the create form", `document.querySelector('[data-testid="create-topic"]')`)
	b.fill(`[data-testid="create-topic"] [name="name"]`, "invoices")
	b.fill(`[data-testid="create-topic"] [name="partitions"]`, "2")
	b.click(`[data-testid="create-topic"] button[type="submit"]`)
	b.waitUntil("the new topic in the list", `[...document.querySelectorAll('[data-testid="topics-table"] tbody tr')].some(tr => tr.children[0].textContent === 'invoices' && tr.children[1].textContent === '2')`)
	if got := topicPartitions(t, c, "invoices"); got != 2 {
		t.Fatalf("after Create topic, invoices has %d partitions, want 2", got)
	}

	b.open("topic/invoices")
	b.waitUntil("the add-partitions form", `document.querySelector('[data-testid="add-partitions"]')`)
	b.fill(`[data-testid="add-partitions"] input`, "5")
	b.click(`[data-testid="add-partitions"] button[type="submit"]`)
	b.waitUntil("five partition rows", `document.querySelectorAll('[data-testid="partitions-table"] tbody tr').length === 5`)
	if got := topicPartitions(t, c, "invoices"); got != 5 {
		t.Fatalf("after Add partitions, invoices has %d partitions, want 5", got)
	}

	// A bad request is answered with the server's reason, on the page.
	b.open("topics")
	b.waitUntil("the create form", `document.querySelector('[data-testid="create-topic"]')`)
	b.fill(`[data-testid="create-topic"] [name="name"]`, "invoices")
	b.click(`[data-testid="create-topic"] button[type="submit"]`)
	b.waitUntil("an error in the status line", `document.querySelector('#status.error')?.textContent`)
	if s := b.text("#status"); !strings.Contains(s, "invoices") {
		t.Errorf("creating an existing topic says %q", s)
	}

	b.open("messages/invoices?partition=0")
	b.waitUntil("the produce form", `document.querySelector('[data-testid="produce"]') && document.querySelector('[data-testid="page-info"]').textContent !== ''`)
	b.fill(`[data-testid="produce"] [name="key"]`, "inv-7")
	b.fill(`[data-testid="produce"] [name="value"]`, `{"total": 12.5}`)
	b.fill(`[data-testid="produce"] [name="headers"]`, "origin=console,trace=t-1")
	b.click(`[data-testid="produce"] button[type="submit"]`)
	b.waitUntil("the produce result", `document.querySelector('[data-testid="produce-result"]').textContent !== ''`)
	res := b.text(`[data-testid="produce-result"]`)
	if !strings.HasPrefix(res, "written to partition ") {
		t.Fatalf("produce says %q", res)
	}
	// The record, read back by another client, is what the form held.
	var p int32
	for i := int32(0); i < 5; i++ {
		if strings.HasPrefix(res, fmt.Sprintf("written to partition %d ", i)) {
			p = i
		}
	}
	got := readBackKeel(t, c, "invoices", p, 0)
	if got.key != "inv-7" || got.value != `{"total": 12.5}` || got.headers != "origin=console,trace=t-1" {
		t.Fatalf("the produced record reads back as %+v", got)
	}
}

func topicPartitions(t *testing.T, c *console, topic string) int {
	t.Helper()
	md, err := c.client.Metadata(c.ctx(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return len(md.Topics[0].Partitions)
}
