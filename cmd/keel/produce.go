package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/keel-go/keel"
)

const produceUsage = `
Usage: keel produce -t TOPIC [-p PARTITION] [-K DELIM] [-z CODEC] [-H NAME=VALUE ...] < input

Produces stdin to TOPIC, one record per line, like kcat -P. With -K each
line is KEY<DELIM>VALUE, split at the first DELIM (a line without it is a
value with a null key); without -K the whole line is the value and the key
is null. Empty lines are skipped, as kcat does. Records are sent
asynchronously and batched; each gets a report:

  delivered orders/3@1207 line 12        (stdout, unless -q; @-1 with --acks 0)
  keel produce: line 13: <why it failed> (stderr)

and at the end a summary on stderr: sent, delivered, failed. The exit
status is 0 when every record was delivered, 1 when any failed (or the
cluster cannot be reached, or the topic does not exist), 2 for bad flags.
Ctrl-C stops reading; records already read are still reported (those not
yet sent fail as not written).

The topic must exist, unless the cluster creates topics on first use
(keel dev does).

Examples:
  echo 'hello' | keel produce -t orders
  printf 'k1:v1\nk2:v2\n' | keel produce -t orders -K:
  keel produce -t orders -K '\t' -z zstd -H source=import < orders.tsv
  seq 100000 | keel produce -t numbers -q --acks 1
`

func init() {
	register(command{name: "produce", order: 20, summary: "produce stdin to a topic, one record per line (like kcat -P)", run: runProduce})
}

// headersFlag collects repeated -H name=value (-H name alone: a null value).
type headersFlag []keel.Header

func (h *headersFlag) String() string { return "" }

func (h *headersFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if name == "" {
		return errors.New("want NAME=VALUE")
	}
	hd := keel.Header{Key: name}
	if ok {
		hd.Value = []byte(value)
	}
	*h = append(*h, hd)
	return nil
}

// optionalString is a string flag that knows whether it was given.
type optionalString struct {
	v   string
	set bool
}

func (o *optionalString) String() string     { return o.v }
func (o *optionalString) Set(s string) error { o.v, o.set = s, true; return nil }

func parseCodec(s string) (keel.Codec, error) {
	switch strings.ToLower(s) {
	case "none", "":
		return keel.NoCompression, nil
	case "gzip":
		return keel.Gzip, nil
	case "snappy":
		return keel.Snappy, nil
	case "lz4":
		return keel.LZ4, nil
	case "zstd":
		return keel.Zstd, nil
	}
	return 0, fmt.Errorf("-z %s: use none, gzip, snappy, lz4 or zstd", s)
}

func parseAcks(s string) (keel.Acks, error) {
	switch strings.ToLower(s) {
	case "all", "-1":
		return keel.AcksAll, nil
	case "1", "leader":
		return keel.AcksLeader, nil
	case "0", "none":
		return keel.AcksNone, nil
	}
	return 0, fmt.Errorf("--acks %s: use all, 1 or 0", s)
}

