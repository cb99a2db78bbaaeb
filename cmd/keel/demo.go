package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
	"github.com/keel-go/keel/keeltest"
)

const demoUsage = `
Usage: keel demo

A guided tour of keel in one process, on an embedded cluster of three
brokers (keeltest) on 127.0.0.1, in under 30 seconds:

  1. the cluster as keel sees it
  2. 600 orders produced, each with its own delivery report, while an
     Events() loop prints what happens to connections and metadata
  3. a consumer group of two members (cooperative-sticky) processing the
     orders with one worker per partition
  4. a third member joining mid-stream: only the partitions that move are
     revoked, and a slow handler finishes its order before its partition
     moves to the new member
  5. a summary: produced, delivered, consumed, duplicates, and committed
     offsets against the end of each partition

Nothing outside this process is touched.

Examples:
  go run ./cmd/keel demo
  keel demo
`

func init() {
	register(command{name: "demo", order: 0, summary: "a guided tour of keel on an embedded 3-broker cluster (under 30 s)", run: runDemo})
}

// demoBudget bounds the tour's work; closing what is left fits in the
// rest of the 30 seconds the demo promises.
const demoBudget = 25 * time.Second

func runDemo(ctx context.Context, args []string, io stdio) int {
	fs := newFlagSet("demo", demoUsage, io)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(io, "demo", "unexpected argument %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, demoBudget)
	defer cancel()
	if err := demo(ctx, io.out); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("the tour did not finish within %v (a slow machine?): %w", demoBudget, err)
		}
		return failed(io, "demo", err)
	}
	return exitOK
}

// The tour's shape.
const (
	demoTopic      = "orders"
	demoPartitions = 6
	demoOrders     = 600
	demoGroupID    = "billing"
)

func demo(ctx context.Context, w io.Writer) error {
	o := &demoOut{w: w, t0: time.Now()}
	start := time.Now()
	o.line("keel demo — every message accounted for, on a Kafka cluster inside this process")

	cluster, err := keeltest.Start(keeltest.Brokers(3), keeltest.Topic(demoTopic, demoPartitions),
		// Low session timeouts let members join and rebalance in
		// fractions of a second.
		keeltest.GroupSessionTimeouts(500*time.Millisecond, time.Minute))
	if err != nil {
		return err
	}
	defer cluster.Close()

	if err := demoCluster(ctx, o, cluster); err != nil {
		return err
	}
	produced, err := demoProduce(ctx, o, cluster)
	if err != nil {
		return err
	}
	consumed, err := demoConsume(ctx, o, cluster, produced)
	if err != nil {
		return err
	}
	if err := demoSummary(ctx, o, cluster, produced, consumed); err != nil {
		return err
	}
	o.line("")
	o.line("Done in %.1fs. Next: 'keel dev' runs a cluster like this one on 127.0.0.1:9092-9094.", time.Since(start).Seconds())
	return nil
}

// demoCluster shows section 1: the brokers and the topic's leaders, as a
// client bootstrapped from one seed sees them.
func demoCluster(ctx context.Context, o *demoOut, cluster *keeltest.Cluster) error {
	o.heading("1. A cluster of 3 brokers (keeltest), as keel sees it from one seed address")
	client, err := keel.NewClient(keel.SeedBrokers(cluster.Addr()), keel.ClientID("demo-admin"))
	if err != nil {
		return err
	}
	defer demoCloseClient(client)
	md, err := client.Metadata(ctx)
	if err != nil {
		return err
	}
	for _, b := range md.Brokers {
		o.say("broker %d at %s", b.ID, b.Addr)
	}
	for _, t := range md.Topics {
		leaders := make([]string, len(t.Partitions))
		for i, p := range t.Partitions {
			leaders[i] = fmt.Sprintf("%d→%d", p.ID, p.Leader)
		}
		o.say("topic %s: %d partitions, leaders (partition→broker) %s", t.Name, len(t.Partitions), strings.Join(leaders, " "))
	}
	return nil
}

