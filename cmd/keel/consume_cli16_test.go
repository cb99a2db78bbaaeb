package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keel-go/keel/keeltest"
)

// TestConsumeGroupExitAtEndWithoutPartitions: with more members than
// partitions the group leaves a member idle, and an empty assignment
// fires no callback; keel consume -G -e used to wait for partitions that
// never came. It must exit at the end (at once: it holds nothing).
func TestConsumeGroupExitAtEndWithoutPartitions(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("one", 1))
	sendMessages(t, cl.Addr(), numbered("one", 0, "v", 3)...)
	holder := startBinary(t, "consume", "-b", cl.Addr(), "-G", "pair", "-t", "one", "-o", "beginning", "-q")
	holder.readLines(t, 3) // it holds the only partition
	res := runBinary(t, nil, "consume", "-b", cl.Addr(), "-G", "pair", "-t", "one", "-o", "beginning", "-e")
	if res.code != 0 || res.stdout != "" || !strings.Contains(res.stderr, "0 records") {
		t.Errorf("idle member with -e: exit %d, stdout %q\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	if code := holder.interrupt(t); code != 0 {
		t.Errorf("holder exit %d\n%s", code, holder.stderr.String())
	}
}

// TestConsumeClosedStdoutCommitsWhatWasWritten: keel consume -G ... |
// head -1 used to die of SIGPIPE, losing the commit of what it had
// printed. It must exit 0, commit exactly the records that reached the
// pipe, and a second run must go on from there: together the records the
// first run wrote and those the second prints are every record, once.
func TestConsumeClosedStdoutCommitsWhatWasWritten(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("many", 1))
	const n = 20000
	sendMessages(t, cl.Addr(), numbered("many", 0, "record-", n)...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, keelBinary, "consume", "-b", cl.Addr(), "-G", "piped", "-t", "many", "-o", "beginning")
	cmd.Env = filteredEnv("KEEL_BROKERS")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first, err := bufio.NewReader(out).ReadString('\n') // head -1
	if err != nil {
		t.Fatal(err)
	}
	out.Close() // the reader goes away
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) || err != nil {
		t.Fatalf("after stdout closed: %v\nstderr: %s", err, stderr.String())
	}
	if first != "record-0\n" {
		t.Errorf("first line %q", first)
	}
	// How many it says reached the pipe, and what it committed.
	var wrote int
	if _, err := fmtSscanf(stderr.String(), "keel consume: %d records written before stdout was closed", &wrote); err != nil {
		t.Fatalf("summary: %v\n%s", err, stderr.String())
	}
	committed := committedOf(groupLag(t, cl.Addr(), "piped"))["many/0"]
	if committed < 1 || committed != int64(wrote) || committed >= n {
		t.Fatalf("committed %d, wrote %d of %d: want the commit to be exactly what reached the pipe, at least the line head read", committed, wrote, n)
	}
	// The next run goes on after what reached the pipe: nothing lost,
	// nothing read twice.
	res := mustRun(t, "consume", "-b", cl.Addr(), "-G", "piped", "-t", "many", "-e", "-q")
	rest := outLines(res.stdout)
	if len(rest) != n-int(committed) || rest[0] != "record-"+strconv.FormatInt(committed, 10) || rest[len(rest)-1] != "record-"+strconv.Itoa(n-1) {
		t.Errorf("second run read %d records starting %q, want %d starting record-%d", len(rest), rest[0], n-int(committed), committed)
	}
}

// TestConsumeClosedStdoutWhileIdle: a follower of a topic with nothing new
// writes nothing, so no write can fail; it must still notice that its
// reader went away (keel consume ... | head -0) and end cleanly, not wait
// for the next record.
func TestConsumeClosedStdoutWhileIdle(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("quiet", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, keelBinary, "consume", "-b", cl.Addr(), "-G", "idle", "-t", "quiet")
	cmd.Env = filteredEnv("KEEL_BROKERS")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("idle follower after stdout closed: %v (ctx: %v)\nstderr: %s", err, ctx.Err(), stderr.String())
	}
}

