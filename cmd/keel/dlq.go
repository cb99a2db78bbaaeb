package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/retry"
)

const dlqUsage = `Usage: keel dlq replay -t DLT [flags]

Works with dead-letter topics written by keel's retry package (see
docs/RETRIES.md).

Subcommands:
  replay   copy dead letters back to the topic they came from, so they are
           handled again from attempt 1

Run 'keel dlq replay -h' for its flags.

Examples:
  keel dlq replay -t orders.dlt
  keel dlq replay -t orders.dlt --since 2h --key order-42
`

const dlqReplayUsage = `Usage: keel dlq replay -t DLT [-G GROUP] [--since WHEN] [--until WHEN] [--key KEY ...] [flags]

Copies records from a dead-letter topic back to the topic each came from
(its keel-original-topic header, or --to), with its key, value and own
headers but without the retry headers, so it starts again at attempt 1;
a keel-replayed-from header names the dead letter it was copied from.

The replay reads the dead-letter topic as consumer group GROUP and commits
as it goes: run the same command again after an interruption and it goes
on where it stopped. It stops at the end the topic had when it started.
Records the filters leave out are passed over (and committed) too; the
default group is named after the topic and the filters as written (--since
2h is the same filter at every run, so the same command resumes), so a
replay with other filters starts afresh. A record is replayed only once the broker
acknowledged its copy; a failed write stops the replay with an error and
the record stays for the next run.

WHEN is a time (2024-05-01T10:00:00Z, 2024-05-01) or a duration ago (90m,
2h, 3d); it is compared with the dead letter's timestamp, the time it was
dead-lettered. --since is inclusive, --until exclusive.

Examples:
  keel dlq replay -t orders.dlt                          # everything not replayed yet
  keel dlq replay -t orders.dlt --max 10                 # try ten first; run again for the rest
  keel dlq replay -t orders.dlt --since 2h               # what failed in the last two hours
  keel dlq replay -t orders.dlt --key order-42 --key order-43
  keel dlq replay -t orders.dlt --failed-by billing      # only what group billing gave up on
  keel dlq replay -t orders.dlt --to orders-v2 -G move-to-v2
`

func init() {
	register(command{name: "dlq", subs: []string{"replay"}, order: 70, summary: "replay dead-letter topics back to their source topics", run: runDLQ})
}

func runDLQ(ctx context.Context, args []string, io stdio) int {
	if len(args) == 0 {
		fmt.Fprint(io.err, dlqUsage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(io.err, dlqUsage)
		return exitOK
	case "replay":
		return runDLQReplay(ctx, args[1:], io)
	}
	return usageError(io, "dlq", "unknown subcommand %q; use replay", args[0])
}

// keyFlag collects repeated --key values.
type keyFlag [][]byte

func (k *keyFlag) String() string {
	parts := make([]string, len(*k))
	for i, b := range *k {
		parts[i] = string(b)
	}
	return strings.Join(parts, ",")
}

func (k *keyFlag) Set(v string) error { *k = append(*k, []byte(v)); return nil }

func runDLQReplay(ctx context.Context, args []string, io stdio) int {
	const cmd = "dlq replay"
	fs := newFlagSet(cmd, dlqReplayUsage, io)
	brokers := brokerFlag(fs, io)
	dlt := fs.String("t", "", "the dead-letter `topic` to replay (required)")
	group := fs.String("G", "", "consumer `group` that keeps the replay's progress (default: keel-replay.DLT, plus a hash of the filters)")
	to := fs.String("to", "", "send every record to this `topic` instead of its keel-original-topic")
	since := fs.String("since", "", "only dead letters from `WHEN` on")
	until := fs.String("until", "", "only dead letters before `WHEN`")
	var keys keyFlag
	fs.Var(&keys, "key", "only records with this `key` (repeatable)")
	failedBy := fs.String("failed-by", "", "only records dead-lettered by this consumer `group`")
	maxN := fs.Int("max", 0, "stop after replaying `N` records (0: all)")
	verbose := fs.Bool("v", false, "print each record replayed")
	aliases(fs, "t", "topic", "G", "group")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(io, cmd, "unexpected argument %q (every option is a flag, e.g. -t NAME)", fs.Arg(0))
	}
	if *dlt == "" {
		return usageError(io, cmd, "which dead-letter topic? pass -t TOPIC, e.g. -t orders.dlt")
	}
	if code, bad := badTopicNames(io, cmd, *dlt); bad {
		return code
	}
	if *to != "" {
		if code, bad := badTopicNames(io, cmd, *to); bad {
			return code
		}
	}
	if *to != "" && *to == *dlt {
		return usageError(io, cmd, "--to names the dead-letter topic itself; replay to the topic the records came from")
	}
	if *maxN < 0 {
		return usageError(io, cmd, "--max must be 0 or more, got %d", *maxN)
	}
	now := time.Now()
	opts := retry.ReplayOptions{DLT: *dlt, Group: *group, Topic: *to, Keys: keys, FailedBy: *failedBy, Max: *maxN}
	var err error
	if opts.Since, err = parseWhen(*since, now); err != nil {
		return usageError(io, cmd, "--since: %v", err)
	}
	if opts.Until, err = parseWhen(*until, now); err != nil {
		return usageError(io, cmd, "--until: %v", err)
	}
	if !opts.Since.IsZero() && !opts.Until.IsZero() && !opts.Until.After(opts.Since) {
		return usageError(io, cmd, "--until (%s) is not after --since (%s)", opts.Until.Format(time.RFC3339), opts.Since.Format(time.RFC3339))
	}
	if opts.Group == "" && (relativeWhen(*since) || relativeWhen(*until)) {
		opts.Group = relativeReplayGroup(*dlt, *since, *until, *to, *failedBy, keys)
	}
	if *verbose {
		opts.OnReplay = func(from *keel.Message, d keel.Delivery) {
			fmt.Fprintf(io.err, "%s/%d@%d -> %s/%d@%d\n", from.Topic, from.Partition, from.Offset, d.Message.Topic, d.Partition, d.Offset)
		}
	}

	client, err := connect(ctx, *brokers)
	if err != nil {
		return failed(io, cmd, err)
	}
	defer client.Close(context.Background())
	res, err := retry.Replay(ctx, client, opts)
	if err == nil || res.Replayed > 0 || res.Skipped > 0 { // say what it did, even when it failed later
		fmt.Fprintf(io.out, "replayed %d record(s) from %s", res.Replayed, *dlt)
		if res.Skipped > 0 {
			fmt.Fprintf(io.out, "; %d passed over by the filters", res.Skipped)
		}
		fmt.Fprintf(io.out, "; progress kept by group %s\n", res.Group)
	}
	if err != nil {
		return failed(io, cmd, dlqHint(explain(err, *brokers), *dlt, *brokers))
	}
	if res.Remaining {
		fmt.Fprintf(io.out, "stopped after --max %d; run the same command again for the rest\n", *maxN)
	}
	return exitOK
}

