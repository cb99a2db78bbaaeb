package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

const groupsUsage = `Usage: keel groups <list|describe|lag|delete> [flags]

Looks at consumer groups: which exist, who is in them, and how far behind
they are.

Subcommands:
  list       list the groups of every broker, with state and protocol type
  describe   a group's state, assignor and members with their partitions
  lag        per partition: committed offset, end offset, lag and member;
             the total lag at the bottom
  delete     delete a group and its committed offsets (only when it has no
             members)

Run 'keel groups <subcommand> -h' for its flags.

Examples:
  keel groups list
  keel groups describe -G billing
  keel groups lag -G billing
  keel groups delete -G billing
`

func init() {
	register(command{name: "groups", order: 50, summary: "list, describe and delete consumer groups; show their lag", run: runGroups})
}

func runGroups(ctx context.Context, args []string, io stdio) int {
	return runSubcommand(ctx, "groups", groupsUsage, map[string]func(context.Context, []string, stdio) int{
		"list":     runGroupsList,
		"describe": runGroupsDescribe,
		"lag":      runGroupsLag,
		"delete":   runGroupsDelete,
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
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		list, err := a.ListGroups(ctx)
		if err != nil {
			return err
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
client id, host and assigned partitions.

Examples:
  keel groups describe -G billing
`

func runGroupsDescribe(ctx context.Context, args []string, io stdio) int {
	const cmd = "groups describe"
	fs := newFlagSet(cmd, groupsDescribeUsage, io)
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
		ds, err := a.DescribeGroups(ctx, *group)
		if err != nil {
			return err
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
the member consuming it now; the total lag at the bottom. "-" means none
(no committed offset, or no member).

Examples:
  keel groups lag -G billing
`

func runGroupsLag(ctx context.Context, args []string, io stdio) int {
	const cmd = "groups lag"
	fs := newFlagSet(cmd, groupsLagUsage, io)
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
		rows, err := a.Lag(ctx, *group)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			fmt.Fprintf(io.out, "group %s has no committed offsets and no assigned partitions\n", *group)
			return nil
		}
		t := newTextTable("TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER").alignRight(1, 2, 3, 4)
		var total int64
		unknown := 0
		for _, r := range rows {
			if r.Lag >= 0 {
				total += r.Lag
			} else {
				unknown++
			}
			t.add(r.Topic, r.Partition, orDash(r.Committed), orDash(r.End), orDash(r.Lag), orText(r.MemberID))
		}
		t.print(io.out)
		fmt.Fprintf(io.out, "\nTOTAL LAG: %d", total)
		if unknown > 0 {
			fmt.Fprintf(io.out, " (not counting %d partitions without a committed offset or end)", unknown)
		}
		fmt.Fprintln(io.out)
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
