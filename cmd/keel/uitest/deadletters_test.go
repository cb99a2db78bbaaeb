package uitest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
	"github.com/keel-go/keel/cmd/keel/internal/ui/uifixture"
	"github.com/keel-go/keel/retry"
)

func TestBrowserDeadLetterListedWithErrorOriginAndReplayed(t *testing.T) {
	c := newConsole(t, ui.Config{})
	c.createTopic("orders", 1)
	c.produce(&keel.Message{Topic: "orders", Key: []byte("good"), Value: []byte(`{"price":3}`)},
		&keel.Message{Topic: "orders", Key: []byte(uifixture.BadKey), Value: []byte(`{"price":"NaN"}`)})
	dl, err := uifixture.DeadLetterOne(c.client, "orders")
	if err != nil {
		t.Fatal(err)
	}

	b := newTab(t, c.url)
	b.open("deadletters")
	b.waitUntil("the dead-letter topics", `document.querySelector('[data-testid="dlt-table"]')`)
	// columns: topic, kind, origin, records, last
	if rows := b.rows("dlt-table"); !cellsContain(rows, dl.Topic, "dead-letter", "orders", "1") {
		t.Fatalf("dead-letter topics %q, want %s (dead-letter, origin orders, 1 record)", rows, dl.Topic)
	}
	b.click(fmt.Sprintf(`[data-testid="dlt-table"] a[href="#/deadletters/%s"]`, dl.Topic))
	b.waitUntil("the dead letters", `document.querySelectorAll('[data-testid="dl-table"] tbody tr').length === 1`)
	// columns: select, offset, error, reason, attempts, origin, first failure, key, value, replay
	row := b.rows("dl-table")[0]
	if !strings.Contains(row[2], "price is not a number") || row[3] != "permanent" || row[4] != "1" || row[5] != "orders[0]@1" || row[6] == "-" || row[7] != uifixture.BadKey {
		t.Fatalf("dead letter row %q: want the error, reason permanent, 1 attempt, origin orders[0]@1, a first-failure time and key %q", row, uifixture.BadKey)
	}

	b.click(`[data-testid="replay-one"]`)
	b.waitUntil("the replay result", `document.querySelector('[data-testid="replay-result"] .ok')`)
	var result string
	b.eval(`document.querySelector('[data-testid="replay-result"]').textContent`, &result)
	if !strings.Contains(result, "Replayed 1 record(s)") || !strings.Contains(result, "orders[0]@2") {
		t.Fatalf("replay result %q, want 1 record replayed to orders[0]@2", result)
	}
	b.screenshot("ui-dlq.png")

	// The record is back on its origin topic, with its key and value, as
	// another client reads it.
	got := readBack(t, c, "orders", 0, 2)
	if got.key != uifixture.BadKey || got.value != `{"price":"NaN"}` || !strings.Contains(got.headers, retry.HeaderReplayedFrom) {
		t.Fatalf("orders[0]@2 read back as %+v: want key %q, the original value and a %s header", got, uifixture.BadKey, retry.HeaderReplayedFrom)
	}
}

type readRecord struct{ key, value, headers string }

// readBack reads one record with kcat (librdkafka), which CI installs;
// without kcat, and outside CI, with keel's own consumer.
func readBack(t *testing.T, c *console, topic string, partition int32, offset int64) readRecord {
	t.Helper()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv(requireBrowserEnv) == "1" {
			t.Fatalf("%s=1 (CI) but no kcat to read the replayed record back: %v", requireBrowserEnv, err)
		}
		t.Logf("no kcat (%v): reading the replayed record with keel", err)
		return readBackKeel(t, c, topic, partition, offset)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-C", "-b", c.cluster.Addr(), "-t", topic, "-p", fmt.Sprint(partition), "-o", fmt.Sprint(offset), "-c", "1", "-e", "-q",
		"-f", `%k\t%s\t%h\n`)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, errOut.String())
	}
	f := strings.SplitN(strings.TrimSuffix(out.String(), "\n"), "\t", 3)
	if len(f) != 3 {
		t.Fatalf("kcat printed %q", out.String())
	}
	return readRecord{key: f[0], value: f[1], headers: f[2]}
}

func readBackKeel(t *testing.T, c *console, topic string, partition int32, offset int64) readRecord {
	t.Helper()
	cons, err := keel.NewConsumer(c.client)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(context.Background())
	if err := cons.Assign(keel.TopicPartition{Topic: topic, Partition: partition}, keel.AtOffset(offset)); err != nil {
		t.Fatal(err)
	}
	ctx := c.ctx()
	for {
		ms, err := cons.Poll(ctx)
		if err != nil {
			t.Fatalf("reading %s[%d]@%d: %v", topic, partition, offset, err)
		}
		for _, m := range ms {
			if m.Offset == offset {
				var hs []string
				for _, h := range m.Headers {
					hs = append(hs, h.Key+"="+string(h.Value))
				}
				return readRecord{key: string(m.Key), value: string(m.Value), headers: strings.Join(hs, ",")}
			}
		}
	}
}
