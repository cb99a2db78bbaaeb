package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keel-go/keel/keeltest"
)

const perfUsage = `
Usage: keel perf produce|consume [flags]

Measures what keel does against a cluster, like kafka-producer-perf-test and
kafka-consumer-perf-test:

  keel perf produce   produce records at a set rate (or as fast as possible)
                      and report throughput and latency from Produce to the
                      delivery report: a live line on stderr while it runs,
                      then a summary with a latency histogram
  keel perf consume   read a topic from the beginning and report throughput
                      and the time to the first record

Both take --embedded to run against an in-process 3-broker cluster, so they
work with nothing else running. Run 'keel perf produce -h' for the flags.

Examples:
  keel perf produce --embedded --records 100000
  keel perf produce -t bench --records 1000000 --record-size 512 -z lz4
  keel perf produce -t bench --duration 30s --rate 20000 --acks 1 --json
  keel perf consume -t bench --records 1000000
  keel perf consume -t bench -G perf-readers --duration 10s --json
`

func init() {
	register(command{name: "perf", subs: []string{"produce", "consume"}, order: 60, summary: "measure produce or consume throughput and latency (like kafka-*-perf-test)", run: runPerf})
}

func runPerf(ctx context.Context, args []string, io stdio) int {
	if len(args) == 0 {
		fmt.Fprint(io.err, strings.TrimLeft(perfUsage, "\n"))
		return exitUsage
	}
	switch args[0] {
	case "produce":
		return runPerfProduce(ctx, args[1:], io)
	case "consume":
		return runPerfConsume(ctx, args[1:], io)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(io.err, strings.TrimLeft(perfUsage, "\n"))
		return exitOK
	}
	return usageError(io, "perf", "unknown mode %q: use 'keel perf produce' or 'keel perf consume'", args[0])
}

// perfFlags are the flags produce and consume share.
type perfFlags struct {
	brokers    *string
	topic      *string
	records    *int64
	duration   *time.Duration
	jsonOut    *bool
	progress   *bool
	embedded   *bool
	partitions *int
	recordSize *int
	metrics    *string
}

func addPerfFlags(fs *flag.FlagSet, io stdio) *perfFlags {
	defer aliases(fs, "t", "topic") // after the flags below exist
	return &perfFlags{
		brokers:    brokerFlag(fs, io),
		topic:      fs.String("t", "", "topic (required)"),
		records:    fs.Int64("records", 0, "stop after this many records"),
		duration:   fs.Duration("duration", 0, "stop after this long (e.g. 30s); with --records, whichever comes first"),
		jsonOut:    fs.Bool("json", false, "print one JSON object with the results on stdout instead of the text summary"),
		progress:   fs.Bool("progress", false, "draw the live progress line on stderr even when it is not a terminal"),
		embedded:   fs.Bool("embedded", false, "start an in-process 3-broker cluster with the topic and use it instead of -b"),
		partitions: fs.Int("partitions", 6, "partitions of the topic created by --embedded"),
		recordSize: fs.Int("record-size", 100, "bytes of each record's value"),
		metrics:    metricsFlag(fs),
	}
}

// check validates the shared flags; it returns a usage problem or "".
func (f *perfFlags) check() string {
	switch {
	case *f.topic == "":
		return "no topic: pass -t TOPIC"
	case *f.records < 0:
		return fmt.Sprintf("--records %d is negative", *f.records)
	case *f.duration < 0:
		return fmt.Sprintf("--duration %v is negative", *f.duration)
	case *f.records == 0 && *f.duration == 0:
		return "say how much: --records N or --duration D"
	case *f.recordSize < 0:
		return fmt.Sprintf("--record-size %d is negative", *f.recordSize)
	case *f.embedded && (*f.partitions < 1 || *f.partitions > 10000):
		return fmt.Sprintf("--partitions %d: use 1 to 10000", *f.partitions)
	}
	return ""
}

// showProgress says whether to draw the live line: when stderr is a
// terminal (unless the output is JSON), or when --progress forces it.
func (f *perfFlags) showProgress(io stdio) bool {
	return *f.progress || io.errIsTerminal && !*f.jsonOut
}

// perfStartEmbedded starts the in-process cluster for --embedded with the
// topic created; the caller closes it.
func perfStartEmbedded(f *perfFlags, io stdio) (*keeltest.Cluster, error) {
	cluster, err := keeltest.Start(keeltest.Brokers(3), keeltest.Topic(*f.topic, int32(*f.partitions)))
	if err != nil {
		return nil, fmt.Errorf("starting the embedded cluster: %w", err)
	}
	fmt.Fprintf(io.err, "embedded cluster on %s, topic %q with %d partitions\n", strings.Join(cluster.Addrs(), ","), *f.topic, *f.partitions)
	return cluster, nil
}

// perfBrokers is where to connect: the embedded cluster or -b.
func perfBrokers(f *perfFlags, cluster *keeltest.Cluster) string {
	if cluster != nil {
		return strings.Join(cluster.Addrs(), ",")
	}
	return *f.brokers
}

// stopAt returns ctx bounded by --duration (if set) counted from now.
func (f *perfFlags) stopAt(ctx context.Context) (context.Context, context.CancelFunc) {
	if *f.duration > 0 {
		return context.WithTimeout(ctx, *f.duration)
	}
	return context.WithCancel(ctx)
}

// perfWriteJSON prints v as one indented JSON object.
func perfWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// perfMBps is bytes per second in MB/s (10^6 bytes, as network rates are).
func perfMBps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

func perfRate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// perfMillis is d in milliseconds, rounded to the microsecond, for JSON.
func perfMillis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// perfCount prints n with thousands separators: 1234567 → 1,234,567.
func perfCount(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
