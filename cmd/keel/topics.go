package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

const topicsUsage = `Usage: keel topics <create|list|describe|alter|delete> [flags]

Creates, lists, describes, grows and deletes topics.

Subcommands:
  create     create a topic: -t NAME [-p PARTITIONS] [-r REPLICATION] [--config k=v ...]
             [--validate-only]
  list       list the topics with their partition counts
  describe   a topic's partitions (leader, epoch, replicas, in-sync replicas,
             start and end offsets, size on disk) and the configs set on it
  alter      add partitions: -t NAME --partitions N
  delete     delete a topic and every record in it

Flags take Apache Kafka's long names too: --topic, --partitions,
--replication-factor, --bootstrap-server. List and describe take --json.

Run 'keel topics <subcommand> -h' for its flags.

Examples:
  keel topics create -t orders -p 6 -r 3 --config retention.ms=86400000
  keel topics list
  keel topics describe -t orders
  keel topics delete -t orders
`

func init() {
	register(command{name: "topics", subs: []string{"create", "list", "describe", "alter", "delete"}, order: 40, summary: "create, list, describe, grow and delete topics", run: runTopics})
}

func runTopics(ctx context.Context, args []string, io stdio) int {
	return runSubcommand(ctx, "topics", topicsUsage, map[string]func(context.Context, []string, stdio) int{
		"create":   runTopicsCreate,
		"list":     runTopicsList,
		"describe": runTopicsDescribe,
		"alter":    runTopicsAlter,
		"delete":   runTopicsDelete,
	}, args, io)
}

// runSubcommand dispatches "keel <cmd> <sub> ..." (topics and groups use
// it): help for -h, exit 2 for a missing or unknown subcommand.
func runSubcommand(ctx context.Context, cmd, usage string, subs map[string]func(context.Context, []string, stdio) int, args []string, io stdio) int {
	if len(args) == 0 {
		fmt.Fprint(io.err, usage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(io.err, usage)
		return exitOK
	}
	run, ok := subs[args[0]]
	if !ok {
		names := make([]string, 0, len(subs))
		for n := range subs {
			names = append(names, n)
		}
		slices.Sort(names)
		return usageError(io, cmd, "unknown subcommand %q; use one of %s", args[0], strings.Join(names, ", "))
	}
	return run(ctx, args[1:], io)
}

// adminFlags are the flags every topics and groups subcommand has.
type adminFlags struct {
	brokers *string
	timeout *time.Duration
}

func addAdminFlags(fs *flag.FlagSet, io stdio) adminFlags {
	return adminFlags{
		brokers: brokerFlag(fs, io),
		timeout: fs.Duration("timeout", 30*time.Second, "give up after this long"),
	}
}

// parseAdminArgs parses args, which must hold flags only, kcat style
// (-torders and -Gbilling work as -t orders and -G billing). ok false means
// return code.
func parseAdminArgs(fs *flag.FlagSet, cmd string, args []string, io stdio) (code int, ok bool) {
	if code, ok := parseFlags(fs, expandShortFlags(fs, protectLongFlags(fs, args))); !ok {
		return code, false
	}
	if fs.NArg() > 0 {
		return usageError(io, cmd, "unexpected argument %q (every option is a flag, e.g. -t NAME)", fs.Arg(0)), false
	}
	return exitOK, true
}

// protectLongFlags writes the long flags given with one dash (-timeout,
// -config) with two, which package flag reads the same way, so that
// expandShortFlags does not split them as -t "imeout".
func protectLongFlags(fs *flag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		f := fs.Lookup(name)
		if len(a) < 2 || a[0] != '-' || a[1] == '-' || f == nil {
			out = append(out, a)
			continue
		}
		if len(name) > 1 {
			out = append(out, "-"+a)
		} else {
			out = append(out, a)
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && b.IsBoolFlag()) && i+1 < len(args) {
			out = append(out, args[i+1]) // its value, left alone
			i++
		}
	}
	return out
}

