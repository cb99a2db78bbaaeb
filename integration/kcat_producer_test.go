package integration

// Interop between keel's Producer and kcat (librdkafka's command line
// tool): what keel writes, librdkafka reads back byte for byte, under every
// codec; and keys that librdkafka's Java-compatible partitioner places land
// where keel's default partitioner places them.
//
// kcat prints a record in one of two ways, used together here:
//
//   - -f kcatFormat: "%p %o %T %K %S\n%k%s\n%h\n". %K and %S are the key's
//     and value's lengths in decimal (-1 for null), and %k and %s write the
//     raw bytes (fwrite, no escaping), so reading exactly %K then %S bytes
//     after the first line recovers key and value byte for byte, whatever
//     they hold (0x00, 0xff, newlines). The '\n' expected right after them
//     checks that the lengths and the bytes agree. %h is the headers as
//     "k=v" joined with commas, "NULL" for a null value: it is compared as a
//     rendered string (header values are kept free of newlines), which
//     cannot tell a null value from the text "NULL" nor split keys that
//     hold '=' or ','.
//   - -J: one JSON object per record. It cannot carry binary keys or values
//     exactly (kcat writes bytes >= 0x80 unescaped, so non-UTF-8 input does
//     not survive JSON decoding), but its "headers" field is an ordered
//     [k1, v1, k2, v2, ...] array with JSON null for a null value: exact for
//     UTF-8 header keys and values, duplicates and order included. The
//     header check uses it.
//
// What kcat distinguishes: a null key or value prints %K/%S -1 and JSON
// null; an empty one prints 0 and "". A null header value prints "NULL"
// under %h and null under -J; an empty one prints "" in both.
//
// -X check.crcs=true makes librdkafka verify every batch's CRC-32C, which
// it does not by default.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/partition"
	"github.com/keel-go/keel/internal/record"
	"github.com/keel-go/keel/keeltest"
)

// kcatFormat is kcat's -f format: see the top of this file.
const kcatFormat = `%p %o %T %K %S\n%k%s\n%h\n`

// kcatPath returns kcat's path. Without kcat the test is skipped, except in
// CI (CI set), where kcat is installed and its absence is a failure.
func kcatPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "" {
		t.Skipf("kcat not found (%v): install it (Debian/Ubuntu: apt-get install kcat) to run the kcat interop tests", err)
	}
	t.Fatalf("kcat not found in CI (%v): the CI image must install kcat (apt-get install kcat)", err)
	return ""
}

// runKcat runs kcat with args and stdin within 30s (and ctx), and returns
// its stdout. It fails the test with kcat's stderr if kcat fails; kcat
// exits non-zero on a consume error (a bad CRC, a batch it cannot
// decompress) without -E. Anything on stderr otherwise (librdkafka logs
// transient connection trouble even with -q) is logged, and the callers
// count the records they get.
func runKcat(t *testing.T, ctx context.Context, kcat string, stdin []byte, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		t.Fatalf("kcat %s: %v (ctx %v)\nstderr:\n%s", strings.Join(quoteArgs(args), " "), err, ctx.Err(), stderr.Bytes())
	}
	if stderr.Len() > 0 {
		t.Logf("kcat %s: stderr:\n%s", strings.Join(quoteArgs(args), " "), stderr.Bytes())
	}
	return stdout.Bytes()
}

func quoteArgs(args []string) []string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		if a == "" || strings.ContainsAny(a, " %\\\t\n'\"") {
			q[i] = strconv.Quote(a)
		}
	}
	return q
}

// kcatRecord is one record as kcat printed it with kcatFormat.
type kcatRecord struct {
	Partition int32
	Offset    int64
	Timestamp int64  // ms since the epoch
	Key       []byte // nil for a null key
	Value     []byte // nil for a null value
	Headers   string // %h
}

