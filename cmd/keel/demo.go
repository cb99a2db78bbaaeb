package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/keeltest"
)

const demoUsage = `Usage: keel demo [flags]

Starts an in-process Kafka cluster of three brokers on 127.0.0.1, connects a
keel client to it and shows what keel sees: brokers, topics, partition
leaders, a leader move being followed, and the typed error for a topic that
does not exist. Nothing outside this process is touched.

Flags:
`

func init() {
	register(command{name: "demo", order: 0, summary: "a guided tour of keel on an embedded 3-broker cluster (under 30 s)", run: runDemo})
}

func runDemo(ctx context.Context, args []string, io stdio) int {
	stdout, stderr := io.out, io.err
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, demoUsage); fs.PrintDefaults() }
	brokers := fs.Int("brokers", 3, "number of brokers in the embedded cluster")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := demo(ctx, *brokers, stdout); err != nil {
		fmt.Fprintln(stderr, "keel demo:", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, brokers int, out io.Writer) error {
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }

	say("== starting an embedded cluster of %d brokers (keeltest)", brokers)
	cluster, err := keeltest.Start(keeltest.Brokers(brokers), keeltest.Topic("orders", 6), keeltest.Topic("payments", 3))
	if err != nil {
		return err
	}
	defer cluster.Close()
	say("   brokers listening on %s", strings.Join(cluster.Addrs(), ", "))

	client, err := keel.NewClient(keel.SeedBrokers(cluster.Addr()), keel.ClientID("keel-demo"))
	if err != nil {
		return err
	}
	defer client.Close(context.Background())

	say("\n== metadata as keel sees it, bootstrapped from one seed (%s)", cluster.Addr())
	md, err := client.Metadata(ctx)
	if err != nil {
		return err
	}
	printMetadata(out, md)

	say("\n== moving the leader of orders/0 and following it")
	before := leaderOf(md, "orders", 0)
	target := before
	for _, b := range md.Brokers {
		if b.ID != before {
			target = b.ID
			break
		}
	}
	if err := cluster.MoveLeader("orders", 0, target); err != nil {
		return err
	}
	md, err = client.Metadata(ctx)
	if err != nil {
		return err
	}
	say("   orders/0: leader %d -> %d (epoch %d)", before, leaderOf(md, "orders", 0), md.Topics[topicIndex(md, "orders")].Partitions[0].LeaderEpoch)

	say("\n== asking for a topic that does not exist")
	_, err = client.Metadata(ctx, "ordres")
	switch {
	case errors.Is(err, keel.ErrUnknownTopic):
		say("   errors.Is(err, keel.ErrUnknownTopic) = true")
		say("   %v", err)
	case err == nil:
		return errors.New("a missing topic was reported as present")
	default:
		return err
	}
	say("\n== done: closing the client and the cluster")
	return nil
}

func printMetadata(out io.Writer, md *keel.Metadata) {
	fmt.Fprintf(out, "   cluster %s, controller %d\n", md.ClusterID, md.Controller)
	for _, b := range md.Brokers {
		fmt.Fprintf(out, "   broker %d at %s\n", b.ID, b.Addr)
	}
	for _, t := range md.Topics {
		leaders := make([]string, len(t.Partitions))
		for i, p := range t.Partitions {
			leaders[i] = fmt.Sprintf("%d→%d", p.ID, p.Leader)
		}
		fmt.Fprintf(out, "   topic %-9s %d partitions, leaders %s\n", t.Name, len(t.Partitions), strings.Join(leaders, " "))
	}
}

func topicIndex(md *keel.Metadata, topic string) int {
	for i, t := range md.Topics {
		if t.Name == topic {
			return i
		}
	}
	return -1
}

func leaderOf(md *keel.Metadata, topic string, partition int32) int32 {
	if i := topicIndex(md, topic); i >= 0 && int(partition) < len(md.Topics[i].Partitions) {
		return md.Topics[i].Partitions[partition].Leader
	}
	return -1
}