func runProduce(ctx context.Context, args []string, io stdio) int {
	fs := newFlagSet("produce", produceUsage, io)
	brokers := brokerFlag(fs, io)
	topic := fs.String("t", "", "topic to produce to (required)")
	partition := fs.Int("p", -1, "partition to produce to (-1: chosen by key hash, spread when no key)")
	var keyDelim, fixedKey optionalString
	fs.Var(&keyDelim, "K", "key delimiter: each line is KEY<DELIM>VALUE, split at the first DELIM (escapes \\t \\n \\xNN)")
	fs.Var(&fixedKey, "k", "key for every record whose line has none")
	codecName := fs.String("z", "none", "compression codec: none, gzip, snappy, lz4, zstd")
	var headers headersFlag
	fs.Var(&headers, "H", "header NAME=VALUE added to every record (repeatable; NAME alone: null value)")
	acksName := fs.String("acks", "all", "acknowledgement: all (with idempotence), 1 (leader) or 0 (none)")
	maxLine := fs.Int("max-line-bytes", 4<<20, "longest line accepted; a longer line fails alone and is not sent")
	maxBatch := fs.Int("max-batch-bytes", 1_000_000, "largest batch per partition, and so largest record, the producer sends")
	count := fs.Int64("c", 0, "stop after this many records (0: all of stdin)")
	txnID := fs.String("transactional-id", "", "produce in transactions under this `id` (read_committed readers see the records once committed; Ctrl-C aborts the open one)")
	txnRecords := fs.Int64("txn-records", 0, "with --transactional-id: commit every `N` records (0: one transaction for all of stdin); the rest is committed at end of input")
	quiet := fs.Bool("q", false, "no delivery reports on stdout (failures and a failed run's summary still go to stderr)")
	aliases(fs, "t", "topic", "p", "partition", "K", "key-delimiter", "k", "key", "z", "compression-codec", "H", "header", "c", "max-messages", "acks", "request-required-acks")
	rest, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return usageError(io, "produce", "unexpected argument %q: records come from stdin", rest[0])
	}
	if *topic == "" {
		return usageError(io, "produce", "-t TOPIC is required")
	}
	if code, bad := badTopicNames(io, "produce", *topic); bad {
		return code
	}
	codec, err := parseCodec(*codecName)
	if err != nil {
		return usageError(io, "produce", "%v", err)
	}
	acks, err := parseAcks(*acksName)
	if err != nil {
		return usageError(io, "produce", "%v", err)
	}
	var delim []byte
	if keyDelim.set {
		if delim, err = parseDelim(keyDelim.v); err != nil {
			return usageError(io, "produce", "-K: %v", err)
		}
		if bytes.IndexByte(delim, '\n') >= 0 {
			// Lines end at '\n', so no line can hold this delimiter:
			// every record would silently get a null key.
			return usageError(io, "produce", "-K %q: records are read one per line, so a key delimiter holding a newline never matches; use another, e.g. -K '\\t' or -K:", delim)
		}
	}
	if *maxLine < 1 {
		return usageError(io, "produce", "--max-line-bytes %d: must be at least 1", *maxLine)
	}
	if *maxBatch < 1024 || *maxBatch > 256<<20 {
		return usageError(io, "produce", "--max-batch-bytes %d: use 1024 to %d", *maxBatch, 256<<20)
	}
	if *partition < -1 {
		return usageError(io, "produce", "-p %d: use a partition number, or -1 for the partitioner", *partition)
	}
	if *count < 0 {
		return usageError(io, "produce", "-c %d: must not be negative", *count)
	}
	if *txnRecords < 0 || (*txnRecords > 0 && *txnID == "") {
		return usageError(io, "produce", "--txn-records %d: needs --transactional-id and a count of 0 or more", *txnRecords)
	}

	// Producers ask for topics to be created on first use, as kcat's do:
	// a cluster that allows it (keel dev) creates them, others refuse.
	client, err := connect(ctx, *brokers, keel.AllowAutoTopicCreation())
	if err != nil {
		return failed(io, "produce", err)
	}
	defer closeClient(client)
	if err := checkTopic(ctx, client, *brokers, *topic, int32(*partition)); err != nil {
		return failed(io, "produce", err)
	}
	opts := []keel.ProducerOption{
		keel.WithAcks(acks),
		keel.Compression(codec, 0),
		keel.MaxBatchBytes(*maxBatch),
		keel.MaxRequestBytes(max(16<<20, *maxBatch+1024)),
		keel.MaxBufferedBytes(max(64<<20, int64(*maxBatch))),
	}
	if *partition >= 0 {
		opts = append(opts, keel.ManualPartitioner())
	}
	if *txnID != "" {
		opts = append(opts, keel.TransactionalID(*txnID))
	}
	p, err := keel.NewProducer(client, opts...)
	if err != nil {
		return failed(io, "produce", err)
	}

	run := &produceRun{
		maxBatch:  *maxBatch,
		topic:     *topic,
		partition: int32(*partition),
		delim:     delim,
		headers:   headers,
		quiet:     *quiet,
		out:       bufio.NewWriterSize(io.out, 64<<10),
		errOut:    io.err,
		start:     time.Now(),
	}
	if fixedKey.set {
		run.fixedKey = []byte(fixedKey.v)
	}
	if *txnID != "" {
		run.txn = &produceTxn{every: *txnRecords}
		if err := run.txn.begin(p); err != nil {
			p.Close(context.Background())
			return failed(io, "produce", err)
		}
	}
	interrupted := run.feed(ctx, p, io.in, *maxLine, *count)
	if run.txn != nil {
		if err := run.txn.end(p, interrupted); err != nil {
			run.txnErr = err
		}
	}

	// Every record has an outcome within the delivery timeout; Close
	// flushes, then fails whatever is left, so the wait is bounded.
	closeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+30*time.Second)
	defer cancel()
	if err := p.Close(closeCtx); err != nil {
		fmt.Fprintf(io.err, "keel produce: %v\n", err)
	}
	return run.finish(interrupted)
}