// kcatConsume reads every record of topic with kcat -C -e.
func kcatConsume(t *testing.T, ctx context.Context, kcat, addr, topic string) []kcatRecord {
	t.Helper()
	out := runKcat(t, ctx, kcat, nil, "-C", "-b", addr, "-t", topic, "-o", "beginning", "-e", "-q",
		"-X", "check.crcs=true", "-f", kcatFormat)
	recs, err := parseKcatFormat(out)
	if err != nil {
		t.Fatalf("parsing kcat -f output for %s: %v", topic, err)
	}
	return recs
}

// parseKcatFormat parses the output of kcat -f kcatFormat.
func parseKcatFormat(out []byte) ([]kcatRecord, error) {
	var recs []kcatRecord
	r := bufio.NewReader(bytes.NewReader(out))
	bytesOf := func(n int64) ([]byte, error) {
		if n < 0 {
			return nil, nil
		}
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	for i := 0; ; i++ {
		line, err := r.ReadString('\n')
		if err == io.EOF && line == "" {
			return recs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("record %d: first line %q: %v", i, line, err)
		}
		var rec kcatRecord
		var klen, vlen int64
		if _, err := fmt.Sscanf(line, "%d %d %d %d %d\n", &rec.Partition, &rec.Offset, &rec.Timestamp, &klen, &vlen); err != nil {
			return nil, fmt.Errorf("record %d: first line %q: %v", i, line, err)
		}
		if rec.Key, err = bytesOf(klen); err != nil {
			return nil, fmt.Errorf("record %d (%d/%d): key of %d bytes: %v", i, rec.Partition, rec.Offset, klen, err)
		}
		if rec.Value, err = bytesOf(vlen); err != nil {
			return nil, fmt.Errorf("record %d (%d/%d): value of %d bytes: %v", i, rec.Partition, rec.Offset, vlen, err)
		}
		if c, err := r.ReadByte(); err != nil || c != '\n' {
			return nil, fmt.Errorf("record %d (%d/%d): want '\\n' after %d key and %d value bytes, got %q, %v", i, rec.Partition, rec.Offset, klen, vlen, c, err)
		}
		h, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("record %d (%d/%d): headers %q: %v", i, rec.Partition, rec.Offset, h, err)
		}
		rec.Headers = strings.TrimSuffix(h, "\n")
		recs = append(recs, rec)
	}
}

// kcatJSONRecord is the part of kcat's -J envelope checked here.
type kcatJSONRecord struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	TSType    string    `json:"tstype"`
	TS        int64     `json:"ts"`
	Headers   []*string `json:"headers"` // k1, v1, k2, v2, ...; nil for a null value
	Key       *string   `json:"key"`     // null or not; not the bytes (see above)
	Payload   *string   `json:"payload"`
}

// kcatConsumeJSON reads every record of topic with kcat -C -e -J.
func kcatConsumeJSON(t *testing.T, ctx context.Context, kcat, addr, topic string) []kcatJSONRecord {
	t.Helper()
	out := runKcat(t, ctx, kcat, nil, "-C", "-b", addr, "-t", topic, "-o", "beginning", "-e", "-q",
		"-X", "check.crcs=true", "-J")
	var recs []kcatJSONRecord
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var rec kcatJSONRecord
		if err := dec.Decode(&rec); errors.Is(err, io.EOF) {
			return recs
		} else if err != nil {
			t.Fatalf("decoding kcat -J output for %s: %v", topic, err)
		}
		recs = append(recs, rec)
	}
}

// renderKcatHeaders is headers as kcat's %h prints them.
func renderKcatHeaders(hs []keel.Header) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		v := string(h.Value)
		if h.Value == nil {
			v = "NULL"
		}
		parts[i] = h.Key + "=" + v
	}
	return strings.Join(parts, ",")
}

