package uitest

import (
	"fmt"
	"testing"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
)

func TestBrowserTopicsPageListsTopicWithPartitionCount(t *testing.T) {
	c := newConsole(t, ui.Config{})
	c.createTopic("orders", 3)
	c.createTopic("payments", 1)
	for i := range 5 {
		c.produce(&keel.Message{Topic: "orders", Partition: int32(i % 3), Value: fmt.Appendf(nil, `{"n":%d}`, i)})
	}
	b := newTab(t, c.url)
	b.open("topics")
	b.waitUntil("the topics table", `document.querySelector('[data-testid="topics-table"]')`)
	rows := b.rows("topics-table")
	// columns: topic, partitions, replication, records, size
	if !cellsContain(rows, "orders", "3", "1", "5") || !cellsContain(rows, "payments", "1", "1", "0") {
		t.Fatalf("topics table rows: %q", rows)
	}
	b.screenshot("ui-topics.png")

	// The topic's page has one row per partition.
	b.click(`[data-testid="topics-table"] a[href="#/topic/orders"]`)
	b.waitUntil("the partitions table", `document.querySelector('[data-testid="partitions-table"]')`)
	if rows := b.rows("partitions-table"); len(rows) != 3 {
		t.Fatalf("partitions table of orders: %q", rows)
	}
}