// produceRun is one run of keel produce: what was sent and how it ended.
type produceRun struct {
	topic     string
	partition int32
	delim     []byte
	fixedKey  []byte
	headers   []keel.Header
	quiet     bool
	maxBatch  int
	start     time.Time

	mu        sync.Mutex // callbacks and the reading loop both report
	out       *bufio.Writer
	errOut    io.Writer
	lastLine  int
	sent      int64 // records handed to the producer
	reported  int64
	delivered int64
	failed    int64 // delivery failures plus lines never sent
	unknown   int64 // failures whose outcome is unknown (may be written)
	rejected  int64 // lines never sent (too long, unreadable)
	hinted    bool
	txn       *produceTxn // --transactional-id (produce_txn.go)
	txnErr    error       // the transaction failed: the run fails
}

// inputLine is one line of stdin, or why reading stopped.
type inputLine struct {
	n       int
	data    []byte
	tooLong int // the line's length when it exceeded the limit
	err     error
}

// feed reads stdin and produces each line until EOF, -c records or ctx
// ends. It reports whether ctx ended it.
func (r *produceRun) feed(ctx context.Context, p *keel.Producer, in io.Reader, maxLine int, count int64) (interrupted bool) {
	lines := make(chan inputLine, 256)
	stop := make(chan struct{})
	defer close(stop)
	// Reading stdin cannot be interrupted, so it runs on its own and the
	// loop below stops waiting for it when ctx ends; the process exits
	// soon after and takes a reader blocked on a terminal with it.
	go readLines(in, maxLine, lines, stop)
	for {
		var l inputLine
		var ok bool
		select {
		case <-ctx.Done():
			return true
		case l, ok = <-lines:
		}
		if !ok {
			return false
		}
		r.mu.Lock()
		r.lastLine = l.n
		r.mu.Unlock()
		switch {
		case l.err != nil:
			r.reject(l.n, fmt.Errorf("reading stdin: %w", l.err))
			return false
		case l.tooLong > 0:
			r.reject(l.n, fmt.Errorf("line is %d bytes or more, over --max-line-bytes (%d): not sent", l.tooLong, maxLine))
			continue
		case len(l.data) == 0:
			continue // kcat skips empty lines too
		}
		msg := r.message(l.data)
		n := l.n
		r.mu.Lock()
		r.sent++
		r.mu.Unlock()
		p.ProduceFunc(ctx, msg, func(d keel.Delivery) { r.report(n, d) })
		if r.txn != nil && !r.txn.sent(ctx, p) {
			return ctx.Err() != nil
		}
		if count > 0 && r.sentCount() >= count {
			return false
		}
	}
}

// message builds the record of one line.
func (r *produceRun) message(line []byte) *keel.Message {
	m := &keel.Message{Topic: r.topic, Partition: r.partition, Key: r.fixedKey, Value: line}
	if r.delim != nil {
		if i := bytes.Index(line, r.delim); i >= 0 {
			m.Key, m.Value = line[:i:i], line[i+len(r.delim):]
		}
	}
	if len(r.headers) > 0 {
		m.Headers = r.headers
	}
	return m
}