// interopMessages returns n messages for topic that cover what a record can
// hold: null, empty, binary and long keys; null, empty, binary, text and
// large values (one above LZ4's 64 KiB block and snappy's 32 KiB chunk,
// one incompressible); 0 to 3 headers with empty, null, duplicate-key and
// non-ASCII entries; and timestamps that go backwards within a batch.
// Header keys and values are UTF-8 without newlines (see the top of the
// file); keys and values are arbitrary bytes.
func interopMessages(topic string, n int, now time.Time) []*keel.Message {
	rng := rand.New(rand.NewPCG(7, uint64(len(topic))))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	headerPool := []keel.Header{
		{Key: "trace-id", Value: []byte("0af7651916cd43dd8448eb211c80319c")},
		{Key: "empty", Value: []byte{}},
		{Key: "null", Value: nil},
		{Key: "dup", Value: []byte("first")},
		{Key: "dup", Value: []byte("second")},
		{Key: "", Value: []byte("empty key")},
		{Key: "ünïcødé ✓", Value: []byte("värde \t \"quoted\" \\ / 日本")},
		{Key: "content-type", Value: []byte("application/octet-stream")},
	}
	msgs := make([]*keel.Message, n)
	for i := range msgs {
		m := &keel.Message{Topic: topic}
		switch i % 10 {
		case 0: // null key
		case 1:
			m.Key = []byte{}
		case 2:
			m.Key = allBytes
		case 3:
			m.Key = fmt.Appendf(nil, "key-%d", i)
		case 4:
			m.Key = fmt.Appendf(nil, "\n\t\x00\xff\r\n%d", i)
		case 5:
			m.Key = randBytes(1000 + i)
		default:
			m.Key = randBytes(1 + rng.IntN(40))
		}
		switch {
		case i%17 == 3: // tombstone
		case i%19 == 1:
			m.Value = []byte{}
		case i == 100: // compressible, spans LZ4 blocks and snappy chunks
			m.Value = bytes.Repeat(append([]byte("line\twith\x00nul\xff\n"), allBytes...), 300)
		case i == 150: // incompressible: stored LZ4 blocks
			m.Value = randBytes(150_000)
		case i%23 == 5:
			m.Value = randBytes(2000 + rng.IntN(3000))
		case i%3 == 0:
			m.Value = append(append([]byte{}, allBytes...), "\n\t\r\x00\xff"...)
		case i%3 == 1:
			m.Value = fmt.Appendf(nil, "text value %d\nsecond line\ttab\n", i)
		default:
			m.Value = randBytes(rng.IntN(200))
		}
		for range i % 4 {
			m.Headers = append(m.Headers, headerPool[rng.IntN(len(headerPool))])
		}
		switch i % 9 {
		case 4: // earlier than the batch's first record: negative delta
			m.Timestamp = now.Add(-time.Duration(i) * time.Hour)
		case 7:
			m.Timestamp = now.Add(time.Duration(i) * time.Millisecond)
		}
		msgs[i] = m
	}
	return msgs
}

