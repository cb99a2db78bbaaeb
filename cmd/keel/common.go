package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

// defaultBrokers is where keel dev listens and where every command looks
// when neither -b nor $KEEL_BROKERS says otherwise.
const defaultBrokers = "127.0.0.1:9092"

// newFlagSet returns a flag set for one command that prints text (the
// command's usage and examples) and then its flags to stderr on -h or a
// bad flag, and never exits the process.
func newFlagSet(name, text string, io stdio) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.err)
	fs.Usage = func() {
		fmt.Fprint(io.err, strings.TrimLeft(text, "\n"))
		fmt.Fprintln(io.err, "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args. When it returns false the command must return
// code at once: exitOK after -h, exitUsage after a bad flag (the flag
// package already said which).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return exitOK, true
}

// usageError prints a message about bad arguments and returns exitUsage.
func usageError(io stdio, cmd, format string, a ...any) int {
	fmt.Fprintf(io.err, "keel %s: %s\n(run 'keel %s -h' for help)\n", cmd, fmt.Sprintf(format, a...), cmd)
	return exitUsage
}

// brokerFlag registers -b, whose default is $KEEL_BROKERS or defaultBrokers.
func brokerFlag(fs *flag.FlagSet, io stdio) *string {
	def := io.getenv("KEEL_BROKERS")
	if def == "" {
		def = defaultBrokers
	}
	b := fs.String("b", def, "bootstrap brokers, comma-separated host:port (default from $KEEL_BROKERS)")
	fs.Var(stringAlias{b}, "bootstrap-server", "the same as -b, as Apache Kafka's tools name it")
	addSecurityFlags(fs)
	return b
}

// splitBrokers turns "a:1, b:2" into its addresses.
func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// connect makes a client for brokers and checks the cluster answers, so
// an unreachable broker is reported once, up front, in words a person can
// act on rather than as a string of timeouts later.
func connect(ctx context.Context, brokers string, opts ...keel.ClientOption) (*keel.Client, error) {
	seeds := splitBrokers(brokers)
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no brokers given: pass -b host:port or set $KEEL_BROKERS")
	}
	sec, err := security.options()
	if err != nil {
		return nil, err
	}
	all := append([]keel.ClientOption{keel.SeedBrokers(seeds...), keel.ClientID("keel-cli")}, sec...)
	all = append(all, opts...)
	client, err := keel.NewClient(all...)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := client.Metadata(pingCtx); err != nil {
		client.Close(context.Background())
		return nil, explain(err, brokers)
	}
	return client, nil
}

// explain adds what to do to errors whose fix lies outside keel.
func explain(err error, brokers string) error {
	switch {
	case errors.Is(err, keel.ErrBrokerUnreachable), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cannot reach the cluster at %s: %w\n  is a cluster running there? start one with 'keel dev', or point -b or $KEEL_BROKERS at yours", brokers, err)
	case errors.Is(err, keel.ErrAuthentication), errors.Is(err, keel.ErrSASLAuthentication):
		return fmt.Errorf("the cluster at %s refused our credentials: %w\n  check sasl.mechanism, sasl.username and sasl.password (-X or --command-config)", brokers, err)
	case errors.Is(err, keel.ErrTopicAuthorization), errors.Is(err, keel.ErrGroupAuthorization), errors.Is(err, admin.ErrClusterAuthorization):
		return fmt.Errorf("%w\n  the cluster's ACLs do not allow this principal that; see them with 'keel acls list', and grant what is missing with 'keel acls create' as an admin", err)
	}
	return err
}

// failed prints err for the person at the terminal and returns exitFailure.
func failed(io stdio, cmd string, err error) int {
	fmt.Fprintf(io.err, "keel %s: %v\n", cmd, err)
	return exitFailure
}

// badTopicNames checks names with keel.ValidateTopicName, the rule Kafka
// applies, before anything is sent: a permissive broker (keel dev) would
// otherwise create "bad/topic" on first use, and a strict one answers
// with a less helpful error later. It prints the first problem as a usage
// error; ok false means return code (exitUsage).
func badTopicNames(io stdio, cmd string, names ...string) (code int, bad bool) {
	for _, n := range names {
		if err := keel.ValidateTopicName(n); err != nil {
			return usageError(io, cmd, "%v", err), true
		}
	}
	return exitOK, false
}

// stringAlias is a second name for a string flag: setting either sets the
// same variable (--topic for -t, --bootstrap-server for -b).
type stringAlias struct{ p *string }

func (a stringAlias) String() string {
	if a.p == nil {
		return ""
	}
	return *a.p
}
func (a stringAlias) Set(s string) error { *a.p = s; return nil }

// aliases gives flags a second, long name, as Apache Kafka's tools spell
// them (--topic for -t, --group for -G): pairs of short, long. Both names
// set the same value, so whichever a person types means the same.
func aliases(fs *flag.FlagSet, pairs ...string) {
	for i := 0; i+1 < len(pairs); i += 2 {
		f := fs.Lookup(pairs[i])
		if f == nil {
			panic("keel: alias for undefined flag -" + pairs[i]) // a bug in the command's flag setup
		}
		fs.Var(f.Value, pairs[i+1], "the same as -"+pairs[i])
	}
}
