package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

const groupsResetUsage = `Usage: keel groups reset-offsets -G GROUP (-t TOPIC[:PARTITIONS] ... | --all-topics)
         (--to-earliest | --to-latest | --to-offset N | --to-datetime T | --by-duration D | --shift-by N)
         [--dry-run | --execute] [--json]

Moves a consumer group's committed offsets, as kafka-consumer-groups.sh
--reset-offsets does. It prints the plan, per partition the committed
offset now and the new one; with --dry-run (the default) that is all it
does; --execute commits the new offsets. The group must be inactive (no
running members): stop its consumers first, or the reset is refused.

New offsets stay inside the log: below the log start they are the log
start, past the end the end.

Targets:
  --to-earliest        the first offset still held
  --to-latest          the end: skip everything not yet read
  --to-offset N        offset N
  --to-datetime T      the first record at or after T: 2024-05-01T10:00:00Z,
                       2024-05-01T10:00:00.000 (local time) or 2024-05-01
  --by-duration D      the first record at or after D ago: 90m, 2h, P1DT2H (ISO 8601)
  --shift-by N         N offsets from the committed one (negative: back)

-t names a topic, with its partitions after a colon to reset only those
(-t orders:0,1,5); repeat it for several topics. --all-topics covers every
topic the group has committed offsets on.

Examples:
  keel groups reset-offsets -G billing -t orders --to-earliest              # show the plan
  keel groups reset-offsets -G billing -t orders --to-earliest --execute    # apply it
  keel groups reset-offsets --group billing --all-topics --shift-by -100 --execute
  keel groups reset-offsets -G billing -t orders:3 --to-datetime 2024-05-01T10:00:00Z
`

// topicPartsFlag collects repeated -t TOPIC[:P,P,...].
type topicPartsFlag map[string][]int32

func (t topicPartsFlag) String() string { return "" }

func (t topicPartsFlag) Set(s string) error {
	name, parts, hasParts := strings.Cut(s, ":")
	if err := keel.ValidateTopicName(name); err != nil {
		return err
	}
	if _, dup := t[name]; dup {
		return fmt.Errorf("topic %q given twice; list its partitions once, as -t %s:0,1", name, name)
	}
	t[name] = nil
	if !hasParts {
		return nil
	}
	for _, p := range strings.Split(parts, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("%q: partitions are numbers 0 or more, as -t %s:0,1,2", s, name)
		}
		t[name] = append(t[name], int32(n))
	}
	return nil
}

func runGroupsReset(ctx context.Context, args []string, io stdio) int {
	const cmd = "groups reset-offsets"
	fs := newFlagSet(cmd, groupsResetUsage, io)
	f := addAdminFlags(fs, io)
	group := fs.String("G", "", "consumer `group` (required)")
	topics := topicPartsFlag{}
	fs.Var(topics, "t", "`topic`, optionally with partitions: orders or orders:0,1 (repeatable)")
	all := fs.Bool("all-topics", false, "every topic the group has committed offsets on")
	var target targetFlags
	fs.BoolFunc("to-earliest", "reset to the earliest offset", target.set("--to-earliest", func(string) (admin.OffsetTarget, error) { return admin.ToEarliest(), nil }))
	fs.BoolFunc("to-latest", "reset to the end", target.set("--to-latest", func(string) (admin.OffsetTarget, error) { return admin.ToLatest(), nil }))
	fs.Func("to-offset", "reset to offset `N`", target.set("--to-offset", parseToOffset))
	fs.Func("to-datetime", "reset to the first record at or after `T`", target.set("--to-datetime", parseDatetime))
	fs.Func("by-duration", "reset to the first record at or after `D` ago", target.set("--by-duration", parseByDuration))
	fs.Func("shift-by", "move each committed offset by `N` (negative: back)", target.set("--shift-by", parseShift))
	dryRun := fs.Bool("dry-run", false, "only print the plan (the default)")
	execute := fs.Bool("execute", false, "commit the new offsets")
	asJSON := jsonFlag(fs)
	aliases(fs, "G", "group", "t", "topic")
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	switch {
	case target.err != nil:
		return usageError(io, cmd, "%v", target.err)
	case *group == "" || strings.TrimSpace(*group) == "":
		return usageError(io, cmd, "which group? pass -G GROUP")
	case len(topics) == 0 && !*all:
		return usageError(io, cmd, "which partitions? pass -t TOPIC[:PARTITIONS] or --all-topics")
	case len(topics) > 0 && *all:
		return usageError(io, cmd, "-t and --all-topics do not go together: name topics, or take all")
	case target.name == "":
		return usageError(io, cmd, "where to? pass one of --to-earliest, --to-latest, --to-offset N, --to-datetime T, --by-duration D, --shift-by N")
	case *dryRun && *execute:
		return usageError(io, cmd, "--dry-run and --execute do not go together")
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		scope := admin.ResetScope{Topics: topics, AllTopics: *all}
		plan, err := a.ResetOffsetsPlan(ctx, *group, scope, target.target)
		if err != nil {
			return err
		}
		if len(plan) == 0 {
			return fmt.Errorf("group %q has no committed offsets, so --all-topics covers nothing; name the topics with -t", *group)
		}
		// Refuse before printing a plan that could not be applied, as
		// kafka-consumer-groups.sh does, dry run or not.
		if err := groupInactive(ctx, a, *group); err != nil {
			return err
		}
		if *execute {
			offsets := make(map[keel.TopicPartition]int64, len(plan))
			for _, c := range plan {
				offsets[keel.TopicPartition{Topic: c.Topic, Partition: c.Partition}] = c.New
			}
			if err := a.AlterGroupOffsets(ctx, *group, offsets); err != nil {
				return err
			}
		}
		if *asJSON {
			return printJSON(io, resetJSON(*group, target.name, *execute, plan))
		}
		printPlan(io, plan)
		if *execute {
			fmt.Fprintf(io.out, "\ncommitted: group %s now starts at the NEW offsets above (%s)\n", *group, target.target)
		} else {
			fmt.Fprintf(io.out, "\ndry run: nothing was changed; add --execute to commit these offsets\n")
		}
		return nil
	})
}