func TestKcatReadsKeelRecords(t *testing.T) {
	kcat := kcatPath(t)
	codecs := []struct {
		codec keel.Codec
		level int
	}{
		{keel.NoCompression, 0},
		{keel.Gzip, 0},
		{keel.Gzip, 1},
		{keel.Snappy, 0},
		{keel.LZ4, 0},
		{keel.LZ4, 9},
		{keel.Zstd, 0},
		{keel.Zstd, 19},
	}
	topicOf := func(codec keel.Codec, level int) string { return fmt.Sprintf("interop-%v-%d", codec, level) }
	var topics []string
	for _, c := range codecs {
		topics = append(topics, topicOf(c.codec, c.level))
	}
	cl := startCluster(t, keeltest.Brokers(2), keeltest.Topics(3, topics...))
	c := newClient(t, cl)
	ctx := testCtx(t, 50*time.Second)
	for _, tc := range codecs {
		topic := topicOf(tc.codec, tc.level)
		t.Run(fmt.Sprintf("%v-%d", tc.codec, tc.level), func(t *testing.T) {
			p := newProducer(t, c, keel.Compression(tc.codec, tc.level))
			msgs := interopMessages(topic, 200, time.Now().Truncate(time.Millisecond))
			// Two rounds, so that each partition holds more than one batch.
			ds, err := p.SendAll(ctx, msgs[:len(msgs)/2]...)
			if err != nil {
				t.Fatalf("SendAll: %v", err)
			}
			ds2, err := p.SendAll(ctx, msgs[len(msgs)/2:]...)
			if err != nil {
				t.Fatalf("SendAll: %v", err)
			}
			ds = append(ds, ds2...)
			type po struct {
				p int32
				o int64
			}
			want := make(map[po]int, len(ds)) // partition/offset -> index in msgs
			for i, d := range ds {
				if d.Message != msgs[i] {
					t.Fatalf("delivery %d is for another message", i)
				}
				if _, dup := want[po{d.Partition, d.Offset}]; dup {
					t.Fatalf("deliveries %d and %d both at %d/%d", want[po{d.Partition, d.Offset}], i, d.Partition, d.Offset)
				}
				want[po{d.Partition, d.Offset}] = i
				if !msgs[i].Timestamp.IsZero() && !d.Timestamp.Equal(msgs[i].Timestamp) {
					t.Errorf("record %d: delivery timestamp %v, message timestamp %v", i, d.Timestamp, msgs[i].Timestamp)
				}
			}

			// A batch that does not shrink is written uncompressed (see
			// record.BatchBuilder.Finish): the one with the incompressible
			// value may be.
			batches := storedCodecs(t, ctx, cl, topic)
			if batches[record.Codec(tc.codec)] == 0 || len(batches) > 2 || len(batches) == 2 && batches[record.CodecNone] == 0 {
				t.Fatalf("stored batches by codec: %v, want %v (and none for batches that do not shrink)", batches, tc.codec)
			}
			t.Logf("stored batches by codec: %v", batches)

			recs := kcatConsume(t, ctx, kcat, cl.Addr(), topic)
			if len(recs) != len(msgs) {
				t.Errorf("kcat read %d records, keel delivered %d", len(recs), len(msgs))
			}
			seen := make(map[po]bool, len(recs))
			for _, r := range recs {
				at := po{r.Partition, r.Offset}
				i, ok := want[at]
				if !ok || seen[at] {
					t.Errorf("kcat read a record at %d/%d that keel did not deliver there (or twice)", r.Partition, r.Offset)
					continue
				}
				seen[at] = true
				m, d := msgs[i], ds[i]
				where := fmt.Sprintf("record %d at %d/%d", i, r.Partition, r.Offset)
				if (r.Key == nil) != (m.Key == nil) || !bytes.Equal(r.Key, m.Key) {
					t.Errorf("%s: key: kcat %s, produced %s", where, showBytes(r.Key), showBytes(m.Key))
				}
				if (r.Value == nil) != (m.Value == nil) || !bytes.Equal(r.Value, m.Value) {
					t.Errorf("%s: value: kcat %s, produced %s", where, showBytes(r.Value), showBytes(m.Value))
				}
				if r.Headers != renderKcatHeaders(m.Headers) {
					t.Errorf("%s: headers: kcat %q, produced %q", where, r.Headers, renderKcatHeaders(m.Headers))
				}
				if r.Timestamp != d.Timestamp.UnixMilli() {
					t.Errorf("%s: timestamp: kcat %d, delivery %d", where, r.Timestamp, d.Timestamp.UnixMilli())
				}
			}

			jrecs := kcatConsumeJSON(t, ctx, kcat, cl.Addr(), topic)
			if len(jrecs) != len(msgs) {
				t.Errorf("kcat -J read %d records, keel delivered %d", len(jrecs), len(msgs))
			}
			for _, r := range jrecs {
				i, ok := want[po{r.Partition, r.Offset}]
				if !ok {
					t.Errorf("kcat -J read a record at %d/%d that keel did not deliver there", r.Partition, r.Offset)
					continue
				}
				m, d := msgs[i], ds[i]
				where := fmt.Sprintf("record %d at %d/%d (-J)", i, r.Partition, r.Offset)
				if r.TSType != "create" || r.TS != d.Timestamp.UnixMilli() {
					t.Errorf("%s: timestamp %s %d, delivery %d", where, r.TSType, r.TS, d.Timestamp.UnixMilli())
				}
				if (r.Key == nil) != (m.Key == nil) || (r.Payload == nil) != (m.Value == nil) {
					t.Errorf("%s: null key/value: kcat %v/%v, produced %v/%v", where, r.Key == nil, r.Payload == nil, m.Key == nil, m.Value == nil)
				}
				var hs []keel.Header
				for j := 0; j+1 < len(r.Headers); j += 2 {
					h := keel.Header{Key: *r.Headers[j]}
					if v := r.Headers[j+1]; v != nil {
						h.Value = []byte(*v)
					}
					hs = append(hs, h)
				}
				if !sameHeaders(hs, m.Headers) || len(r.Headers)%2 != 0 {
					t.Errorf("%s: headers: kcat %s, produced %s", where, showHeaders(hs), showHeaders(m.Headers))
				}
			}
		})
	}
}

