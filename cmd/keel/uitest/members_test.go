package uitest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/cmd/keel/internal/ui"
)

// A live consumer shows on the group page as a member with its
// assignment, its lag drains to what admin reports, and when it leaves
// the page follows.
func TestBrowserGroupPageShowsLiveMemberAndItsAssignment(t *testing.T) {
	c := newConsole(t, ui.Config{})
	c.createTopic("events", 2)
	var msgs []*keel.Message
	for i := range 20 {
		msgs = append(msgs, &keel.Message{Topic: "events", Partition: int32(i % 2), Value: fmt.Appendf(nil, "e%d", i)})
	}
	c.produce(msgs...)

	worker, err := keel.NewClient(keel.SeedBrokers(c.cluster.Addrs()...), keel.ClientID("billing-worker"))
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close(context.Background())
	g, err := keel.NewGroupConsumer(worker, "billing", []string{"events"}, keel.ResetOffset(keel.ResetEarliest))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	ran := make(chan error, 1)
	go func() {
		ran <- g.Run(runCtx, keel.HandlerFunc(func(ctx context.Context, m *keel.Message) error { return nil }))
	}()
	closeGroup := func() {
		stop()
		<-ran
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = g.Close(ctx)
	}
	closed := false
	defer func() {
		if !closed {
			closeGroup()
		}
	}()

	b := newTab(t, c.url)
	b.open("group/billing")
	// columns of the members table: client id, host, instance, assigned
	b.waitUntil("the worker as a member with both partitions",
		`[...document.querySelectorAll('main table tbody tr')].some(tr => tr.children[0].textContent === 'billing-worker' && tr.children[3].textContent.includes('events[0]') && tr.children[3].textContent.includes('events[1]'))`)
	b.waitUntil("the group drained to no lag", `document.querySelector('[data-testid="total-lag"] .v')?.textContent === '0'`)
	total, per := lagWant(t, c, "billing")
	if total != 0 {
		t.Fatalf("the page shows lag 0, admin reports %d: %v", total, per)
	}
	checkGroupPage(t, b, total, per)
	var state string
	b.eval(`document.querySelector('.card .v').textContent`, &state)
	if state != "Stable" {
		t.Errorf("group state shown %q, want Stable", state)
	}
	for _, r := range b.rows("lag-table") {
		if r[5] != "billing-worker" {
			t.Errorf("lag row %q does not name the consumer", r)
		}
	}

	closeGroup()
	closed = true
	b.waitUntil("the page to see the worker leave", `document.querySelector('[data-testid="no-members"]')`)
	if s := b.text(".card .v"); !strings.EqualFold(s, "Empty") {
		t.Errorf("after the worker left, state shown %q, want Empty", s)
	}
}
