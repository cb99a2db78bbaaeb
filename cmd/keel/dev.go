package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/keel-go/keel/keeltest"
)

const devUsage = `
Usage: keel dev [--brokers 3] [--port 9092] [--data-dir DIR] [--topic NAME:PARTITIONS ...] [--ui [--ui-addr 127.0.0.1:8080]]

Runs a local Kafka cluster (keel's in-process test broker, keeltest) on
127.0.0.1 until interrupted (Ctrl-C), printing its addresses and the
export line that points the other keel commands at it. Broker i listens on
--port + i; --port 0 picks free ports. Topics are created on first use
(10 partitions) or up front with --topic.

Everything lives in memory unless --data-dir is given: then topics,
records and committed offsets are saved there on exit and restored on the
next start (--topic is ignored when state is restored). Stop it with Ctrl-C
or SIGTERM so it can save; a kill -9 loses what was not yet written out.

--ui serves the browser console (keel ui) for the cluster beside it.

It is a development tool, not a production broker: no replication between
real machines, no security unless you add it in code.

Examples:
  keel dev                                   # 3 brokers on 127.0.0.1:9092-9094
  keel dev --brokers 1 --port 19092          # one broker on 127.0.0.1:19092
  keel dev --topic orders:6 --topic payments:3
  keel dev --data-dir ~/.keel-dev            # keep data across restarts
  keel dev --port 0                          # free ports; copy the export line
  keel dev --ui                              # with the console on http://127.0.0.1:8080/
`

func init() {
	register(command{name: "dev", order: 10, summary: "run a local Kafka cluster on 127.0.0.1 until Ctrl-C", run: runDev})
}

// topicsFlag collects repeated --topic name:partitions.
type topicsFlag []keeltest.Option

func (t *topicsFlag) String() string { return "" }

func (t *topicsFlag) Set(s string) error {
	name, parts, ok := strings.Cut(s, ":")
	if !ok {
		parts = "0" // the cluster's default
	}
	n, err := strconv.ParseInt(parts, 10, 32)
	if name == "" || err != nil || n < 0 {
		return fmt.Errorf("want NAME:PARTITIONS, e.g. orders:6")
	}
	*t = append(*t, keeltest.Topic(name, int32(n)))
	return nil
}

func runDev(ctx context.Context, args []string, io stdio) int {
	fs := newFlagSet("dev", devUsage, io)
	brokers := fs.Int("brokers", 3, "number of brokers")
	port := fs.Int("port", 9092, "port of the first broker; broker i listens on port+i (0: free ports)")
	dataDir := fs.String("data-dir", "", "keep the cluster's state in this directory across restarts")
	var topics topicsFlag
	fs.Var(&topics, "topic", "create topic NAME:PARTITIONS at start (repeatable)")
	logs := fs.Bool("log", false, "write the brokers' log to stderr")
	withUI := fs.Bool("ui", false, "serve the browser console (keel ui) beside the cluster")
	uiAddr := fs.String("ui-addr", "127.0.0.1:8080", "`address` of the console with --ui")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(io, "dev", "unexpected argument %q", fs.Arg(0))
	}
	if *brokers < 1 || *brokers > 32 {
		return usageError(io, "dev", "--brokers %d: use 1 to 32", *brokers)
	}
	if *port < 0 || *port > 0 && *port+*brokers-1 > 65535 {
		return usageError(io, "dev", "--port %d: ports %d to %d do not all exist", *port, *port, *port+*brokers-1)
	}

	ports := make([]int, *brokers)
	for i := range ports {
		if *port != 0 {
			ports[i] = *port + i
		}
	}
	opts := []keeltest.Option{keeltest.Ports(ports...), keeltest.AutoCreateTopics()}
	opts = append(opts, topics...)
	if *dataDir != "" {
		opts = append(opts, keeltest.DataDir(*dataDir))
	}
	if *logs {
		opts = append(opts, keeltest.Logger(io.err))
	}
	cluster, err := keeltest.Start(opts...)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return failed(io, "dev", fmt.Errorf("%w\n  a port from %d to %d is taken: is another 'keel dev' or Kafka running? stop it, or pick other ports with --port", err, *port, *port+*brokers-1))
		}
		return failed(io, "dev", err)
	}
	addrs := strings.Join(cluster.Addrs(), ",")
	fmt.Fprintf(io.out, "keel dev: %d broker(s) listening on %s\n", *brokers, strings.Join(cluster.Addrs(), ", "))
	if *dataDir != "" {
		fmt.Fprintf(io.out, "keel dev: state kept in %s\n", *dataDir)
	}
	fmt.Fprintf(io.out, "export KEEL_BROKERS=%s\n", addrs)
	fmt.Fprintln(io.out, "keel dev: topics are created on first use; Ctrl-C stops the cluster")

	if *withUI {
		if code := serveUI(ctx, io, addrs, uiOptions{addr: *uiAddr}); code != exitOK {
			cluster.Close()
			return code
		}
	}
	<-ctx.Done()
	fmt.Fprintln(io.err, "keel dev: stopping")
	cluster.Close()
	return exitOK
}