// storedCodecs counts the batches of topic by codec, read with raw Fetch
// requests, so that a test knows kcat decoded the codec it meant to test
// rather than batches the producer left uncompressed.
func storedCodecs(t *testing.T, ctx context.Context, cl *keeltest.Cluster, topic string) map[record.Codec]int {
	t.Helper()
	pool := conn.NewPool(connConfig(), conn.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}, 0)
	defer pool.Close()
	codecs := make(map[record.Codec]int)
	for p := int32(0); p < int32(cl.Partitions(topic)); p++ {
		c, err := pool.Get(ctx, cl.AddrOf(cl.Leader(topic, p)), conn.Fetch)
		if err != nil {
			t.Fatal(err)
		}
		for offset, hwm := int64(0), cl.HighWatermark(topic, p); offset < hwm; {
			req := kmsg.NewPtrFetchRequest()
			req.ReplicaID, req.MaxWaitMillis, req.MaxBytes, req.SessionEpoch = -1, 100, 50<<20, -1
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, offset, 10<<20
			rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			resp, err := c.Request(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			fr := resp.(*kmsg.FetchResponse)
			if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 1 || fr.Topics[0].Partitions[0].ErrorCode != 0 {
				t.Fatalf("fetch %s/%d@%d: %+v", topic, p, offset, fr)
			}
			var rd record.Reader
			rd.Reset(fr.Topics[0].Partitions[0].RecordBatches)
			start := offset
			for {
				var b record.Batch
				if err := rd.Next(&b); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatalf("decoding %s/%d: %v", topic, p, err)
				}
				codecs[b.Attributes.Codec()]++
				offset = max(offset, b.NextOffset())
			}
			if offset == start {
				t.Fatalf("fetch of %s/%d at %d made no progress (hwm %d)", topic, p, offset, hwm)
			}
		}
	}
	return codecs
}

