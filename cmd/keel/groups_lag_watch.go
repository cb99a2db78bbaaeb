package main

import (
	"context"
	"fmt"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// printLag prints groups lag's table and total.
func printLag(io stdio, group string, rows []admin.PartitionLag) {
	printLagRates(io, group, rows, nil)
}

// printLagRates prints the table; with rates (--watch) a RATE column
// of committed offsets per second per partition ("-" before the second
// refresh).
func printLagRates(io stdio, group string, rows []admin.PartitionLag, rates map[keel.TopicPartition]float64) {
	if len(rows) == 0 {
		fmt.Fprintf(io.out, "group %s has no committed offsets and no assigned partitions\n", group)
		return
	}
	cols := []string{"TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"}
	if rates != nil {
		cols = []string{"TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "RATE/S", "MEMBER"}
	}
	t := newTextTable(cols...).alignRight(1, 2, 3, 4)
	if rates != nil {
		t = t.alignRight(5)
	}
	var total int64
	unknown, noCommit := 0, 0
	for _, r := range rows {
		lag := orDash(r.Lag)
		if r.Lag >= 0 {
			total += r.Lag
		} else {
			unknown++
		}
		if r.NoCommit && r.Lag >= 0 {
			lag += "*" // the whole backlog: no commit to count from
			noCommit++
		}
		if rates == nil {
			t.add(r.Topic, r.Partition, orDash(r.Committed), orDash(r.End), lag, orText(r.MemberID))
			continue
		}
		rate := "-"
		if v, ok := rates[keel.TopicPartition{Topic: r.Topic, Partition: r.Partition}]; ok {
			rate = fmt.Sprintf("%.1f", v)
		}
		t.add(r.Topic, r.Partition, orDash(r.Committed), orDash(r.End), lag, rate, orText(r.MemberID))
	}
	t.print(io.out)
	fmt.Fprintf(io.out, "\nTOTAL LAG: %d", total)
	if unknown > 0 {
		fmt.Fprintf(io.out, " (not counting %d partitions of deleted topics)", unknown)
	}
	fmt.Fprintln(io.out)
	if noCommit > 0 {
		fmt.Fprintf(io.out, "* no committed offset: the lag is the partition's whole backlog (end - log start)\n")
	}
}

// watchLag refreshes the lag table every interval until ctx ends (Ctrl-C),
// which is a clean end. Each refresh starts with a header line naming the
// time, so a log of the output reads as a series. A failed refresh is
// shown and retried at the next tick rather than ending the watch: a
// coordinator moving should not stop an operator's screen.
func watchLag(ctx context.Context, io stdio, a *admin.Admin, group string, interval time.Duration) error {
	prev := map[keel.TopicPartition]int64{}
	var prevAt time.Time
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 1; ; n++ {
		rows, err := a.Lag(ctx, group)
		now := time.Now()
		if ctx.Err() != nil {
			return nil
		}
		fmt.Fprintf(io.out, "--- group %s at %s (refresh %d, every %v; Ctrl-C to stop)\n", group, now.UTC().Format("15:04:05"), n, interval)
		if err != nil {
			fmt.Fprintf(io.out, "lag not read: %v\n", err)
		} else {
			rates := map[keel.TopicPartition]float64{}
			cur := map[keel.TopicPartition]int64{}
			for _, r := range rows {
				tp := keel.TopicPartition{Topic: r.Topic, Partition: r.Partition}
				if r.Committed < 0 {
					continue
				}
				cur[tp] = r.Committed
				if p, ok := prev[tp]; ok && !prevAt.IsZero() {
					rates[tp] = float64(max(r.Committed-p, 0)) / now.Sub(prevAt).Seconds()
				}
			}
			printLagRates(io, group, rows, rates)
			prev, prevAt = cur, now
		}
		fmt.Fprintln(io.out)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
