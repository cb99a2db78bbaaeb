package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

const groupsUsage = `Usage: keel groups <list|describe|lag|delete|reset-offsets|delete-offsets> [flags]

Looks at consumer groups: which exist, who is in them, and how far behind
they are; moves or deletes their committed offsets.

Subcommands:
  list       list the groups of every broker, with state and protocol type
  describe   a group's state, assignor and members with their partitions
  lag        per partition: committed offset, end offset, lag and member;
             the total lag at the bottom
  delete     delete a group and its committed offsets (only when it has no
             members)
  reset-offsets   move a group's committed offsets (--to-earliest, --to-latest,
             --to-offset, --to-datetime, --by-duration, --shift-by); prints the
             plan, applies it with --execute; only while the group is inactive
  delete-offsets  delete a group's committed offsets on a topic

List, describe and lag take --json; -G is also --group.

Run 'keel groups <subcommand> -h' for its flags.

Examples:
  keel groups list
  keel groups describe -G billing
  keel groups lag -G billing
  keel groups delete -G billing
  keel groups reset-offsets -G billing -t orders --to-earliest --execute
`

func init() {
	register(command{name: "groups", subs: []string{"list", "describe", "lag", "delete", "reset-offsets", "delete-offsets"}, order: 50, summary: "list, describe and delete consumer groups; their lag; reset offsets", run: runGroups})
}

func runGroups(ctx context.Context, args []string, io stdio) int {
	return runSubcommand(ctx, "groups", groupsUsage, map[string]func(context.Context, []string, stdio) int{
		"list":           runGroupsList,
		"describe":       runGroupsDescribe,
		"lag":            runGroupsLag,
		"delete":         runGroupsDelete,
		"reset-offsets":  runGroupsReset,
		"delete-offsets": runGroupsDeleteOffsets,
	}, args, io)
}

const groupsListUsage = `Usage: keel groups list [flags]

Lists the consumer groups of every broker, sorted by name. If a broker
cannot be asked the command fails naming it, rather than print a list
missing that broker's groups.

Examples:
  keel groups list
`

func runGroupsList(ctx context.Context, args []string, io stdio) int {
	const cmd = "groups list"
	fs := newFlagSet(cmd, groupsListUsage, io)
	f := addAdminFlags(fs, io)
	asJSON := jsonFlag(fs)
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		list, err := a.ListGroups(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			type groupListJSON struct {
				Group        string `json:"group"`
				State        string `json:"state"`
				ProtocolType string `json:"protocol_type"`
			}
			out := []groupListJSON{}
			for _, g := range list {
				out = append(out, groupListJSON{g.Group, g.State, g.ProtocolType})
			}
			return printJSON(io, out)
		}
		t := newTextTable("GROUP", "STATE", "PROTOCOL-TYPE")
		for _, g := range list {
			t.add(g.Group, orText(g.State), orText(g.ProtocolType))
		}
		t.print(io.out)
		return nil
	})
}

const groupsDescribeUsage = `Usage: keel groups describe -G GROUP [flags]

Shows a group's state, protocol and coordinator, and each member with its
client id, host and assigned partitions. A group on the consumer protocol
(KIP-848) also shows the group and assignment epochs, the assignor, and
each member's epoch and target assignment (TARGET "same": reconciled).

Examples:
  keel groups describe -G billing
`

func runGroupsDescribe(ctx context.Context, args []string, io stdio) int {
	const cmd = "groups describe"
	fs := newFlagSet(cmd, groupsDescribeUsage, io)
	f := addAdminFlags(fs, io)
	asJSON := jsonFlag(fs)
	group := fs.String("G", "", "consumer `group` (required)")
	aliases(fs, "G", "group")
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	if *group == "" {
		return usageError(io, cmd, "which group? pass -G GROUP")
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		if handled, err := describeConsumerGroup(ctx, io, a, *group, *asJSON); handled {
			return err // a consumer-protocol group (groups_consumer.go)
		}
		ds, err := a.DescribeGroups(ctx, *group)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(io, groupsJSON(ds))
		}
		for _, d := range ds {
			printGroup(io, d)
		}
		return nil
	})
}

func printGroup(io stdio, d admin.GroupDescription) {
	out := io.out
	fmt.Fprintf(out, "Group:        %s\n", d.Group)
	fmt.Fprintf(out, "State:        %s\n", d.State)
	proto := orText(d.ProtocolType)
	if d.Protocol != "" {
		proto += " (" + d.Protocol + ")"
	}
	fmt.Fprintf(out, "Protocol:     %s\n", proto)
	fmt.Fprintf(out, "Coordinator:  broker %d\n", d.Coordinator)
	if len(d.Members) == 0 {
		fmt.Fprintln(out, "Members:      none")
		return
	}
	fmt.Fprintf(out, "Members:      %d\n\n", len(d.Members))
	t := newTextTable("MEMBER", "CLIENT-ID", "HOST", "PARTITIONS")
	for _, m := range d.Members {
		t.add(m.MemberID, orText(m.ClientID), orText(m.Host), formatAssigned(m.Assigned))
	}
	t.print(out)
}

