package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

const consumeUsage = `
Usage: keel consume -t TOPIC [-p PARTITION] [-o OFFSET] [-c COUNT] [-e] [-f FORMAT]
       keel consume -G GROUP -t TOPIC [-t TOPIC ...] [-o beginning|end] [-c COUNT] [-e] [-f FORMAT]
       keel consume -G GROUP [flags] TOPIC [TOPIC ...]
       keel consume --share-group GROUP -t TOPIC ...   (a share group, KIP-932: see keel consume --share-group -h)

Prints records, like kcat -C (or kcat -G with -G). By default each record's
value on a line of its own; -K DELIM prints KEY<DELIM>VALUE; -f FORMAT
prints what you ask for.

Without -G, it reads every partition of the topics (or just -p) directly,
starting at -o (default beginning), and commits nothing.

With -G it joins consumer group GROUP and reads the partitions the group
gives it, starting where the group committed; -o says where partitions
without a committed offset start (default end, as kcat and Kafka do). It
commits what it printed — a record is marked after it was written to
stdout, and committed at the latest when keel consume exits — so the next
run of the same group goes on after it.

-e exits once every partition read reached the end offset it had when
keel consume started (records produced later are left for the next run;
with -G also when the group gave this member no partition); -c exits after
COUNT records. Otherwise keel consume runs until Ctrl-C, or until stdout
is closed (keel consume ... | head -1), which ends it cleanly: with -G the
records that reached the pipe are committed.

An -o offset outside a partition's log gets a notice on stderr: past the
end the partition starts at the end, before the log start at the first
record still held.

Kafka's long flags work too: --bootstrap-server, --topic, --partition,
--offset, --from-beginning, --max-messages, --group.

-o values: ` + offsetHelp + `.

-f verbs: ` + formatVerbs + `.
A null key or value prints as nothing (%K/%S say -1).

Examples:
  keel consume -t orders -o beginning -e                 # everything so far, then exit
  keel consume -t orders -o -10 -e -f '%p/%o %k=%s\n'      # the last 10 of each partition
  keel consume -t orders -p 3 -o 1200 -c 5               # 5 records of partition 3 from offset 1200
  keel consume -t orders -f '%T %h %k:%s\n'               # follow, with timestamps and headers
  keel consume -G billing -t orders -o beginning -e      # read and commit as group "billing"
`

func init() {
	register(command{name: "consume", order: 30, summary: "print records of topics, directly or as a group member (like kcat -C/-G)", run: runConsume})
}

// stringsFlag collects a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// consumeOpts is a parsed keel consume command line.
type consumeOpts struct {
	brokers   string
	topics    []string
	partition int32
	offset    offsetSpec
	offsetSet bool
	count     int64
	exitAtEnd bool
	group     string
	protocol  keel.GroupOption // with -G: --group-protocol consumer, or nil
	consumer  bool             // with -G: the group runs the consumer protocol (KIP-848)
	clientID  string           // with -G: this member's client id
	quiet     bool
	format    *formatter
	// isolation is keel.ReadCommitted() (the default, as in Java) or nil
	// for --isolation read_uncommitted.
	isolation keel.GroupOption
}