func sameHeaders(a, b []keel.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || (a[i].Value == nil) != (b[i].Value == nil) || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func showHeaders(hs []keel.Header) string {
	var sb strings.Builder
	sb.WriteString("[")
	for i, h := range hs {
		if i > 0 {
			sb.WriteString(" ")
		}
		fmt.Fprintf(&sb, "%q=%s", h.Key, showBytes(h.Value))
	}
	return sb.String() + "]"
}

func showBytes(b []byte) string {
	switch {
	case b == nil:
		return "null"
	case len(b) > 64:
		return fmt.Sprintf("%d bytes %q...", len(b), b[:64])
	}
	return fmt.Sprintf("%q", b)
}

// kcatKeys returns n distinct keys that kcat -P -K '\t' can read from
// lines: the empty key (kcat writes it as an empty, not a null, key), and
// any bytes but '\t' and '\n', of every length up to 40 (so every murmur2
// tail length is covered), bytes >= 0x80 and '\r' included.
func kcatKeys(n int) [][]byte {
	rng := rand.New(rand.NewPCG(42, 480))
	seen := make(map[string]bool, n)
	var keys [][]byte
	add := func(k []byte) {
		if !seen[string(k)] {
			seen[string(k)] = true
			keys = append(keys, k)
		}
	}
	add([]byte{}) // an empty key is a key: hashed, not spread
	for i := 0; len(keys) < n/2; i++ {
		add(fmt.Appendf(nil, "user-%d", i))
	}
	for len(keys) < n {
		k := make([]byte, rng.IntN(41))
		for j := range k {
			for k[j] = byte(rng.Uint32()); k[j] == '\t' || k[j] == '\n'; k[j] = byte(rng.Uint32()) {
			}
		}
		add(k)
	}
	return keys
}

func TestKcatPartitionerAgreement(t *testing.T) {
	kcat := kcatPath(t)
	counts := []int32{7, 12}
	var opts []keeltest.Option
	for _, n := range counts {
		opts = append(opts, keeltest.Topic(fmt.Sprintf("kcat-keys-%d", n), n), keeltest.Topic(fmt.Sprintf("keel-keys-%d", n), n))
	}
	cl := startCluster(t, append([]keeltest.Option{keeltest.Brokers(2)}, opts...)...)
	c := newClient(t, cl)
	p := newProducer(t, c)
	ctx := testCtx(t, 50*time.Second)

	keys := kcatKeys(300)
	var input bytes.Buffer
	for i, k := range keys {
		input.Write(k)
		fmt.Fprintf(&input, "\tv%d\n", i)
	}
	for _, n := range counts {
		t.Run(strconv.Itoa(int(n)), func(t *testing.T) {
			kcatTopic, keelTopic := fmt.Sprintf("kcat-keys-%d", n), fmt.Sprintf("keel-keys-%d", n)
			// librdkafka's default partitioner (consistent_random) hashes
			// with CRC32; murmur2_random is its Java-compatible one.
			runKcat(t, ctx, kcat, input.Bytes(), "-P", "-b", cl.Addr(), "-t", kcatTopic, "-K", `\t`, "-q",
				"-X", "partitioner=murmur2_random")
			recs := kcatConsume(t, ctx, kcat, cl.Addr(), kcatTopic)
			if len(recs) != len(keys) {
				t.Fatalf("kcat produced %d records, want %d", len(recs), len(keys))
			}
			kcatPart := make(map[string]int32, len(recs))
			for _, r := range recs {
				if r.Key == nil {
					t.Fatalf("kcat wrote a null key at %d/%d (value %q)", r.Partition, r.Offset, r.Value)
				}
				kcatPart[string(r.Key)] = r.Partition
			}

			msgs := make([]*keel.Message, len(keys))
			for i, k := range keys {
				msgs[i] = &keel.Message{Topic: keelTopic, Key: k, Value: fmt.Appendf(nil, "v%d", i)}
			}
			ds, err := p.SendAll(ctx, msgs...)
			if err != nil {
				t.Fatalf("SendAll: %v", err)
			}
			used := make(map[int32]bool)
			for i, d := range ds {
				k := keys[i]
				want, ok := kcatPart[string(k)]
				if !ok {
					t.Errorf("key %q: kcat did not store it as written", k)
					continue
				}
				used[want] = true
				if d.Partition != want {
					t.Errorf("key %q (%d bytes): keel chose partition %d, librdkafka murmur2_random %d", k, len(k), d.Partition, want)
				}
				if kp := partition.KeyPartition(k, n); kp != d.Partition {
					t.Errorf("key %q: keel chose partition %d, partition.KeyPartition says %d", k, d.Partition, kp)
				}
			}
			if len(used) != int(n) {
				t.Errorf("the keys used %d of %d partitions: too few keys to compare placements", len(used), n)
			}
		})
	}
}
