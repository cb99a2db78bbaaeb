package main

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

const topicsDescribeUsage = `Usage: keel topics describe -t NAME [--json] [flags]

Shows a topic's id, the configs set on the topic itself (the others are
broker defaults), and per partition: leader, leader epoch, replicas,
in-sync replicas, start and end offsets (the records it holds are
START to END-1) and the leader replica's size on disk.

Examples:
  keel topics describe -t orders
  keel topics describe --topic orders --json | jq '.partitions[].end_offset'
`

// topicJSON is keel topics describe --json.
type topicJSON struct {
	Name       string          `json:"name"`
	ID         string          `json:"id,omitempty"`
	Internal   bool            `json:"internal"`
	Configs    []configJSON    `json:"configs"`
	Partitions []partitionJSON `json:"partitions"`
}

type partitionJSON struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	StartOffset int64   `json:"start_offset"`
	EndOffset   int64   `json:"end_offset"`
	SizeBytes   int64   `json:"size_bytes"` // -1 when the brokers did not say
}

type configJSON struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	Source    string `json:"source,omitempty"`
	Default   bool   `json:"default"`
	Sensitive bool   `json:"sensitive"`
	ReadOnly  bool   `json:"read_only"`
}

func configsJSON(cs []admin.ConfigEntry, onlySet bool) []configJSON {
	out := []configJSON{}
	for _, c := range cs {
		if onlySet && c.Default {
			continue
		}
		v := c.Value
		if c.Sensitive {
			v = ""
		}
		out = append(out, configJSON{Name: c.Name, Value: v, Source: c.Source, Default: c.Default, Sensitive: c.Sensitive, ReadOnly: c.ReadOnly})
	}
	return out
}

func runTopicsDescribe(ctx context.Context, args []string, io stdio) int {
	const cmd = "topics describe"
	fs := newFlagSet(cmd, topicsDescribeUsage, io)
	f := addAdminFlags(fs, io)
	topic := fs.String("t", "", "topic `name` (required)")
	asJSON := jsonFlag(fs)
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
		descs, err := a.DescribeTopics(ctx, *topic)
		if err != nil {
			return err
		}
		starts, err := a.StartOffsets(ctx, *topic)
		if err != nil {
			return err
		}
		ends, err := a.EndOffsets(ctx, *topic)
		if err != nil {
			return err
		}
		// Sizes need DescribeLogDirs, which needs DESCRIBE on the
		// cluster: without it the rest is still worth showing.
		logs, logErr := a.LogDirs(ctx, *topic)
		for _, d := range descs {
			t := topicJSON{Name: d.Name, Internal: d.Internal, Configs: configsJSON(d.Configs, true)}
			if d.ID != ([16]byte{}) {
				// Kafka prints topic ids in URL-safe base64, as here.
				t.ID = base64.RawURLEncoding.EncodeToString(d.ID[:])
			}
			for _, p := range d.Partitions {
				tp := keel.TopicPartition{Topic: d.Name, Partition: p.Partition}
				t.Partitions = append(t.Partitions, partitionJSON{
					Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
					Replicas: nonNil(p.Replicas), ISR: nonNil(p.ISR),
					StartOffset: starts[tp], EndOffset: ends[tp], SizeBytes: leaderSize(logs[tp], p.Leader),
				})
			}
			if *asJSON {
				if err := printJSON(io, t); err != nil {
					return err
				}
				continue
			}
			printTopic(io, t)
		}
		if logErr != nil {
			fmt.Fprintf(io.err, "keel %s: sizes on disk unknown: %v\n", cmd, logErr)
		}
		return nil
	})
}

// leaderSize is the size of the leader's replica (replicas of one
// partition may differ while a follower catches up); -1 when unknown.
func leaderSize(logs []admin.ReplicaLog, leader int32) int64 {
	size := int64(-1)
	for _, l := range logs {
		if l.Broker == leader {
			return l.Size
		}
		size = max(size, l.Size)
	}
	return size
}

func nonNil(ids []int32) []int32 {
	if ids == nil {
		return []int32{}
	}
	return ids
}

func printTopic(io stdio, d topicJSON) {
	out := io.out
	fmt.Fprintf(out, "Topic:       %s\n", d.Name)
	if d.ID != "" {
		fmt.Fprintf(out, "ID:          %s\n", d.ID)
	}
	fmt.Fprintf(out, "Partitions:  %d\n", len(d.Partitions))
	if d.Internal {
		fmt.Fprintln(out, "Internal:    yes")
	}
	if len(d.Configs) == 0 {
		fmt.Fprintln(out, "Configs:     none set on the topic (broker defaults apply)")
	} else {
		fmt.Fprintln(out, "Configs:")
		for _, c := range d.Configs {
			v := c.Value
			if c.Sensitive {
				v = "(sensitive)"
			}
			fmt.Fprintf(out, "  %s=%s\n", c.Name, v)
		}
	}
	fmt.Fprintln(out)
	t := newTextTable("PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "START", "END", "SIZE").alignRight(0, 1, 2, 5, 6, 7)
	for _, p := range d.Partitions {
		size := "-"
		if p.SizeBytes >= 0 {
			size = humanBytes(p.SizeBytes)
		}
		t.add(p.Partition, orDash(int64(p.Leader)), orDash(int64(p.LeaderEpoch)), joinIDs(p.Replicas), joinIDs(p.ISR), p.StartOffset, p.EndOffset, size)
	}
	t.print(out)
}

// humanBytes prints n as 512B, 1.5KiB, 3.2MiB... (no space: one table cell)
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
