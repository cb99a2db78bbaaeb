// Command keel is keel's command-line tool. Today it runs the demo; the
// produce, consume, topics, groups, perf and dev subcommands follow.
//
//	go run ./cmd/keel demo
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
)

const usage = `keel — a Kafka client where every message is accounted for

Usage:
  keel <command> [flags]

Commands:
  demo    run keel against an embedded 3-broker cluster and explain what happens
  help    show this help

Examples:
  go run ./cmd/keel demo
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status, so tests
// can drive every command in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "keel: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