// groupInactive fails while group has members; a group that does not
// exist yet is inactive.
func groupInactive(ctx context.Context, a *admin.Admin, group string) error {
	ds, err := a.DescribeGroups(ctx, group)
	if errors.Is(err, admin.ErrGroupNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, d := range ds {
		if len(d.Members) > 0 {
			return fmt.Errorf("group %q is %s with %d active member(s): offsets can only be reset while the group is inactive\n  stop its consumers (see them with 'keel groups describe -G %s'), then run this again", group, d.State, len(d.Members), group)
		}
	}
	return nil
}

// targetFlags holds the one --to-*/--by-*/--shift-by given.
type targetFlags struct {
	name   string
	target admin.OffsetTarget
	err    error
}

func (t *targetFlags) set(name string, parse func(string) (admin.OffsetTarget, error)) func(string) error {
	return func(v string) error {
		if t.name != "" && t.err == nil {
			t.err = fmt.Errorf("%s and %s: give one target", t.name, name)
			return nil
		}
		target, err := parse(v)
		if err != nil {
			return err
		}
		t.name, t.target = name, target
		return nil
	}
}

func parseToOffset(s string) (admin.OffsetTarget, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return admin.OffsetTarget{}, errors.New("is not an offset: use a number 0 or more")
	}
	return admin.ToOffset(n), nil
}

func parseShift(s string) (admin.OffsetTarget, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return admin.OffsetTarget{}, errors.New("is not a number of offsets: use e.g. -100 or 50")
	}
	return admin.ShiftBy(n), nil
}

// datetimeLayouts are the forms --to-datetime takes: RFC 3339, and the
// form kafka-consumer-groups.sh documents (YYYY-MM-DDTHH:mm:SS.sss, local
// time unless a zone follows).
var datetimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05.000", "2006-01-02T15:04:05", "2006-01-02T15:04", time.DateOnly}

func parseDatetime(s string) (admin.OffsetTarget, error) {
	for _, l := range datetimeLayouts {
		if t, err := time.ParseInLocation(l, s, time.Local); err == nil {
			return admin.ToTime(t), nil
		}
	}
	return admin.OffsetTarget{}, errors.New("is not a date and time: use 2024-05-01T10:00:00Z, 2024-05-01T10:00:00.000 (local time) or 2024-05-01")
}

var isoDuration = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

func parseByDuration(s string) (admin.OffsetTarget, error) {
	d, err := parseDuration(s)
	if err != nil {
		return admin.OffsetTarget{}, err
	}
	return admin.ToTime(time.Now().Add(-d)), nil
}

