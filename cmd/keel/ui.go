package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/keel-go/keel/cmd/keel/internal/ui"
)

const uiUsage = `
Usage: keel ui [-b BROKERS] [--addr 127.0.0.1:8080] [--read-only] [--auth-token TOKEN]

Serves a console in the browser for the cluster at BROKERS: an overview,
topics with their partitions and configs, a message browser with a live
tail, consumer groups with their lag, and the dead letters of the retry
package with replay. Everything is served by this binary; nothing is
fetched from the internet. Open the address it prints.

The console binds loopback unless --addr says otherwise. --read-only
hides and refuses every write (create topic, add partitions, produce,
reset offsets, replay). --auth-token makes every API call need the token
(the page asks for it once); use it whenever --addr is not loopback.
The token can also come from KEEL_UI_TOKEN.

Examples:
  keel ui -b 127.0.0.1:9092
  keel ui --read-only --addr 127.0.0.1:9000
  keel dev --ui            # a local cluster with the console beside it
`

func init() {
	register(command{name: "ui", order: 65, summary: "a browser console for topics, messages, groups, lag and dead letters", run: runUI})
}

func runUI(ctx context.Context, args []string, io stdio) int {
	fs := newFlagSet("ui", uiUsage, io)
	brokers := brokerFlag(fs, io)
	addr := fs.String("addr", "127.0.0.1:8080", "`address` to serve the console on")
	readOnly := fs.Bool("read-only", false, "hide and refuse every write")
	token := fs.String("auth-token", io.getenv("KEEL_UI_TOKEN"), "require this bearer `token` on every API call")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(io, "ui", "unexpected argument %q", fs.Arg(0))
	}
	return serveUI(ctx, io, *brokers, uiOptions{addr: *addr, readOnly: *readOnly, token: *token})
}

type uiOptions struct {
	addr     string
	readOnly bool
	token    string
}

// serveUI connects to brokers and serves the console until ctx ends.
func serveUI(ctx context.Context, io stdio, brokers string, o uiOptions) int {
	host, _, err := net.SplitHostPort(o.addr)
	if err != nil {
		return usageError(io, "ui", "--addr %q: give host:port, e.g. 127.0.0.1:8080", o.addr)
	}
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" && o.token == "" {
		fmt.Fprintf(io.err, "keel ui: warning: %s is reachable from other machines and no --auth-token is set: anyone who reaches it can read and write the cluster\n", o.addr)
	}
	client, err := connect(ctx, brokers)
	if err != nil {
		return failed(io, "ui", err)
	}
	defer client.Close(context.Background())
	srv, err := ui.New(ui.Config{Client: client, ReadOnly: o.readOnly, Token: o.token, Logger: slog.New(slog.NewTextHandler(io.err, nil))})
	if err != nil {
		return failed(io, "ui", err)
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return failed(io, "ui", fmt.Errorf("%w\n  is another keel ui running there? pick another --addr", err))
	}
	srv.RestrictHosts(ln.Addr()) // no DNS rebinding onto a loopback console
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	mode := ""
	if o.readOnly {
		mode = " (read-only)"
	}
	fmt.Fprintf(io.out, "keel ui: serving the console for %s on http://%s/%s\n", brokers, ln.Addr(), mode)

	select {
	case <-ctx.Done():
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			return failed(io, "ui", err)
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Close(shutdown) // ends live tails first, so Shutdown need not wait for them
	_ = hs.Shutdown(shutdown)
	return exitOK
}