// withAdmin connects, runs fn with an Admin under the timeout, and turns
// its error into a message a person can act on (exit 1).
func withAdmin(ctx context.Context, io stdio, cmd string, f adminFlags, fn func(context.Context, *admin.Admin) error) int {
	if *f.timeout <= 0 {
		return usageError(io, cmd, "--timeout must be positive, got %v", *f.timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	client, err := connect(ctx, *f.brokers)
	if err != nil {
		return failed(io, cmd, err)
	}
	defer client.Close(context.Background())
	adm, err := admin.New(client)
	if err != nil {
		return failed(io, cmd, err)
	}
	if err := fn(ctx, adm); err != nil {
		return failed(io, cmd, adminHint(explain(err, *f.brokers), *f.brokers, *f.timeout))
	}
	return exitOK
}

// adminHint adds the next step to the errors people meet most.
func adminHint(err error, brokers string, timeout time.Duration) error {
	var hint string
	switch {
	case errors.Is(err, keel.ErrUnknownTopic):
		hint = "see the topics with 'keel topics list -b " + brokers + "'"
	case errors.Is(err, admin.ErrGroupNotFound):
		hint = "see the groups with 'keel groups list -b " + brokers + "'"
	case errors.Is(err, admin.ErrTopicExists):
		hint = "see it with 'keel topics describe -t NAME', or delete it first with 'keel topics delete -t NAME'"
	case errors.Is(err, context.DeadlineExceeded):
		hint = fmt.Sprintf("the cluster did not finish within --timeout %v", timeout)
	}
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w\n  %s", err, hint)
}

// configFlag collects repeated --config key=value flags.
type configFlag map[string]string

func (c configFlag) String() string {
	parts := make([]string, 0, len(c))
	for _, k := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, k+"="+c[k])
	}
	return strings.Join(parts, ",")
}

func (c configFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want key=value, e.g. retention.ms=86400000")
	}
	c[strings.TrimSpace(k)] = v
	return nil
}

const topicsCreateUsage = `Usage: keel topics create -t NAME [-p PARTITIONS] [-r REPLICATION] [--config key=value ...] [--validate-only]

Creates a topic and waits until every partition has a leader, so producing
right after works. Without -p or -r the brokers' defaults apply. With
--validate-only the controller checks the request (name, counts, configs)
and creates nothing.

Examples:
  keel topics create -t orders -p 6 -r 3
  keel topics create -t audit -p 1 --config retention.ms=604800000 --config cleanup.policy=compact
  keel topics create --topic orders --partitions 6 --replication-factor 3 --validate-only
`

func runTopicsCreate(ctx context.Context, args []string, io stdio) int {
	const cmd = "topics create"
	fs := newFlagSet(cmd, topicsCreateUsage, io)
	f := addAdminFlags(fs, io)
	topic := fs.String("t", "", "topic `name` (required)")
	partitions := fs.Int("p", -1, "number of `partitions` (-1: the broker default)")
	replication := fs.Int("r", -1, "replication `factor` (-1: the broker default)")
	configs := configFlag{}
	fs.Var(configs, "config", "topic config as `key=value`; repeat for several")
	validateOnly := fs.Bool("validate-only", false, "only check that the topic could be created; create nothing")
	aliases(fs, "t", "topic", "p", "partitions", "r", "replication-factor")
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	switch {
	case *topic == "":
		return usageError(io, cmd, "which topic? pass -t NAME")
	case keel.ValidateTopicName(*topic) != nil:
		return usageError(io, cmd, "%v", keel.ValidateTopicName(*topic))
	}
	if msg := checkPartitionCount(*partitions, true); msg != "" {
		return usageError(io, cmd, "-p %d: %s", *partitions, msg)
	}
	switch {
	case *replication == 0 || *replication < -1:
		return usageError(io, cmd, "-r %d: use a replication factor of at least 1 (or -1 for the broker default)", *replication)
	case *replication > math.MaxInt16:
		return usageError(io, cmd, "-r %d: too high; use at most %d (and no more than the cluster has brokers)", *replication, math.MaxInt16)
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		spec := admin.TopicSpec{Name: *topic, Partitions: int32(*partitions), ReplicationFactor: int16(*replication), Configs: configs}
		if *validateOnly {
			if err := a.ValidateCreateTopics(ctx, spec); err != nil {
				return err
			}
			fmt.Fprintf(io.out, "topic %s can be created (validated only: nothing was created)\n", *topic)
			return nil
		}
		if err := a.CreateTopics(ctx, spec); err != nil {
			return err
		}
		msg := fmt.Sprintf("created topic %s", *topic)
		if d, err := a.DescribeTopics(ctx, *topic); err == nil && len(d) == 1 && len(d[0].Partitions) > 0 {
			msg += fmt.Sprintf(" (%d partitions, replication factor %d)", len(d[0].Partitions), len(d[0].Partitions[0].Replicas))
		}
		fmt.Fprintln(io.out, msg)
		return nil
	})
}

