// Package clientlink lets keel's own public packages (admin, retry) reach
// the connection pool and cluster view of a keel.Client without making them
// part of keel's public API. Package keel registers the accessor at init;
// nothing outside this module can import an internal package, so users
// only ever see keel.Client's documented methods.
package clientlink

import (
	"log/slog"

	"github.com/keel-go/keel/internal/conn"
	"github.com/keel-go/keel/internal/meta"
)

// Internals are the shared parts of one keel.Client.
type Internals struct {
	Pool   *conn.Pool
	Meta   *meta.Meta
	Logger *slog.Logger
}

var accessor func(client any) (Internals, bool)

// Register is called once, by package keel's init.
func Register(fn func(client any) (Internals, bool)) { accessor = fn }

// Of returns the internals of client, which must be a *keel.Client; false
// when it is not (or is nil).
func Of(client any) (Internals, bool) {
	if accessor == nil {
		return Internals{}, false
	}
	return accessor(client)
}
