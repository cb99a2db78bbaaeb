package uitest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
	"github.com/keel-go/keel/keeltest"
)

// The topic page shows what admin describes: each partition's leader,
// replicas, ISR and offsets, and the topic's configs with the ones it
// sets marked.
func TestBrowserTopicPageShowsPartitionsAndConfigsAdminDescribes(t *testing.T) {
	c := newConsole(t, ui.Config{}, keeltest.Brokers(3))
	if err := c.admin.CreateTopics(c.ctx(), admin.TopicSpec{Name: "orders", Partitions: 3, ReplicationFactor: 3,
		Configs: map[string]string{"retention.ms": "3600000"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		c.produce(&keel.Message{Topic: "orders", Partition: int32(i % 3), Value: fmt.Appendf(nil, "r%d", i)})
	}
	descs, err := c.admin.DescribeTopics(c.ctx(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	starts, err := c.admin.StartOffsets(c.ctx(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	ends, err := c.admin.EndOffsets(c.ctx(), "orders")
	if err != nil {
		t.Fatal(err)
	}

	b := newTab(t, c.url)
	b.open("topic/orders")
	// columns: partition, leader, replicas, isr, start, end, records, size
	rows := b.rows("partitions-table")
	if len(rows) != 3 {
		t.Fatalf("partitions table %q, want 3 rows", rows)
	}
	join := func(ids []int32) string {
		s := make([]string, len(ids))
		for i, id := range ids {
			s[i] = strconv.Itoa(int(id))
		}
		return strings.Join(s, ", ")
	}
	for _, p := range descs[0].Partitions {
		tp := keel.TopicPartition{Topic: "orders", Partition: p.Partition}
		want := []string{strconv.Itoa(int(p.Partition)), strconv.Itoa(int(p.Leader)), join(p.Replicas), join(p.ISR),
			strconv.FormatInt(starts[tp], 10), strconv.FormatInt(ends[tp], 10), strconv.FormatInt(ends[tp]-starts[tp], 10)}
		found := false
		for _, r := range rows {
			if len(r) >= len(want) && strings.Join(r[:len(want)], "|") == strings.Join(want, "|") {
				found = true
			}
		}
		if !found {
			t.Errorf("no partitions row %q (admin's description) in %q", want, rows)
		}
		if len(p.Replicas) != 3 {
			t.Errorf("partition %d has replicas %v, the test meant 3", p.Partition, p.Replicas)
		}
	}

	var configs [][]string
	b.eval(`[...document.querySelectorAll('main table')].at(-1).querySelectorAll('tbody tr').length && [...[...document.querySelectorAll('main table')].at(-1).querySelectorAll('tbody tr')].map(tr => [...tr.children].map(td => td.textContent))`, &configs)
	// columns: name, value, source, set/default
	if !cellsContain(configs, "retention.ms", "3600000", "", "set") {
		t.Errorf("configs table has no retention.ms 3600000 marked set: %q", configs)
	}
	entries, err := c.admin.DescribeConfigs(c.ctx(), admin.ConfigResource{Type: admin.TopicConfigs, Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if len(configs) != len(entries) {
		t.Errorf("configs table has %d rows, admin describes %d configs", len(configs), len(entries))
	}
}