const topicsListUsage = `Usage: keel topics list [--json] [flags]

Lists the cluster's topics and their partition counts, sorted by name.
Internal topics (such as __consumer_offsets) are marked.

Examples:
  keel topics list
  keel topics list -b kafka-1:9092
`

func runTopicsList(ctx context.Context, args []string, io stdio) int {
	const cmd = "topics list"
	fs := newFlagSet(cmd, topicsListUsage, io)
	f := addAdminFlags(fs, io)
	asJSON := jsonFlag(fs)
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		list, err := a.ListTopics(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			type topicListJSON struct {
				Name       string `json:"name"`
				Partitions int    `json:"partitions"`
				Internal   bool   `json:"internal"`
			}
			out := []topicListJSON{}
			for _, l := range list {
				out = append(out, topicListJSON{l.Name, l.Partitions, l.Internal})
			}
			return printJSON(io, out)
		}
		t := newTextTable("TOPIC", "PARTITIONS", "INTERNAL").alignRight(1)
		for _, l := range list {
			internal := ""
			if l.Internal {
				internal = "yes"
			}
			t.add(l.Name, l.Partitions, internal)
		}
		t.print(io.out)
		return nil
	})
}

const topicsDeleteUsage = `Usage: keel topics delete -t NAME [flags]

Deletes a topic and every record in it. This cannot be undone.

Examples:
  keel topics delete -t orders
`

func runTopicsDelete(ctx context.Context, args []string, io stdio) int {
	const cmd = "topics delete"
	fs := newFlagSet(cmd, topicsDeleteUsage, io)
	f := addAdminFlags(fs, io)
	topic := fs.String("t", "", "topic `name` (required)")
	aliases(fs, "t", "topic")
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	if *topic == "" {
		return usageError(io, cmd, "which topic? pass -t NAME")
	}
	if code, bad := badTopicNames(io, cmd, *topic); bad {
		return code
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		if err := a.DeleteTopics(ctx, *topic); err != nil {
			return err
		}
		fmt.Fprintf(io.out, "deleted topic %s\n", *topic)
		return nil
	})
}

// maxPartitions is the most partitions keel topics create and alter ask
// for. Kafka has no hard limit below 2^31, but every partition costs each
// replica's broker memory and file handles; a count past this is a typo.
const maxPartitions = 1 << 20

// checkPartitionCount returns why n is not a partition count to ask for,
// or "". brokerDefault allows -1 (create: the broker's default).
func checkPartitionCount(n int, brokerDefault bool) string {
	switch {
	case n == -1 && brokerDefault:
		return ""
	case n < 1 && brokerDefault:
		return "use at least 1 partition (or -1 for the broker default)"
	case n < 1:
		return "use at least 1 partition"
	case n > maxPartitions:
		return fmt.Sprintf("too many partitions; use at most %d", maxPartitions)
	}
	return ""
}

// orDash prints n, or "-" for Kafka's "none" (-1).
func orDash(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

func joinIDs(ids []int32) string {
	if len(ids) == 0 {
		return "-"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(int(id))
	}
	return strings.Join(parts, ",")
}
