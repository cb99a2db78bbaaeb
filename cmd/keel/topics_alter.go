package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/keel-go/keel/admin"
)

const topicsAlterUsage = `Usage: keel topics alter -t NAME --partitions N [--validate-only] [flags]

Adds partitions to a topic, up to N in all (kafka-topics.sh --alter
--partitions). Kafka cannot remove partitions: N must be more than the
topic has. Records already written stay where they are; new records of a
key may go to another partition than its earlier ones, since the
partition of a key depends on the partition count.

Examples:
  keel topics alter -t orders --partitions 12
  keel topics alter --topic orders --partitions 12 --validate-only
`

func runTopicsAlter(ctx context.Context, args []string, io stdio) int {
	const cmd = "topics alter"
	fs := newFlagSet(cmd, topicsAlterUsage, io)
	f := addAdminFlags(fs, io)
	topic := fs.String("t", "", "topic `name` (required)")
	partitions := fs.Int("p", 0, "the topic's new partition `count` (required; more than it has)")
	validateOnly := fs.Bool("validate-only", false, "only check that the change could be made; change nothing")
	aliases(fs, "t", "topic", "p", "partitions")
	if code, ok := parseAdminArgs(fs, cmd, args, io); !ok {
		return code
	}
	switch {
	case *topic == "":
		return usageError(io, cmd, "which topic? pass -t NAME")
	case !flagGiven(fs, "p"):
		return usageError(io, cmd, "how many partitions? pass --partitions N (the new total)")
	}
	if code, bad := badTopicNames(io, cmd, *topic); bad {
		return code
	}
	if msg := checkPartitionCount(*partitions, false); msg != "" {
		return usageError(io, cmd, "--partitions %d: %s", *partitions, msg)
	}
	return withAdmin(ctx, io, cmd, f, func(ctx context.Context, a *admin.Admin) error {
		before, err := a.DescribeTopics(ctx, *topic)
		if err != nil {
			return err
		}
		if err := a.CreatePartitions(ctx, *topic, int32(*partitions), *validateOnly); err != nil {
			return err
		}
		had := 0
		if len(before) == 1 {
			had = len(before[0].Partitions)
		}
		if *validateOnly {
			fmt.Fprintf(io.out, "topic %s can grow from %d to %d partitions (validated only: nothing was changed)\n", *topic, had, *partitions)
			return nil
		}
		fmt.Fprintf(io.out, "topic %s now has %d partitions (was %d)\n", *topic, *partitions, had)
		return nil
	})
}

// flagGiven says whether the flag name, or its long alias (see aliases),
// was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(v *flag.Flag) {
		if v.Name == name || v.Usage == "the same as -"+name {
			given = true
		}
	})
	return given
}
