package main

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// kind is what a workload asks of a client.
type kind string

const (
	kindProduce kind = "produce" // as many records as fast as the client takes them
	kindConsume kind = "consume" // read a prefilled topic with the client's group API
	kindLatency kind = "latency" // produce at a fixed rate, time each delivery report
)

// workload is one row group of the benchmark.
type workload struct {
	Name       string
	Kind       kind
	Records    int // full mode
	Quick      int // -quick mode
	ValueBytes int
	Codec      string // none, lz4, zstd
	Rate       int    // records per second (latency only)
	// Brokers and Partitions shape the cluster (0: one broker and
	// benchSettings.Partitions).
	Brokers    int
	Partitions int
	// Goroutines produce at once (0 or 1: one), each an equal share.
	Goroutines int
	// Keyed gives every record a 16-byte key from a set of keyCount, so
	// records spread over every partition by key hash.
	Keyed bool
	// Only, when set, lists the clients this workload runs (the others
	// are reported as skipped).
	Only []string
}

// keyCount is how many distinct keys keyed workloads cycle through.
const keyCount = 1 << 14

// brokers and partitions are the workload's cluster shape.
func (w workload) brokers() int    { return max(1, w.Brokers) }
func (w workload) partitions() int { return cmp.Or(w.Partitions, benchSettings.Partitions) }
func (w workload) goroutines() int { return max(1, w.Goroutines) }

// workloads are the workloads of issue 6, in report order.
var workloads = []workload{
	{Name: "produce-100B", Kind: kindProduce, Records: 1_000_000, Quick: 300_000, ValueBytes: 100, Codec: "none"},
	{Name: "produce-1KB-lz4", Kind: kindProduce, Records: 1_000_000, Quick: 100_000, ValueBytes: 1000, Codec: "lz4"},
	{Name: "produce-1KB-zstd", Kind: kindProduce, Records: 1_000_000, Quick: 100_000, ValueBytes: 1000, Codec: "zstd"},
	{Name: "produce-10KB", Kind: kindProduce, Records: 100_000, Quick: 20_000, ValueBytes: 10_000, Codec: "none"},
	{Name: "consume-100B", Kind: kindConsume, Records: 1_000_000, Quick: 300_000, ValueBytes: 100, Codec: "none"},
	// 20k rec/s for 15 s in full mode, 2 s in quick mode.
	{Name: "latency-20k", Kind: kindLatency, Records: 300_000, Quick: 40_000, ValueBytes: 100, Codec: "none", Rate: 20_000},
	// Issue 11: a service's shape — many goroutines producing keyed
	// records at once into a cluster of several brokers, and a group
	// consuming many partitions spread over them.
	{Name: "produce-100B-keyed-16g", Kind: kindProduce, Records: 1_000_000, Quick: 300_000, ValueBytes: 100, Codec: "none",
		Brokers: 3, Partitions: 64, Goroutines: 16, Keyed: true, Only: bigClusterClients},
	{Name: "produce-1KB-keyed-64g", Kind: kindProduce, Records: 500_000, Quick: 100_000, ValueBytes: 1000, Codec: "lz4",
		Brokers: 3, Partitions: 64, Goroutines: 64, Keyed: true, Only: bigClusterClients},
	// 5 M records, not 1 M: at 64 partitions a client's first fetch
	// round takes 1 MiB of every partition, two thirds of a 1 M topic,
	// so the window (the last four fifths) closed in tens of
	// milliseconds over records already in memory and identical runs
	// differed by 10x. With 5 M (about 8 MB per partition) the window
	// lasts seconds of steady fetching.
	{Name: "consume-100B-64p", Kind: kindConsume, Records: 5_000_000, Quick: 1_000_000, ValueBytes: 100, Codec: "none",
		Brokers: 3, Partitions: 64, Only: bigClusterClients},
}

// bigClusterClients run the multi-broker workloads of issue 11, which
// compare keel with franz-go (the other clients' rows would add a long
// time to the full run and nothing to those targets).
var bigClusterClients = []string{"keel", "franz-go"}

// runs says whether the workload runs client c.
func (w workload) runs(c string) bool { return len(w.Only) == 0 || slices.Contains(w.Only, c) }

func findWorkload(name string) (workload, bool) {
	for _, w := range workloads {
		if w.Name == name {
			return w, true
		}
	}
	return workload{}, false
}