// dlqHint adds the next step to the errors a replay meets most.
func dlqHint(err error, dlt, brokers string) error {
	var pe *keel.ProduceError
	switch {
	case errors.As(err, &pe) && errors.Is(pe, keel.ErrUnknownTopic):
		// Writing back failed: the destination (--to, or the records'
		// origin) is missing, not the dead-letter topic.
		return fmt.Errorf("%w\n  the destination topic %q does not exist: create it with 'keel topics create -t %s', or name another with --to", err, pe.Topic, pe.Topic)
	case errors.Is(err, keel.ErrUnknownTopic):
		return fmt.Errorf("%w\n  does %s exist? see the topics with 'keel topics list -b %s'", err, dlt, brokers)
	case errors.Is(err, retry.ErrReplayBusy):
		return err // it says what to do; another -G would replay everything again
	case errors.Is(err, keel.ErrInvalidConfig):
		return err
	}
	if strings.Contains(err.Error(), retry.HeaderOriginalTopic) {
		return fmt.Errorf("%w\n  name the destination with --to TOPIC", err)
	}
	return err
}

// relativeWhen reports whether a --since or --until value is a duration
// ago ("2h") rather than a fixed time.
func relativeWhen(s string) bool {
	if s == "" {
		return false
	}
	if _, err := time.Parse(time.RFC3339, s); err == nil {
		return false
	}
	_, err := time.ParseInLocation(time.DateOnly, s, time.Local)
	return err != nil
}

// relativeReplayGroup names the progress group of a replay with a relative
// --since or --until. retry.Replay names a filtered replay's group after
// the filter's times, and "2h ago" is another time at every run: the same
// command run again would never resume, but start afresh and replay again
// what the interrupted run already replayed. Named after the flags as
// written, it resumes; records an earlier run passed over as too old are
// older still.
func relativeReplayGroup(dlt, since, until, to, failedBy string, keys [][]byte) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "relative\x00since=%s\x00until=%s\x00failed-by=%s\x00topic=%s\x00", since, until, failedBy, to)
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = strconv.Quote(string(k))
	}
	sort.Strings(quoted)
	for _, k := range quoted {
		fmt.Fprintf(h, "key=%s\x00", k)
	}
	return fmt.Sprintf("keel-replay.%s.%016x", dlt, h.Sum64())
}

// parseWhen reads a time (RFC 3339, or a date) or a duration ago ("90m",
// "2h", "3d"); "" is the zero time (no bound).
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && n >= 0 && fmt.Sprint(n) == days {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a time (2024-05-01T10:00:00Z, 2024-05-01) nor a duration ago (90m, 2h, 3d)", s)
}