// TestConsumeKafkaLongFlags: kafka-console-consumer.sh's flags work on
// keel consume: --bootstrap-server, --topic, --from-beginning,
// --max-messages, --group, --partition, --offset.
func TestConsumeKafkaLongFlags(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("lf", 1))
	sendMessages(t, cl.Addr(), numbered("lf", 0, "v", 5)...)
	r := mustRun(t, "consume", "--bootstrap-server", cl.Addr(), "--topic", "lf", "--from-beginning", "--max-messages", "2", "-q")
	if got := outLines(r.stdout); !slices.Equal(got, []string{"v0", "v1"}) {
		t.Errorf("--from-beginning --max-messages 2: %q", got)
	}
	r = mustRun(t, "consume", "--bootstrap-server", cl.Addr(), "--topic", "lf", "--partition", "0", "--offset", "3", "-e", "-q")
	if got := outLines(r.stdout); !slices.Equal(got, []string{"v3", "v4"}) {
		t.Errorf("--partition 0 --offset 3: %q", got)
	}
	r = mustRun(t, "consume", "--bootstrap-server", cl.Addr(), "--group", "lg", "--topic", "lf", "--from-beginning", "-e", "-q")
	if got := outLines(r.stdout); len(got) != 5 {
		t.Errorf("--group --from-beginning -e: %q", got)
	}
	wantFail(t, 2, []string{"consume", "-b", cl.Addr(), "--group", "", "-t", "lf"}, "empty group name")
	r = runBinaryEnv(t, strings.NewReader("k:v\n"), []string{"KEEL_BROKERS=" + cl.Addr()}, "produce", "--topic", "lf", "--key-delimiter", ":", "-q")
	if r.code != 0 || cl.HighWatermark("lf", 0) != 6 {
		t.Errorf("produce --topic --key-delimiter with KEEL_BROKERS: exit %d\n%s", r.code, r.stderr)
	}
}

// TestJSONOutput: every list and describe command prints JSON that
// decodes, with the fields a script needs.
func TestJSONOutput(t *testing.T) {
	cl := testCluster(t, keeltest.Topic("j", 2))
	b := cl.Addr()
	sendMessages(t, b, numbered("j", 0, "v", 2)...)
	mustRun(t, "consume", "-b", b, "-G", "jg", "-t", "j", "-o", "beginning", "-e", "-q")
	decode := func(v any, args ...string) {
		t.Helper()
		r := mustRun(t, append(args, "--json")...)
		if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
			t.Fatalf("keel %s --json: %v\n%s", strings.Join(args, " "), err, r.stdout)
		}
	}
	var topics []struct {
		Name       string `json:"name"`
		Partitions int    `json:"partitions"`
	}
	decode(&topics, "topics", "list", "-b", b)
	if len(topics) != 1 || topics[0].Name != "j" || topics[0].Partitions != 2 {
		t.Errorf("topics list --json: %+v", topics)
	}
	var groups []struct {
		Group, State string
	}
	decode(&groups, "groups", "list", "-b", b)
	if len(groups) != 1 || groups[0].Group != "jg" || groups[0].State != "Empty" {
		t.Errorf("groups list --json: %+v", groups)
	}
	var desc []groupJSON
	decode(&desc, "groups", "describe", "-b", b, "-G", "jg")
	if len(desc) != 1 || desc[0].Group != "jg" || desc[0].Members == nil {
		t.Errorf("groups describe --json: %+v", desc)
	}
	var lag lagJSONDoc
	decode(&lag, "groups", "lag", "-b", b, "-G", "jg")
	if lag.Group != "jg" || len(lag.Rows) != 2 || lag.TotalLag != 0 {
		t.Errorf("groups lag --json: %+v", lag)
	}
	var acls []aclJSON
	decode(&acls, "acls", "list", "-b", b)
	if acls == nil || len(acls) != 0 {
		t.Errorf("acls list --json on a cluster without ACLs: %#v, want []", acls)
	}
	var cfgs []configJSON
	decode(&cfgs, "configs", "describe", "-b", b, "--entity", "topic", "--name", "j")
	if len(cfgs) < 5 {
		t.Errorf("configs describe --json: %d configs", len(cfgs))
	}
}

