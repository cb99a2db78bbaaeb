// Command bench runs keel, franz-go, sarama, kafka-go and confluent-kafka-go
// through the same workloads against a kfake broker and reports them side
// by side (issue 6).
//
//	go run ./bench -quick -json      # a smoke run: small counts, one run, JSON lines
//	go run ./bench -runs 3           # the full run: writes docs/BENCHMARKS.md and docs/bench-*.png
//
// Every measurement runs one client alone in a child process (this same
// binary, re-executed), against a broker in another child process started
// for that measurement only; see docs/BENCHMARKS.md for what is measured
// and how.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		role       = flag.String("role", "harness", "internal: harness, broker or client")
		specJSON   = flag.String("spec", "", "internal (client role): the measurement, as JSON")
		topic      = flag.String("topic", "", "internal (broker role): the topic to create")
		partitions = flag.Int("partitions", 0, "internal (broker role): its partition count")
		brokers    = flag.Int("brokers", 1, "internal (broker role): how many brokers")
		blackhole  = flag.Bool("blackhole", false, "internal (broker role): accept produce requests without storing records")

		quick      = flag.Bool("quick", false, "small record counts and one run, to check that everything works (about 2 minutes)")
		jsonOut    = flag.Bool("json", false, "print one JSON object per measurement on stdout (progress goes to stderr)")
		runs       = flag.Int("runs", 3, "runs in full mode, alternating the client order; the report shows medians")
		clientList = flag.String("clients", strings.Join(clientOrder, ","), "clients to run, comma-separated")
		wlList     = flag.String("workloads", workloadNames(), "workloads to run, comma-separated")
		doc        = flag.String("doc", "docs/BENCHMARKS.md", "full mode: the report to update (its cross-client section), relative to the repository root; empty: none")
		profDir    = flag.String("cpuprofile", "", "write a CPU profile of each measured window of the -profile clients into this directory")
		profile    = flag.String("profile", "keel", "clients to profile with -cpuprofile, comma-separated")
		scale      = flag.Float64("scale", 1, "multiply every record count (e.g. 0.2 for a shorter full run)")
		timeout    = flag.Duration("timeout", 0, "time limit per measurement (default 45s with -quick, 5m otherwise)")
		keelRep    = flag.String("keel-reports", "callback", "how keel takes delivery reports: callback (ProduceFunc, like franz-go's promise) or channel (Produce with a channel)")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench [-quick] [-json] [-runs N] [-clients a,b] [-workloads x,y]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	switch *role {
	case "broker":
		if err := runBroker(*topic, *brokers, *partitions, *blackhole); err != nil {
			fmt.Fprintln(os.Stderr, "bench broker:", err)
			return 1
		}
		return 0
	case "client":
		var s spec
		if err := json.Unmarshal([]byte(*specJSON), &s); err != nil {
			fmt.Fprintln(os.Stderr, "bench client: bad -spec:", err)
			return 2
		}
		r, err := runClient(ctx, s)
		if err != nil {
			r.Failed = err.Error()
		}
		json.NewEncoder(os.Stdout).Encode(r)
		return 0
	case "harness":
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown -role %q\n", *role)
		return 2
	}

	h, err := newHarness(harnessConfig{
		quick: *quick, json: *jsonOut, runs: *runs, clients: *clientList, workloads: *wlList,
		profDir: *profDir, profile: *profile, scale: *scale, timeout: *timeout, keelReports: *keelRep,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	started := time.Now()
	results, err := h.runAll(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "bench: done in %v\n", time.Since(started).Round(time.Second))
	if !*jsonOut {
		printTable(os.Stdout, medians(results))
	}
	if !*quick && *doc != "" {
		if err := writeReport(h, results, *doc, time.Since(started), os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench: writing the report:", err)
			return 1
		}
	}
	return 0
}

func workloadNames() string {
	var names []string
	for _, w := range workloads {
		names = append(names, w.Name)
	}
	return strings.Join(names, ",")
}

// flagSet says whether the flag was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