// parseDuration reads a Go duration (90m, 2h) or an ISO 8601 one (PT1H30M,
// P1DT2H, as kafka-consumer-groups.sh takes).
func parseDuration(s string) (time.Duration, error) {
	bad := errors.New("is not a duration: use 90m, 2h or ISO 8601 such as PT1H30M or P1DT2H")
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return 0, errors.New("must be positive")
		}
		return d, nil
	}
	m := isoDuration.FindStringSubmatch(strings.ToUpper(s))
	if m == nil || s == "P" || strings.HasSuffix(strings.ToUpper(s), "T") {
		return 0, bad
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
		if m[i+1] != "" {
			n, _ := strconv.ParseInt(m[i+1], 10, 64)
			d += time.Duration(n) * unit
		}
	}
	if m[4] != "" {
		sec, _ := strconv.ParseFloat(m[4], 64)
		d += time.Duration(sec * float64(time.Second))
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	return d, nil
}

func printPlan(io stdio, plan []admin.OffsetChange) {
	t := newTextTable("TOPIC", "PARTITION", "CURRENT", "NEW", "CHANGE", "LOG").alignRight(1, 2, 3, 4)
	for _, c := range plan {
		change := "-"
		if c.Current >= 0 {
			change = fmt.Sprintf("%+d", c.New-c.Current)
		}
		t.add(c.Topic, c.Partition, orDash(c.Current), c.New, change, fmt.Sprintf("%d..%d", c.Start, c.End))
	}
	t.print(io.out)
}

type offsetChangeJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Current   *int64 `json:"current"` // null: no committed offset
	New       int64  `json:"new"`
	Start     int64  `json:"start_offset"`
	End       int64  `json:"end_offset"`
}

type resetResultJSON struct {
	Group    string             `json:"group"`
	Target   string             `json:"target"`
	Executed bool               `json:"executed"`
	Plan     []offsetChangeJSON `json:"plan"`
}

func resetJSON(group, target string, executed bool, plan []admin.OffsetChange) resetResultJSON {
	out := resetResultJSON{Group: group, Target: target, Executed: executed, Plan: []offsetChangeJSON{}}
	for _, c := range plan {
		j := offsetChangeJSON{Topic: c.Topic, Partition: c.Partition, New: c.New, Start: c.Start, End: c.End}
		if c.Current >= 0 {
			j.Current = &c.Current
		}
		out.Plan = append(out.Plan, j)
	}
	return out
}

const groupsDeleteOffsetsUsage = `Usage: keel groups delete-offsets -G GROUP -t TOPIC[:PARTITIONS] [flags]

Deletes a group's committed offsets on a topic (or on some of its
partitions), as kafka-consumer-groups.sh --delete-offsets does: the next
member starts those partitions by its reset policy. The broker refuses
while a member of the group is subscribed to the topic.

Examples:
  keel groups delete-offsets -G billing -t old-orders
  keel groups delete-offsets --group billing --topic orders:4,5
`

func runGroupsDeleteOffsets(ctx context.Context, args []string, io stdio) int {
	const cmd = "groups delete-offsets"
	fs := newFlagSet(cmd, groupsDeleteOffsetsUsage, io)
	f := addAdminFlags(fs, io)
	group := fs.String("G", "", "consumer `group` (required)")
	topics := topicPartsFlag{}
	fs.Var(topics, "t", "`topic`, optionally with partitions: orders or orders:0,1")
	aliases(fs, "G", "group", "t", "topic")
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	switch {
	case strings.TrimSpace(*group) == "":
		return usageError(io, cmd, "which group? pass -G GROUP")
	case len(topics) != 1:
		return usageError(io, cmd, "name one topic with -t TOPIC[:PARTITIONS]")
	}
	var topic string
	var parts []int32
	for t, p := range topics {
		topic, parts = t, p
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		if err := a.DeleteGroupOffsets(ctx, *group, topic, parts...); err != nil {
			return err
		}
		which := "every partition"
		if len(parts) > 0 {
			ps := slices.Clone(parts)
			slices.Sort(ps)
			strs := make([]string, len(ps))
			for i, p := range ps {
				strs[i] = strconv.Itoa(int(p))
			}
			which = "partitions " + strings.Join(strs, ",")
		}
		fmt.Fprintf(io.out, "deleted the committed offsets of group %s on topic %s (%s)\n", *group, topic, which)
		return nil
	})
}