func (r *produceRun) sentCount() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent
}

// report prints one record's outcome. The producer calls it one report
// at a time; the lock orders it with reject.
func (r *produceRun) report(line int, d keel.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reported++
	if d.Err == nil {
		r.delivered++
		if !r.quiet {
			fmt.Fprintf(r.out, "delivered %s/%d@%d line %d\n", r.topic, d.Partition, d.Offset, line)
		}
	} else {
		r.failed++
		if d.Outcome() == keel.OutcomeUnknown {
			r.unknown++
		}
		r.out.Flush() // keep stdout and stderr in order for a reader of both
		fmt.Fprintf(r.errOut, "keel produce: line %d: %v\n", line, d.Err)
		r.hintLocked(d.Err)
	}
	if r.reported == r.sent {
		// Nothing outstanding: show what there is (interactive use)
		// rather than wait for the buffer to fill.
		r.out.Flush()
	}
}

// hintLocked adds, once, what to do about failures whose fix is outside
// keel.
func (r *produceRun) hintLocked(err error) {
	if r.hinted {
		return
	}
	var hint string
	switch {
	case errors.Is(err, keel.ErrUnknownTopic):
		hint = fmt.Sprintf("topic %q (or the partition) does not exist any more: create it with 'keel topics create -t %s'", r.topic, r.topic)
	case errors.Is(err, keel.ErrMessageTooLarge), errors.Is(err, keel.ErrRecordListTooLarge):
		hint = fmt.Sprintf("records over --max-batch-bytes (%d) are not sent, and brokers refuse records over the topic's max.message.bytes: send smaller records, or raise both", r.maxBatch)
	case errors.Is(err, keel.ErrDeliveryTimeout):
		hint = "no broker acknowledged in time: is the cluster healthy? ('keel topics describe " + r.topic + "' shows the partition leaders)"
	default:
		return
	}
	r.hinted = true
	fmt.Fprintf(r.errOut, "keel produce: %s\n", hint)
}

// reject counts a line that was never sent.
func (r *produceRun) reject(line int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed++
	r.rejected++
	r.out.Flush()
	fmt.Fprintf(r.errOut, "keel produce: line %d: %v\n", line, err)
}

// finish prints the summary and returns the exit status. It runs after
// the producer's Close: every report that will come has come.
func (r *produceRun) finish(interrupted bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if missing := r.sent - r.reported; missing > 0 {
		// Close ran out of time before handing these out.
		r.failed += missing
		r.unknown += missing
		fmt.Fprintf(r.errOut, "keel produce: %d records got no report before the producer closed: their outcome is unknown\n", missing)
	}
	r.out.Flush()
	if interrupted {
		fmt.Fprintf(r.errOut, "keel produce: interrupted: stopped reading after line %d\n", r.lastLine)
	}
	if r.txnErr != nil {
		fmt.Fprintf(r.errOut, "keel produce: transaction: %v\n", r.txnErr)
	}
	if !r.quiet || r.failed > 0 {
		took := time.Since(r.start)
		fmt.Fprintf(r.errOut, "keel produce: %d sent, %d delivered, %d failed", r.sent, r.delivered, r.failed)
		var notes []string
		if r.unknown > 0 {
			notes = append(notes, fmt.Sprintf("%d with outcome unknown: they may have been written", r.unknown))
		}
		if r.rejected > 0 {
			notes = append(notes, fmt.Sprintf("%d lines never sent", r.rejected))
		}
		if len(notes) > 0 {
			fmt.Fprintf(r.errOut, " (%s)", strings.Join(notes, "; "))
		}
		fmt.Fprintf(r.errOut, " in %v\n", took.Round(time.Millisecond))
	}
	if r.failed > 0 || r.txnErr != nil {
		return exitFailure
	}
	return exitOK
}

