// Command keel is keel's command-line tool: a local development cluster,
// kcat-style produce and consume, topic and group administration, a
// performance tester and a guided demo.
//
//	go run ./cmd/keel demo
//	go run ./cmd/keel dev
//	echo 'k1:hello' | go run ./cmd/keel produce -t orders -K:
//	go run ./cmd/keel consume -t orders -o beginning -e
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// command is one subcommand. Each lives in its own file and registers
// itself from init, so adding a command never touches this file.
type command struct {
	name    string
	summary string   // one line for the command list
	order   int      // position in the command list
	subs    []string // its subcommands, for completion ("keel topics create")
	run     func(ctx context.Context, args []string, io stdio) int
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// stdio is the process's standard streams and environment, passed in so
// tests can drive commands in-process.
type stdio struct {
	in     io.Reader
	out    io.Writer
	err    io.Writer
	getenv func(string) string
	// errIsTerminal says stderr is a terminal: live progress lines are
	// drawn only then (or when a command's flag forces them).
	errIsTerminal bool
}

// Exit statuses, the same for every command.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and something failed (a record, a request)
	exitUsage   = 2 // bad flags or arguments
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal lets the command wind down (commit what it
	// printed, report what it sent) within its own bounds; after it the
	// default handling is back, so a second Ctrl-C ends the process at
	// once instead of being swallowed.
	context.AfterFunc(ctx, stop)
	// With SIGPIPE asked for, a write to a closed stdout returns EPIPE
	// instead of killing the process: keel consume | head -1 then
	// commits what it printed and exits cleanly.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	os.Exit(run(ctx, os.Args[1:], stdio{
		in:            os.Stdin,
		out:           os.Stdout,
		err:           os.Stderr,
		getenv:        os.Getenv,
		errIsTerminal: isTerminal(os.Stderr),
	}))
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, io stdio) int {
	if io.getenv == nil {
		io.getenv = func(string) string { return "" }
	}
	if io.in == nil {
		io.in = strings.NewReader("")
	}
	if len(args) == 0 {
		fmt.Fprint(io.err, usage())
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.run(ctx, []string{"-h"}, stdio{in: io.in, out: io.out, err: io.out, getenv: io.getenv})
			}
		}
		fmt.Fprint(io.out, usage())
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(io.err, "keel: unknown command %q\n\n%s", args[0], usage())
		return exitUsage
	}
	return c.run(ctx, args[1:], io)
}

func usage() string {
	var b strings.Builder
	b.WriteString(`keel — a Kafka client where every message is accounted for

Usage:
  keel <command> [flags]
  keel help <command>

Commands:
`)
	for _, c := range sortedCommands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString(`
Brokers come from -b (or --bootstrap-server), else $KEEL_BROKERS, else
127.0.0.1:9092. Flags also take Apache Kafka's tool names (--topic,
--partitions, --group, --from-beginning, ...). SASL and TLS: -X key=value
as kcat, or --command-config FILE as Kafka's tools (docs/CLI.md).

Examples:
  go run ./cmd/keel demo                          # a guided tour on an embedded cluster
  keel dev                                        # a local 3-broker cluster on 127.0.0.1:9092-9094
  echo 'k1:hello' | keel produce -t orders -K:    # produce "hello" with key "k1"
  keel consume -t orders -o beginning -e          # print everything, then exit
`)
	return b.String()
}

func sortedCommands() []command {
	list := make([]command, 0, len(commands))
	for _, c := range commands {
		list = append(list, c)
	}
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && (list[j].order < list[j-1].order || list[j].order == list[j-1].order && list[j].name < list[j-1].name); j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
	return list
}