func runConsume(ctx context.Context, args []string, io stdio) int {
	if wantsShareGroup(args) {
		return runShareConsume(ctx, args, io) // share.go
	}
	fs := newFlagSet("consume", consumeUsage, io)
	brokers := brokerFlag(fs, io)
	var topics stringsFlag
	fs.Var(&topics, "t", "topic to read (repeatable with -G; with -G topics may also follow the flags)")
	partition := fs.Int("p", -1, "read only this partition (not with -G)")
	var offset, format, keyDelim optionalString
	fs.Var(&offset, "o", "where to start: beginning, end, N, -N or s@MS (default beginning; with -G: end, for partitions without a commit)")
	count := fs.Int64("c", 0, "exit after this many records (0: no limit)")
	exitAtEnd := fs.Bool("e", false, "exit when every partition reached the end offset it had at start")
	var group optionalString
	fs.Var(&group, "G", "consume as a member of this consumer `group`, committing what was printed")
	fs.Var(&format, "f", "output format with kcat's verbs: %t %p %o %k %s %h %T %S %K (see above)")
	fs.Var(&keyDelim, "K", "print KEY<DELIM>VALUE (ignored with -f)")
	quiet := fs.Bool("q", false, "no summary on stderr")
	metricsAddr := metricsFlag(fs)
	isolation := fs.String("isolation", "read_committed", "read_committed (records of open or aborted transactions are not shown) or read_uncommitted")
	groupProtocol := fs.String("group-protocol", "classic", "with -G: the group `protocol`, classic or consumer (KIP-848, Kafka 4.0+; kcat/librdkafka 2.0 cannot join such a group)")
	aliases(fs, "t", "topic", "p", "partition", "o", "offset", "c", "max-messages", "G", "group", "f", "format", "K", "key-delimiter")
	fs.BoolFunc("from-beginning", "the same as -o beginning (kafka-console-consumer.sh)", func(string) error { return offset.Set("beginning") })
	rest, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if group.set && strings.TrimSpace(group.v) == "" {
		// kcat answers "Unknown group"; reading without a group instead
		// would be the opposite of what -G asked for.
		return usageError(io, "consume", "-G %q: an empty group name is no group; name the consumer group, or leave -G out to read without one", group.v)
	}
	o := consumeOpts{brokers: *brokers, partition: int32(*partition), count: *count, exitAtEnd: *exitAtEnd, group: group.v, quiet: *quiet}
	switch *isolation {
	case "read_committed":
		o.isolation = keel.ReadCommitted()
	case "read_uncommitted":
	default:
		return usageError(io, "consume", "--isolation %q: use read_committed or read_uncommitted", *isolation)
	}
	o.topics = append(o.topics, topics...)
	if len(rest) > 0 {
		if o.group == "" {
			return usageError(io, "consume", "unexpected argument %q: name the topic with -t (topics as arguments go with -G)", rest[0])
		}
		o.topics = append(o.topics, rest...)
	}
	if len(o.topics) == 0 {
		return usageError(io, "consume", "-t TOPIC is required")
	}
	if code, bad := badTopicNames(io, "consume", o.topics...); bad {
		return code
	}
	slices.Sort(o.topics)
	o.topics = slices.Compact(o.topics)
	if o.count < 0 {
		return usageError(io, "consume", "-c %d: must not be negative", o.count)
	}
	if *partition < -1 {
		return usageError(io, "consume", "-p %d: use a partition number", *partition)
	}
	if po, err := groupProtocolOption(*groupProtocol); err != nil {
		return usageError(io, "consume", "%v", err)
	} else if po != nil {
		if o.group == "" {
			return usageError(io, "consume", "--group-protocol goes with -G GROUP")
		}
		o.protocol, o.consumer = po, true
	}
	if o.group != "" && *partition >= 0 {
		return usageError(io, "consume", "-p does not go with -G: the group decides which partitions this member reads")
	}
	o.offset = offsetSpec{kind: offsetBeginning}
	if o.group != "" {
		o.offset = offsetSpec{kind: offsetEnd}
	}
	if offset.set {
		spec, err := parseOffset(offset.v)
		if err != nil {
			return usageError(io, "consume", "-o: %v", err)
		}
		o.offset, o.offsetSet = spec, true
	}
	if o.group != "" {
		if _, err := o.offset.reset(); err != nil {
			return usageError(io, "consume", "%v", err)
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

	// The reader of stdout going away ends the run like Ctrl-C: what
	// was written is committed (with -G), and the exit is clean.
	ctx, stopOnClose := context.WithCancelCause(ctx)
	defer stopOnClose(nil)
	if f, ok := io.out.(*os.File); ok {
		watchStdout(ctx, f, func() { stopOnClose(errStdoutClosed) })
	}
	clientOpts, metrics, err := startMetrics(*metricsAddr, io)
	if err != nil {
		return failed(io, "consume", err)
	}
	defer metrics.stop()
	if o.group != "" {
		// A name of its own, so that -e can find this member among the
		// group's (see groupState.gaveNothing).
		o.clientID = fmt.Sprintf("keel-cli-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
		clientOpts = append(clientOpts, keel.ClientID(o.clientID))
	}
	client, err := connect(ctx, o.brokers, clientOpts...)
	if err != nil {
		if errors.Is(context.Cause(ctx), errStdoutClosed) {
			return exitOK // nobody is reading: nothing to do
		}
		return failed(io, "consume", err)
	}
	defer closeClient(client)
	md, err := client.Metadata(ctx, o.topics...)
	if err != nil {
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
	var run func(context.Context, *keel.Client, *admin.Admin, *keel.Metadata, consumeOpts, *printer) error
	if o.group == "" {
		run = consumeDirect
	} else {
		run = consumeGroup
	}
	err = run(ctx, client, adm, md, o, pr)
	if ferr := pr.w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("writing to stdout: %w", ferr)
	}
	closedOut := isClosedPipe(err) || errors.Is(context.Cause(ctx), errStdoutClosed)
	if closedOut {
		err = nil // the reader has what it wanted: a clean end
	}
	if !o.quiet {
		if closedOut {
			fmt.Fprintf(io.err, "keel consume: %d records written before stdout was closed", pr.written())
		} else {
			fmt.Fprintf(io.err, "keel consume: %d records", pr.printed)
		}
		fmt.Fprintln(io.err)
	}
	if err != nil {
		return failed(io, "consume", explain(err, o.brokers))
	}
	return exitOK
}

// printer writes formatted records to stdout and counts them.
type printer struct {
	w       *bufio.Writer
	out     *countingWriter // under w: how much reached stdout
	queued  int64           // bytes handed to w so far
	pending []int64         // where each record since the last good flush ends
	errOut  io.Writer       // notices for the person at the terminal
	f       *formatter
	buf     []byte
	printed int64
	limit   int64 // -c; 0: none
}

func (p *printer) print(m *keel.Message) error {
	p.buf = p.f.append(p.buf[:0], m)
	p.queued += int64(len(p.buf))
	p.pending = append(p.pending, p.queued)
	p.printed++
	if _, err := p.w.Write(p.buf); err != nil {
		return fmt.Errorf("writing to stdout: %w", err)
	}
	return nil
}

// written counts the records that reached stdout whole: all printed ones
// after a good flush, fewer after a failed write.
func (p *printer) written() int64 {
	n := int64(0)
	for _, end := range p.pending {
		if end <= p.out.n {
			n++
		}
	}
	return p.printed - int64(len(p.pending)) + n
}

// end is the stream position just past the last record printed: that
// record reached stdout once out.n is at least this.
func (p *printer) end() int64 { return p.queued }

// countingWriter counts the bytes its writer took, also when a write
// fails part way (a reader that closed the pipe got those).
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// full says -c was reached.
func (p *printer) full() bool { return p.limit > 0 && p.printed >= p.limit }

// flush writes what was printed out of the buffer: after each batch, so
// a follower sees records as they come, and before a group marks them.
func (p *printer) flush() error {
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("writing to stdout: %w", err)
	}
	p.pending = p.pending[:0]
	return nil
}

// pollWait is how long one poll waits with -e before the partitions'
// positions are checked again: a partition already at its end sends
// nothing, so waiting for records would never notice it.
const pollWait = 200 * time.Millisecond

// poll polls with pollWait under -e. It returns no error when the short
// wait ended it, and ctx's error when ctx ended.
func poll(ctx context.Context, exitAtEnd bool, fn func(context.Context) ([]*keel.Message, error)) ([]*keel.Message, error) {
	pctx, cancel := ctx, context.CancelFunc(func() {})
	if exitAtEnd {
		pctx, cancel = context.WithTimeout(ctx, pollWait)
	}
	defer cancel()
	msgs, err := fn(pctx)
	if err != nil && ctx.Err() == nil && pctx.Err() != nil {
		err = nil // the short wait ended, not the command
	}
	return msgs, err
}

// partitionsOf lists the partitions to read: all of every topic, or -p.
func partitionsOf(md *keel.Metadata, topics []string, only int32) ([]keel.TopicPartition, error) {
	var tps []keel.TopicPartition
	for _, t := range md.Topics {
		if !slices.Contains(topics, t.Name) {
			continue
		}
		if only >= 0 {
			if int(only) >= len(t.Partitions) {
				return nil, fmt.Errorf("topic %q has %d partitions (0 to %d): partition %d does not exist", t.Name, len(t.Partitions), len(t.Partitions)-1, only)
			}
			tps = append(tps, keel.TopicPartition{Topic: t.Name, Partition: only})
			continue
		}
		for _, p := range t.Partitions {
			tps = append(tps, keel.TopicPartition{Topic: t.Name, Partition: p.ID})
		}
	}
	return tps, nil
}

// endTracker knows, for -e, where each partition's end was at start and
// which partitions got there.
type endTracker struct {
	ends map[keel.TopicPartition]int64
	done map[keel.TopicPartition]bool
}

func newEndTracker(ends map[keel.TopicPartition]int64) *endTracker {
	return &endTracker{ends: ends, done: make(map[keel.TopicPartition]bool)}
}

// past says m lies at or after its partition's end: with -e it is not
// printed (it arrived after keel consume started).
func (e *endTracker) past(m *keel.Message) bool {
	end, ok := e.ends[keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}]
	return ok && m.Offset >= end
}

// at records that tp's next offset is next; it reports whether that
// reached the end.
func (e *endTracker) at(tp keel.TopicPartition, next int64) bool {
	if end, ok := e.ends[tp]; ok && next >= end {
		e.done[tp] = true
	}
	return e.done[tp]
}

// allDone says every partition of tps reached its end.
func (e *endTracker) allDone(tps []keel.TopicPartition) bool {
	for _, tp := range tps {
		if !e.done[tp] {
			return false
		}
	}
	return true
}

// consumeDirect reads the partitions with a keel.Consumer.
func consumeDirect(ctx context.Context, client *keel.Client, adm *admin.Admin, md *keel.Metadata, o consumeOpts, pr *printer) error {
	tps, err := partitionsOf(md, o.topics, o.partition)
	if err != nil {
		return err
	}
	var starts, ends map[keel.TopicPartition]int64
	if o.exitAtEnd || o.offset.kind == offsetFromEnd || o.offset.kind == offsetExact {
		if starts, err = adm.StartOffsets(ctx, o.topics...); err != nil {
			return fmt.Errorf("reading the topics' start offsets: %w", err)
		}
		if ends, err = adm.EndOffsets(ctx, o.topics...); err != nil {
			return fmt.Errorf("reading the topics' end offsets: %w", err)
		}
	}
	// Where an offset is out of range: before the log for beginning and
	// -N means the log start; past the end, the end.
	reset := keel.ResetLatest
	if o.offset.kind == offsetBeginning || o.offset.kind == offsetFromEnd {
		reset = keel.ResetEarliest
	}
	c, err := keel.NewConsumer(client, keel.ResetOffset(reset), o.isolation)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())

	track := newEndTracker(nil)
	if o.exitAtEnd {
		track = newEndTracker(ends)
	}
	for _, tp := range tps {
		start := o.offset.start(starts[tp], ends[tp])
		exact := o.offset.n
		if o.offset.kind == offsetExact {
			// An offset outside the log would be reset by the consumer
			// without a word; say so, and where it starts instead, as
			// kcat does.
			if at, notice := outOfRange(tp, o.offset.n, starts[tp], ends[tp]); notice != "" {
				fmt.Fprintf(pr.errOut, "keel consume: %s\n", notice)
				start, exact = keel.AtOffset(at), at
			}
		}
		c.Assign(tp, start)
		if o.exitAtEnd {
			// An empty partition, or a start at or past the end, is done
			// before it starts; the others are found out by position.
			switch o.offset.kind {
			case offsetEnd:
				track.at(tp, ends[tp])
			case offsetBeginning:
				track.at(tp, starts[tp])
			case offsetExact:
				track.at(tp, max(exact, starts[tp]))
			case offsetFromEnd:
				track.at(tp, max(starts[tp], ends[tp]-o.offset.n))
			}
			if track.done[tp] {
				c.Pause(tp)
			}
		}
	}
	for !pr.full() && !(o.exitAtEnd && track.allDone(tps)) {
		msgs, err := poll(ctx, o.exitAtEnd, c.Poll)
		for _, m := range msgs {
			tp := keel.TopicPartition{Topic: m.Topic, Partition: m.Partition}
			if o.exitAtEnd && (track.done[tp] || track.past(m)) {
				continue
			}
			if perr := pr.print(m); perr != nil {
				return perr
			}
			if o.exitAtEnd && track.at(tp, m.Offset+1) {
				c.Pause(tp)
			}
			if pr.full() {
				break
			}
		}
		if ferr := pr.flush(); ferr != nil {
			return ferr
		}
		if ctx.Err() != nil {
			return nil // interrupted: what was read is printed
		}
		if err != nil {
			return err
		}
		if o.exitAtEnd {
			for _, tp := range tps {
				if pos, ok := c.Position(tp); ok && !track.done[tp] && track.at(tp, pos) {
					c.Pause(tp)
				}
			}
		}
	}
	return nil
}

// outOfRange says where a partition whose log holds [logStart, end)
// starts when -o asked for offset n outside it, with a notice saying so:
// past the end it starts at the end (the consumer's reset to latest, and
// librdkafka's default), before the log start (retention deleted those
// records) at the first record still held. notice is "" when n is in
// range (n == end is: it waits for the next record).
func outOfRange(tp keel.TopicPartition, n, logStart, end int64) (at int64, notice string) {
	switch {
	case n > end:
		holds := fmt.Sprintf("it holds offsets %d to %d", logStart, end-1)
		if logStart >= end {
			holds = fmt.Sprintf("it holds no records; its end offset is %d", end)
		}
		return end, fmt.Sprintf("offset %d is out of range for %s[%d] (%s): starting at the end, offset %d", n, tp.Topic, tp.Partition, holds, end)
	case n < logStart:
		return logStart, fmt.Sprintf("offset %d is out of range for %s[%d] (records before %d were deleted): starting at the log start, offset %d", n, tp.Topic, tp.Partition, logStart, logStart)
	}
	return n, ""
}
