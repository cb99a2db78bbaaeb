package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

const recordsUsage = `Usage: keel records delete -t TOPIC [-p PARTITION ...] --before OFFSET [flags]

Deletes the records of a partition before an offset, as
kafka-delete-records.sh does: the partition's log start offset moves up to
OFFSET and consumers can no longer read below it. This cannot be undone.
--before end deletes everything the partition holds now. Without -p it
applies to every partition of the topic.

Examples:
  keel records delete -t orders -p 0 --before 100
  keel records delete --topic orders --partition 2 --partition 3 --before end
`

func init() {
	register(command{name: "records", subs: []string{"delete"}, order: 45, summary: "delete the records of a partition before an offset", run: runRecords})
}

func runRecords(ctx context.Context, args []string, io stdio) int {
	return runSubcommand(ctx, "records", recordsUsage, map[string]func(context.Context, []string, stdio) int{
		"delete": runRecordsDelete,
	}, args, io)
}

// int32sFlag collects a repeatable number flag (-p 0 -p 3, or -p 0,3).
type int32sFlag []int32

func (p *int32sFlag) String() string { return "" }

func (p *int32sFlag) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(part), 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("%q: use a partition number, 0 or more", s)
		}
		*p = append(*p, int32(n))
	}
	return nil
}

func runRecordsDelete(ctx context.Context, args []string, io stdio) int {
	const cmd = "records delete"
	fs := newFlagSet(cmd, recordsUsage, io)
	f := addAdminFlags(fs, io)
	topic := fs.String("t", "", "topic `name` (required)")
	var parts int32sFlag
	fs.Var(&parts, "p", "`partition` (repeatable; default: every partition)")
	before := fs.String("before", "", "delete the records before this `offset`, or end for all (required)")
	asJSON := jsonFlag(fs)
	aliases(fs, "t", "topic", "p", "partition", "before", "offset")
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	switch {
	case *topic == "":
		return usageError(io, cmd, "which topic? pass -t NAME")
	case *before == "":
		return usageError(io, cmd, "up to where? pass --before OFFSET (or --before end)")
	}
	if code, bad := badTopicNames(io, cmd, *topic); bad {
		return code
	}
	offset := admin.DeleteAllRecords
	if *before != "end" {
		n, err := strconv.ParseInt(*before, 10, 64)
		if err != nil || n < 0 {
			return usageError(io, cmd, "--before %s: use an offset, 0 or more, or end", *before)
		}
		offset = n
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		if len(parts) == 0 {
			descs, err := a.DescribeTopics(ctx, *topic)
			if err != nil {
				return err
			}
			for _, d := range descs {
				for _, p := range d.Partitions {
					parts = append(parts, p.Partition)
				}
			}
		}
		want := make(map[keel.TopicPartition]int64, len(parts))
		for _, p := range parts {
			want[keel.TopicPartition{Topic: *topic, Partition: p}] = offset
		}
		low, err := a.DeleteRecords(ctx, want)
		if *asJSON && err == nil {
			type lowJSON struct {
				Partition   int32 `json:"partition"`
				StartOffset int64 `json:"start_offset"`
			}
			out := []lowJSON{}
			for _, p := range sortedInt32s(parts) {
				out = append(out, lowJSON{p, low[keel.TopicPartition{Topic: *topic, Partition: p}]})
			}
			return printJSON(io, out)
		}
		for _, p := range sortedInt32s(parts) {
			if lw, ok := low[keel.TopicPartition{Topic: *topic, Partition: p}]; ok {
				fmt.Fprintf(io.out, "%s[%d]: records before %d deleted; it now starts at offset %d\n", *topic, p, lw, lw)
			}
		}
		return err
	})
}

// sortedInt32s returns ps sorted, without repeats.
func sortedInt32s(ps []int32) []int32 {
	out := slices.Clone(ps)
	slices.Sort(out)
	return slices.Compact(out)
}
