package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/internal/clientlink"
	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/errs"
	"github.com/keel-go/keel/internal/meta"
)

// Admin runs administrative requests through one keel.Client. It holds no
// connections or goroutines of its own, so it needs no Close: close the
// client when done. It is safe for concurrent use.
type Admin struct {
	client  *keel.Client
	pool    *conn.Pool
	meta    *meta.Meta
	logger  *slog.Logger
	backoff conn.Backoff
	// attempts bounds every retry loop, so a call whose ctx has no
	// deadline still ends when the cluster keeps answering with a
	// retriable error.
	attempts int
	// settle bounds how long CreateTopics waits for the new topics'
	// leaders to show in metadata.
	settle time.Duration
}

// New returns an Admin that uses client's connections and cluster view.
func New(client *keel.Client) (*Admin, error) {
	in, ok := clientlink.Of(client)
	if !ok {
		return nil, &keel.ConfigError{Option: "client", Problem: "is nil", Fix: "pass the *keel.Client returned by keel.NewClient"}
	}
	return &Admin{
		client:   client,
		pool:     in.Pool,
		meta:     in.Meta,
		logger:   in.Logger,
		backoff:  conn.Backoff{Min: 100 * time.Millisecond, Max: time.Second},
		attempts: 15,
		settle:   10 * time.Second,
	}, nil
}

// send sends req to the broker at addr on the shared general-purpose
// connection; the connection negotiates the request's version.
func (a *Admin) send(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error) {
	c, err := a.pool.Get(ctx, addr, conn.General)
	if err != nil {
		return nil, err
	}
	return c.Request(ctx, req)
}

// sendTo sends req to broker id, looked up in the current metadata.
func (a *Admin) sendTo(ctx context.Context, id int32, req kmsg.Request) (kmsg.Response, string, error) {
	addr, ok := a.meta.BrokerAddr(id)
	if !ok {
		return nil, "", &errs.Error{
			Retriable: true,
			Detail:    fmt.Sprintf("broker %d is not in the cluster metadata", id),
			Err:       errs.ErrBrokerUnreachable,
		}
	}
	resp, err := a.send(ctx, addr, req)
	return resp, addr, err
}

// retry counts the attempts of one operation and waits between them.
type retry struct {
	a *Admin
	n int
}

func (a *Admin) newRetry() *retry { return &retry{a: a} }

// wait sleeps before the next attempt. It returns an error (last, or the
// ctx's end joined with last) when no further attempt may be made.
func (r *retry) wait(ctx context.Context, last error) error {
	r.n++
	if r.n >= r.a.attempts {
		return last
	}
	t := time.NewTimer(r.a.backoff.Delay(r.n))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx, last)
	}
}

// ctxErr is the ctx's error, carrying the last failure seen before it
// ended so the person reading it learns why the call did not finish.
func ctxErr(ctx context.Context, last error) error {
	if last == nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w (last error: %w)", ctx.Err(), last)
}

// codeErr turns a non-zero Kafka code into an *errs.Error whose Detail
// says what keel was doing, and carries the broker's message.
func codeErr(code int16, broker string, msg *string, detail string) *errs.Error {
	info := errs.Lookup(code)
	e := &errs.Error{Code: code, Name: info.Name, Broker: broker, Retriable: info.Retriable, Detail: detail}
	if msg != nil {
		e.Message = *msg
	}
	return e
}

// retriable reports whether err (a request failure, not a Kafka code) is
// worth another attempt.
func retriable(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, errs.ErrClosed) && errs.IsRetriable(err)
}