// settings are what every client is configured with, so that they do the
// same work. They are written into the report.
type settings struct {
	Partitions    int           `json:"partitions"`
	Linger        time.Duration `json:"linger"`         // throughput workloads
	LatencyLinger time.Duration `json:"latency_linger"` // latency workload: "minimal"
	MaxBatchBytes int           `json:"max_batch_bytes"`
	Values        int           `json:"distinct_values"` // distinct payloads cycled through
}

var benchSettings = settings{
	Partitions:    6,
	Linger:        5 * time.Millisecond,
	LatencyLinger: 0,
	MaxBatchBytes: 1_000_000,
	Values:        1024,
}

// spec is what the harness hands a client child process: everything it
// needs to run one measurement.
type spec struct {
	Client     string        `json:"client"`
	Workload   string        `json:"workload"`
	Kind       kind          `json:"kind"`
	Broker     string        `json:"broker"`
	Topic      string        `json:"topic"`
	Group      string        `json:"group,omitempty"`
	Records    int           `json:"records"`
	ValueBytes int           `json:"value_bytes"`
	Partitions int           `json:"partitions"`
	Goroutines int           `json:"goroutines,omitempty"`
	Keyed      bool          `json:"keyed,omitempty"`
	Codec      string        `json:"codec"`
	Rate       int           `json:"rate,omitempty"`
	Linger     time.Duration `json:"linger"`
	Settings   settings      `json:"settings"`
	Timeout    time.Duration `json:"timeout"`
	CPUProfile string        `json:"cpu_profile,omitempty"`
	// KeelReports is how the keel adapter takes delivery reports:
	// "channel" (default) or "callback" (ProduceFunc).
	KeelReports string `json:"keel_reports,omitempty"`
}

// result is one JSON line of output: one client on one workload in one
// run. Latency fields are null where a workload does not measure them.
type result struct {
	Client       string   `json:"client"`
	Workload     string   `json:"workload"`
	Run          int      `json:"run"`
	Records      int64    `json:"records"`
	RecPerSec    float64  `json:"rec_per_sec"`
	MBPerSec     float64  `json:"mb_per_sec"`
	CPUSec       float64  `json:"cpu_sec"`
	PeakRSSBytes int64    `json:"peak_rss_bytes"`
	P50ms        *float64 `json:"p50_ms"`
	P99ms        *float64 `json:"p99_ms"`
	P999ms       *float64 `json:"p999_ms"`
	MaxMs        *float64 `json:"max_ms,omitempty"`

	WallSec      float64 `json:"wall_sec"`
	CPUUsPerRec  float64 `json:"cpu_us_per_rec"`
	CPUTotalSec  float64 `json:"cpu_total_sec,omitempty"` // the whole child process, setup and close included
	Allocs       uint64  `json:"allocs"`
	AllocsPerRec float64 `json:"allocs_per_rec"`
	AllocBytes   uint64  `json:"alloc_bytes"`
	StartupMs    float64 `json:"startup_ms,omitempty"` // consume: from creating the consumer to its first record
	// WindowRecords, when set, is how many of Records the timed window
	// covers (consume: the window opens after the first fifth).
	WindowRecords int64  `json:"window_records,omitempty"`
	TargetRate    int    `json:"target_rate,omitempty"`
	WireBytesIn   int64  `json:"wire_bytes_in,omitempty"` // bytes the broker read from clients
	Errors        int64  `json:"errors,omitempty"`
	Skipped       string `json:"skipped,omitempty"`
	Failed        string `json:"failed,omitempty"`
	Settings      string `json:"settings,omitempty"` // the client's own settings, for the report
	// BrokerCPUSec is the broker process's CPU time while the client
	// process ran (its setup and close included, so more than the
	// window's share).
	BrokerCPUSec float64 `json:"broker_cpu_sec,omitempty"`
}

// finish derives the rates from what was measured; valueBytes is the size
// of one record's value.
func (r *result) finish(valueBytes int) {
	n := r.Records
	if r.WindowRecords > 0 {
		n = r.WindowRecords
	}
	if r.WallSec > 0 {
		r.RecPerSec = float64(n) / r.WallSec
		r.MBPerSec = float64(n) * float64(valueBytes) / r.WallSec / 1e6
	}
	if n > 0 {
		r.CPUUsPerRec = r.CPUSec / float64(n) * 1e6
		r.AllocsPerRec = float64(r.Allocs) / float64(n)
	}
}

func (s spec) String() string {
	return fmt.Sprintf("%s %s (%d records)", s.Client, s.Workload, s.Records)
}