// readLines sends stdin's lines (without their '\n') to lines, numbered
// from 1, and closes it at EOF or after a read error. A line longer than
// max is reported by its length and skipped, without holding it.
func readLines(in io.Reader, max int, lines chan<- inputLine, stop <-chan struct{}) {
	defer close(lines)
	br := bufio.NewReaderSize(in, 64<<10)
	send := func(l inputLine) bool {
		select {
		case lines <- l:
			return true
		case <-stop:
			return false
		}
	}
	for n := 1; ; n++ {
		var line []byte
		length, newline := 0, false
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			length += len(chunk)
			if length <= max+1 { // +1: the '\n' is not part of the line
				line = append(line, chunk...)
			} else {
				line = nil // over the limit: count it, do not keep it
			}
			newline = len(chunk) > 0 && chunk[len(chunk)-1] == '\n'
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			send(inputLine{n: n, err: err})
			return
		}
		if length == 0 {
			return // EOF
		}
		if newline {
			length--
			if line != nil {
				line = line[:len(line)-1]
			}
		}
		l := inputLine{n: n, data: line}
		if length > max {
			l = inputLine{n: n, tooLong: length}
		}
		if !send(l) || err == io.EOF {
			return
		}
	}
}

// checkTopic fails early, with what to do, when the topic does not exist
// or has no such partition: otherwise every record would fail alike.
func checkTopic(ctx context.Context, client *keel.Client, brokers, topic string, partition int32) error {
	md, err := client.Metadata(ctx, topic)
	if errors.Is(err, keel.ErrUnknownTopic) {
		return fmt.Errorf("topic %q does not exist on the cluster at %s\n  create it with 'keel topics create -t %s', or check the name ('keel topics list')", topic, brokers, topic)
	}
	if err != nil {
		return explain(err, brokers)
	}
	if partition < 0 {
		return nil
	}
	for _, t := range md.Topics {
		if t.Name == topic && int(partition) >= len(t.Partitions) {
			return fmt.Errorf("topic %q has %d partitions (0 to %d): partition %d does not exist", topic, len(t.Partitions), len(t.Partitions)-1, partition)
		}
	}
	return nil
}

// closeClient closes a client within a few seconds.
func closeClient(c *keel.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Close(ctx)
}

// parseArgs parses flags the way kcat's users type them: short flags with
// their value attached (-K: -p0 -o-10), several boolean flags together
// (-eq), and flags after positional arguments (-G g topic -e). It returns
// the positional arguments; when ok is false the command returns code.
func parseArgs(fs *flag.FlagSet, args []string) (positional []string, code int, ok bool) {
	args = expandShortFlags(fs, args)
	for {
		if code, ok := parseFlags(fs, args); !ok {
			return nil, code, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, exitOK, true
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(positional, rest...), exitOK, true
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// expandShortFlags rewrites getopt-style short flags into what package
// flag understands: "-K:" becomes "-K" ":", "-eq" becomes "-e" "-q".
// "-t=x" keeps its Go meaning; only single-letter flags are split.
func expandShortFlags(fs *flag.FlagSet, args []string) []string {
	isBool := func(f *flag.Flag) bool {
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		return ok && b.IsBoolFlag()
	}
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) < 2 || a[0] != '-' || a[1] == '-' {
			out = append(out, a)
			continue
		}
		f := fs.Lookup(a[1:2])
		switch {
		case f == nil:
			out = append(out, a) // a long flag, or unknown: flag reports it
		case len(a) == 2:
			out = append(out, a)
			if !isBool(f) && i+1 < len(args) {
				out = append(out, args[i+1]) // its value, whatever it looks like
				i++
			}
		case !isBool(f):
			if a[2] == '=' && len(a) > 3 {
				out = append(out, a) // -t=orders
			} else {
				out = append(out, a[:2], a[2:]) // -K: -p0 -o-10 -K=
			}
		default:
			// -eq: every letter must be a boolean flag, else leave it
			// for flag to report.
			all := true
			for _, c := range a[1:] {
				if g := fs.Lookup(string(c)); g == nil || !isBool(g) {
					all = false
				}
			}
			if !all || strings.Contains(a, "=") {
				out = append(out, a)
				continue
			}
			for _, c := range a[1:] {
				out = append(out, "-"+string(c))
			}
		}
	}
	return out
}
