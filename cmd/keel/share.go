package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// keel consume --share-group: a member of a share group (KIP-932), which
// runs beside the plain and consumer-group modes of consume.go and is
// reached from there by the flag alone.

const shareConsumeUsage = `
Usage: keel consume --share-group GROUP -t TOPIC [-t TOPIC ...] [-o beginning|end] [-c COUNT] [-e] [-f FORMAT]
       keel consume --share-group GROUP [flags] TOPIC [TOPIC ...]

Reads as a member of share group GROUP (KIP-932, Kafka 4.1+): a queue.
Any number of members, keel or not, may read the same partitions; the
brokers hand each record to one member at a time. Each record is
printed, and accepted once it was written to stdout, so the group never
delivers it again; records this member fetched but did not print (it
stopped at -c, or on Ctrl-C) are released to the other members. There is
no order, even within a partition.

-o beginning or end sets the group's share.auto.offset.reset: where it
starts the partitions it has never read (Kafka's default is the end). It
changes nothing for partitions the group already reads.

-e exits once the group is done (accepted or rejected) with every record
that was in the topics when keel consume started — including records
other members hold meanwhile; -c exits after COUNT records. Otherwise
keel consume runs until Ctrl-C.

-f verbs: ` + formatVerbs + `.

Examples:
  keel consume --share-group jobs -t jobs -o beginning -e   # work off the backlog, then exit
  keel consume --share-group jobs -t jobs -c 1 -f '%s\n'    # take exactly one job
`

// wantsShareGroup reports whether args ask for --share-group: consume's
// hook to this file.
func wantsShareGroup(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "share-group" {
			return true
		}
	}
	return false
}

type shareConsumeOpts struct {
	brokers   string
	group     string
	topics    []string
	reset     string // "", "earliest" or "latest"
	count     int64
	exitAtEnd bool
	quiet     bool
	format    *formatter
}

func runShareConsume(ctx context.Context, args []string, io stdio) int {
	fs := newFlagSet("consume", shareConsumeUsage, io)
	brokers := brokerFlag(fs, io)
	group := fs.String("share-group", "", "read as a member of this share `group`")
	var topics stringsFlag
	fs.Var(&topics, "t", "topic to read (repeatable; topics may also follow the flags)")
	var offset, format, keyDelim optionalString
	fs.Var(&offset, "o", "beginning or end: where the group starts partitions it never read (sets share.auto.offset.reset)")
	count := fs.Int64("c", 0, "exit after this many records (0: no limit)")
	exitAtEnd := fs.Bool("e", false, "exit once the group is done with every record there at start")
	fs.Var(&format, "f", "output format with kcat's verbs: %t %p %o %k %s %h %T %S %K")
	fs.Var(&keyDelim, "K", "print KEY<DELIM>VALUE (ignored with -f)")
	quiet := fs.Bool("q", false, "no summary on stderr")
	// The long names Apache Kafka's tools use, as consume.go has them.
	aliases(fs, "t", "topic", "c", "max-messages", "f", "format", "K", "key-delimiter")
	fs.BoolFunc("from-beginning", "the same as -o beginning", func(string) error { return offset.Set("beginning") })
	rest, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	o := shareConsumeOpts{brokers: *brokers, group: *group, count: *count, exitAtEnd: *exitAtEnd, quiet: *quiet}
	if h := strings.TrimLeft(o.group, "-"); (h == "h" || h == "help") && o.group != h {
		fs.Usage() // keel consume --share-group -h
		return exitOK
	}
	if strings.HasPrefix(o.group, "-") {
		return usageError(io, "consume", "--share-group %q: the flag takes the share group's name", o.group)
	}
	if strings.TrimSpace(o.group) == "" {
		return usageError(io, "consume", "--share-group %q: name the share group", o.group)
	}
	o.topics = append(append(o.topics, topics...), rest...)
	if len(o.topics) == 0 {
		return usageError(io, "consume", "-t TOPIC is required")
	}
	for _, t := range o.topics {
		if err := keel.ValidateTopicName(t); err != nil {
			return usageError(io, "consume", "-t %q: %v", t, err)
		}
	}
	slices.Sort(o.topics)
	o.topics = slices.Compact(o.topics)
	if o.count < 0 {
		return usageError(io, "consume", "-c %d: must not be negative", o.count)
	}
	if offset.set {
		switch offset.v {
		case "beginning":
			o.reset = "earliest"
		case "end":
			o.reset = "latest"
		default:
			return usageError(io, "consume", "-o %q: a share group starts where the group is; -o takes beginning or end only (where it starts partitions it never read)", offset.v)
		}
	}
	switch {
	case format.set:
		f, err := parseFormat(format.v)
		if err != nil {
			return usageError(io, "consume", "-f: %v", err)
		}
		o.format = f
	case keyDelim.set:
		d, err := parseDelim(keyDelim.v)
		if err != nil {
			return usageError(io, "consume", "-K: %v", err)
		}
		o.format = defaultFormat(d)
	default:
		o.format = defaultFormat(nil)
	}

	// As in consume.go: the reader of stdout going away ends the run like
	// Ctrl-C, cleanly, with what reached it accepted.
	ctx, stopOnClose := context.WithCancelCause(ctx)
	defer stopOnClose(nil)
	if f, ok := io.out.(*os.File); ok {
		watchStdout(ctx, f, func() { stopOnClose(errStdoutClosed) })
	}
	client, err := connect(ctx, o.brokers)
	if err != nil {
		if errors.Is(context.Cause(ctx), errStdoutClosed) {
			return exitOK
		}
		return failed(io, "consume", err)
	}
	defer closeClient(client)
	if _, err := client.Metadata(ctx, o.topics...); err != nil {
		if errors.Is(err, keel.ErrUnknownTopic) {
			err = fmt.Errorf("%w\n  check the name with 'keel topics list'", err)
		}
		return failed(io, "consume", explain(err, o.brokers))
	}
	adm, err := admin.New(client)
	if err != nil {
		return failed(io, "consume", err)
	}
	out := &countingWriter{w: io.out}
	pr := &printer{w: bufio.NewWriterSize(out, 64<<10), out: out, errOut: io.err, f: o.format, limit: o.count}
	err = consumeShare(ctx, client, adm, o, pr, io)
	closedOut := isClosedPipe(err) || errors.Is(context.Cause(ctx), errStdoutClosed)
	if closedOut {
		err = nil // the reader has what it wanted: a clean end
	}
	if !o.quiet {
		if closedOut {
			fmt.Fprintf(io.err, "keel consume: %d records written before stdout was closed\n", pr.written())
		} else {
			fmt.Fprintf(io.err, "keel consume: %d records\n", pr.printed)
		}
	}
	if err != nil {
		return failed(io, "consume", explain(err, o.brokers))
	}
	return exitOK
}