// demoSummary shows section 5: every order accounted for, and the
// committed offsets, read from the broker, against each partition's end.
// It fails when they do not add up, so that the demo's exit status says
// so (CI runs it).
func demoSummary(ctx context.Context, o *demoOut, cluster *keeltest.Cluster, p *demoProduced, c *demoConsumed) error {
	o.heading("5. Summary")
	lost := p.delivered - c.unique
	o.say("produced  %d orders: %d delivered, %d failed", p.produced, p.delivered, p.failed)
	o.say("consumed  %d unique, %d duplicates, %d lost", c.unique, c.duplicates, lost)
	o.line("")
	o.say("%-10s %10s %10s   %s", "partition", "end offset", "committed", "processed by")
	commits := demoGroupOffsets(ctx, cluster)
	var committedSum int64
	allMatch := true
	for part := range int32(demoPartitions) {
		end := cluster.HighWatermark(demoTopic, part)
		committed, ok := commits[part]
		shown := fmt.Sprint(committed)
		if !ok {
			shown = "none"
		}
		if committed != end || !ok {
			allMatch = false
		}
		committedSum += committed
		if end != p.ends[part] {
			allMatch = false // the broker and the delivery reports disagree
		}
		o.say("%-10s %10d %10s   %s", fmt.Sprintf("%s/%d", demoTopic, part), end, shown, c.processedBy(part))
	}
	o.line("")
	if allMatch && lost == 0 && c.duplicates == 0 && committedSum == int64(p.delivered) {
		o.say("committed %d = produced %d — every order accounted for: delivered once,", committedSum, p.delivered)
		o.say("processed once, and committed up to the end of its partition.")
		return nil
	}
	o.say("committed %d, produced %d: NOT everything is accounted for — this is a bug in keel;", committedSum, p.delivered)
	o.say("please report it with this output.")
	return errors.New("not every order was accounted for (see the summary above): this is a bug in keel")
}

// demoGroupOffsets reads the group's committed offsets of the demo topic
// with the admin package, as an operator would (keel groups lag).
func demoGroupOffsets(ctx context.Context, cluster *keeltest.Cluster) map[int32]int64 {
	out := make(map[int32]int64)
	client, err := keel.NewClient(keel.SeedBrokers(cluster.Addr()), keel.ClientID("demo-admin"))
	if err != nil {
		return out
	}
	defer demoCloseClient(client)
	adm, err := admin.New(client)
	if err != nil {
		return out
	}
	offsets, err := adm.GroupOffsets(ctx, demoGroupID)
	if err != nil {
		return out
	}
	for tp, off := range offsets {
		if tp.Topic == demoTopic {
			out[tp.Partition] = off
		}
	}
	return out
}

func demoCloseClient(c *keel.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c.Close(ctx)
}

// demoOut writes the tour: numbered headings, indented lines, and
// timestamped lines for the rebalance timeline. Callbacks of several
// goroutines print through it, one line at a time.
type demoOut struct {
	mu    sync.Mutex
	w     io.Writer
	t0    time.Time // timeline origin
	quiet bool      // while shutting down: callbacks print nothing
}

func (o *demoOut) line(format string, a ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, format+"\n", a...)
}

func (o *demoOut) heading(format string, a ...any) { o.line("\n== "+format, a...) }

func (o *demoOut) say(format string, a ...any) { o.line("   "+format, a...) }

// at prints a timeline line: time since the origin, who, what.
func (o *demoOut) at(who, format string, a ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.quiet {
		return
	}
	fmt.Fprintf(o.w, "   %+6.2fs  %-9s %s\n", time.Since(o.t0).Seconds(), who, fmt.Sprintf(format, a...))
}

// restart moves the timeline origin to now.
func (o *demoOut) restart() {
	o.mu.Lock()
	o.t0 = time.Now()
	o.mu.Unlock()
}

func (o *demoOut) silence() {
	o.mu.Lock()
	o.quiet = true
	o.mu.Unlock()
}