// formatAssigned writes partitions as "orders[0-2,5] payments[1]".
func formatAssigned(tps []keel.TopicPartition) string {
	if len(tps) == 0 {
		return "-"
	}
	var b strings.Builder
	for i := 0; i < len(tps); {
		j := i
		for j < len(tps) && tps[j].Topic == tps[i].Topic {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(tps[i].Topic + "[")
		for k := i; k < j; {
			end := k
			for end+1 < j && tps[end+1].Partition == tps[end].Partition+1 {
				end++
			}
			if k > i {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(tps[k].Partition)))
			if end > k {
				b.WriteString("-" + strconv.Itoa(int(tps[end].Partition)))
			}
			k = end + 1
		}
		b.WriteByte(']')
		i = j
	}
	return b.String()
}

const groupsLagUsage = `Usage: keel groups lag -G GROUP [flags]

For every partition the group consumes or has committed offsets on: the
committed offset, the end offset (high watermark), the lag between them and
the member consuming it now; the total lag at the bottom. A partition
without a committed offset shows "-" as committed and its whole backlog
(end - log start) as lag, marked "*". "-" as member means no member has
it now.

With --watch the table is printed again every --interval, with each
partition's consume rate (committed offsets per second since the last
refresh), until Ctrl-C.

Examples:
  keel groups lag -G billing
  keel groups lag -G billing --watch --interval 5s
`

func runGroupsLag(ctx context.Context, args []string, io stdio) int {
	const cmd = "groups lag"
	fs := newFlagSet(cmd, groupsLagUsage, io)
	f := addAdminFlags(fs, io)
	asJSON := jsonFlag(fs)
	watch := fs.Bool("watch", false, "print the table again every --interval, with consume rates, until Ctrl-C")
	interval := fs.Duration("interval", 2*time.Second, "with --watch: how often to refresh")
	group := fs.String("G", "", "consumer `group` (required)")
	aliases(fs, "G", "group")
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	if *group == "" {
		return usageError(io, cmd, "which group? pass -G GROUP")
	}
	if *watch {
		if *asJSON {
			return usageError(io, cmd, "--watch draws a table; leave --json out")
		}
		if *interval <= 0 {
			return usageError(io, cmd, "--interval %v: give a positive duration such as 2s", *interval)
		}
		return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
			return watchLag(ctx, io, a, *group, *interval)
		})
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		rows, err := a.Lag(ctx, *group)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(io, lagJSON(*group, rows))
		}
		printLag(io, *group, rows)
		return nil
	})
}

const groupsDeleteUsage = `Usage: keel groups delete -G GROUP [flags]

Deletes a group and its committed offsets. The group must have no members:
stop its consumers first.

Examples:
  keel groups delete -G billing
`

func runGroupsDelete(ctx context.Context, args []string, io stdio) int {
	const cmd = "groups delete"
	fs := newFlagSet(cmd, groupsDeleteUsage, io)
	f := addAdminFlags(fs, io)
	group := fs.String("G", "", "consumer `group` (required)")
	aliases(fs, "G", "group")
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	if *group == "" {
		return usageError(io, cmd, "which group? pass -G GROUP")
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		if err := a.DeleteGroups(ctx, *group); err != nil {
			return err
		}
		fmt.Fprintf(io.out, "deleted group %s\n", *group)
		return nil
	})
}

func orText(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type memberJSON struct {
	MemberID   string         `json:"member_id"`
	InstanceID string         `json:"instance_id,omitempty"`
	ClientID   string         `json:"client_id"`
	Host       string         `json:"host"`
	Assigned   []partitionRef `json:"assigned"`
}

type partitionRef struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

type groupJSON struct {
	Group        string       `json:"group"`
	State        string       `json:"state"`
	ProtocolType string       `json:"protocol_type"`
	Protocol     string       `json:"protocol"`
	Coordinator  int32        `json:"coordinator"`
	Members      []memberJSON `json:"members"`
}

func groupsJSON(ds []admin.GroupDescription) []groupJSON {
	out := []groupJSON{}
	for _, d := range ds {
		g := groupJSON{Group: d.Group, State: d.State, ProtocolType: d.ProtocolType, Protocol: d.Protocol, Coordinator: d.Coordinator, Members: []memberJSON{}}
		for _, m := range d.Members {
			mj := memberJSON{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, Host: m.Host, Assigned: []partitionRef{}}
			for _, tp := range m.Assigned {
				mj.Assigned = append(mj.Assigned, partitionRef{tp.Topic, tp.Partition})
			}
			g.Members = append(g.Members, mj)
		}
		out = append(out, g)
	}
	return out
}

type lagRowJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed *int64 `json:"committed"` // null: no committed offset
	Start     int64  `json:"start_offset"`
	End       int64  `json:"end_offset"`
	Lag       int64  `json:"lag"` // without a commit: end - start
	NoCommit  bool   `json:"no_commit"`
	MemberID  string `json:"member_id,omitempty"`
}

type lagJSONDoc struct {
	Group    string       `json:"group"`
	TotalLag int64        `json:"total_lag"`
	Rows     []lagRowJSON `json:"partitions"`
}

func lagJSON(group string, rows []admin.PartitionLag) lagJSONDoc {
	doc := lagJSONDoc{Group: group, Rows: []lagRowJSON{}}
	for _, r := range rows {
		j := lagRowJSON{Topic: r.Topic, Partition: r.Partition, Start: r.Start, End: r.End, Lag: r.Lag, NoCommit: r.NoCommit, MemberID: r.MemberID}
		if !r.NoCommit {
			c := r.Committed
			j.Committed = &c
		}
		if r.Lag > 0 {
			doc.TotalLag += r.Lag
		}
		doc.Rows = append(doc.Rows, j)
	}
	return doc
}