// consumeShare polls as a member of o.group, accepting each record once
// it was written to stdout.
func consumeShare(ctx context.Context, client *keel.Client, adm *admin.Admin, o shareConsumeOpts, pr *printer, io stdio) error {
	if o.reset != "" {
		if err := adm.AlterShareGroupConfigs(ctx, o.group, map[string]string{"share.auto.offset.reset": o.reset}); err != nil {
			return fmt.Errorf("setting share.auto.offset.reset=%s for share group %q: %w", o.reset, o.group, err)
		}
		if !o.quiet {
			fmt.Fprintf(io.err, "keel consume: share group %q starts partitions it never read at the %s (share.auto.offset.reset=%s)\n", o.group, map[string]string{"earliest": "beginning", "latest": "end"}[o.reset], o.reset)
		}
	}
	var ends map[keel.TopicPartition]int64
	if o.exitAtEnd {
		var err error
		if ends, err = adm.EndOffsets(ctx, o.topics...); err != nil {
			return fmt.Errorf("reading the topics' end offsets: %w", err)
		}
	}
	sc, err := keel.NewShareConsumer(client, o.group, o.topics)
	if err != nil {
		return err
	}
	loopErr := consumeShareLoop(ctx, sc, adm, o, pr, ends)
	// Close sends the acceptances still pending and releases what was
	// fetched but not printed, then leaves the group.
	cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var problems []error
	if loopErr != nil {
		problems = append(problems, loopErr)
	}
	if err := sc.Flush(cctx); err != nil {
		problems = append(problems, fmt.Errorf("acknowledging what was printed: %w", err))
	}
	if err := sc.Close(cctx); err != nil {
		problems = append(problems, fmt.Errorf("leaving share group %q: %w", o.group, err))
	}
	return errors.Join(problems...)
}

func consumeShareLoop(ctx context.Context, sc *keel.ShareConsumer, adm *admin.Admin, o shareConsumeOpts, pr *printer, ends map[keel.TopicPartition]int64) error {
	for !pr.full() {
		msgs, err := poll(ctx, o.exitAtEnd, sc.Poll)
		n := 0 // printed, in order
		var werr error
		for _, m := range msgs {
			if pr.full() {
				break
			}
			if werr = pr.print(m); werr != nil {
				n++
				break
			}
			n++
		}
		if werr == nil {
			werr = pr.flush()
		}
		// Accept what reached stdout whole; release the rest (not
		// printed, or cut off by a failed write) for another member.
		reached := n
		if werr != nil {
			reached = n - len(pr.pending)
			for _, end := range pr.pending {
				if end <= pr.out.n {
					reached++
				}
			}
		}
		if aerr := sc.Accept(msgs[:reached]...); aerr != nil && werr == nil {
			werr = fmt.Errorf("accepting printed records: %w", aerr)
		}
		sc.Release(msgs[reached:]...)
		if werr != nil {
			return werr
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if o.exitAtEnd && len(msgs) == 0 {
			done, err := shareGroupDone(ctx, sc, adm, o.group, ends)
			if err != nil || done {
				return err
			}
		}
	}
	return nil
}

// shareGroupDone says whether the group's start offset reached ends in
// every partition: the group finished every record there was at start.
func shareGroupDone(ctx context.Context, sc *keel.ShareConsumer, adm *admin.Admin, group string, ends map[keel.TopicPartition]int64) (bool, error) {
	if err := sc.Flush(ctx); err != nil {
		return false, fmt.Errorf("acknowledging what was printed: %w", err)
	}
	var topics []string
	for tp := range ends {
		topics = append(topics, tp.Topic)
	}
	slices.Sort(topics)
	offs, err := adm.ShareGroupOffsets(ctx, group, slices.Compact(topics)...)
	if err != nil {
		return false, fmt.Errorf("reading share group %q's start offsets: %w", group, err)
	}
	for tp, end := range ends {
		if end > 0 && offs[tp].StartOffset < end {
			return false, nil
		}
	}
	return true, nil
}