// TestCompletionScripts: keel completion prints scripts that the shells
// accept and that complete commands, subcommands and each command's own
// flags (bash is driven here; zsh and fish are syntax-checked when
// installed).
func TestCompletionScripts(t *testing.T) {
	bash := mustRun(t, "completion", "bash").stdout
	complete := func(cword int, words ...string) []string {
		t.Helper()
		script := bash + "\nCOMP_WORDS=(" + strings.Join(words, " ") + "); COMP_CWORD=" + strconv.Itoa(cword) + "; _keel; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command("bash", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return outLines(string(out))
	}
	if got := complete(1, "keel", "gr"); !slices.Equal(got, []string{"groups"}) {
		t.Errorf("keel gr<TAB>: %q", got)
	}
	if got := complete(2, "keel", "groups", "re"); !slices.Equal(got, []string{"reset-offsets"}) {
		t.Errorf("keel groups re<TAB>: %q", got)
	}
	if got := complete(3, "keel", "groups", "reset-offsets", "--to-e"); !slices.Equal(got, []string{"--to-earliest"}) {
		t.Errorf("keel groups reset-offsets --to-e<TAB>: %q", got)
	}
	if got := complete(2, "keel", "consume", "--from"); !slices.Equal(got, []string{"--from-beginning"}) {
		t.Errorf("keel consume --from<TAB>: %q", got)
	}
	if got := complete(3, "keel", "topics", "alter", "--par"); !slices.Equal(got, []string{"--partitions"}) {
		t.Errorf("keel topics alter --par<TAB>: %q", got)
	}
	for _, sh := range []string{"zsh", "fish"} {
		path, err := exec.LookPath(sh)
		if err != nil {
			t.Logf("%s not installed: its script is not syntax-checked", sh)
			continue
		}
		script := mustRun(t, "completion", sh).stdout
		cmd := exec.Command(path, "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -n rejects the script: %v\n%s", sh, err, out)
		}
		if !strings.Contains(script, "reset-offsets") || !strings.Contains(script, "from-beginning") {
			t.Errorf("%s script lacks subcommands or flags", sh)
		}
	}
	wantFail(t, 2, []string{"completion", "powershell"}, "unknown shell")
	wantFail(t, 2, []string{"completion"}, "name the shell")
}

// fmtSscanf finds format's line in s and scans it.
func fmtSscanf(s, format string, args ...any) (int, error) {
	prefix := format[:strings.Index(format, "%")]
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, prefix) {
			return fmt.Sscanf(line, format, args...)
		}
	}
	return 0, fmt.Errorf("no line %q in %q", prefix, s)
}

// TestPerfKafkaLongFlags: the perf tools take the names of Kafka's perf
// test scripts for the same things (--topic, --num-records, --messages,
// --group).
func TestPerfKafkaLongFlags(t *testing.T) {
	r := mustRun(t, "perf", "produce", "--embedded", "--topic", "pl", "--num-records", "500", "--json")
	var res perfProduceJSON
	perfDecodeJSON(t, r.stdout, &res)
	if res.Records != 500 || res.Delivered != 500 {
		t.Errorf("perf produce --num-records 500: %+v", res)
	}
	r = mustRun(t, "perf", "consume", "--embedded", "--topic", "pl", "--messages", "500", "--group", "plg", "--json")
	var got struct {
		Group   string `json:"group"`
		Records int64  `json:"records"`
	}
	perfDecodeJSON(t, r.stdout, &got)
	if got.Group != "plg" || got.Records != 500 {
		t.Errorf("perf consume --messages 500 --group plg: %+v", got)
	}
}
