package main

import (
	"errors"
	"syscall"
)

// errStdoutClosed: the reader of stdout went away (keel consume ... |
// head -1). keel consume ends then as if interrupted: it commits what it
// wrote and exits 0, as a filter in a pipeline should.
var errStdoutClosed = errors.New("stdout was closed")

// isClosedPipe says err is a write to a pipe nobody reads any more. main
// asks for SIGPIPE (signal.Notify), so such a write returns EPIPE instead
// of killing the process before it commits what it printed.
func isClosedPipe(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, errStdoutClosed)
}
