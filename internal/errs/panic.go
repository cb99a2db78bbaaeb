package errs

import (
	"fmt"
	"runtime/debug"
)

// ErrPanicked matches a *PanicError: user code keel called (a handler, a
// partitioner) panicked, and keel turned the panic into this error
// instead of letting it end the process from one of keel's goroutines.
var ErrPanicked = NewSentinel("keel: user code panicked", false)

// PanicError is a recovered panic of user code: what panicked, the value
// it panicked with, and the stack at the panic.
type PanicError struct {
	Where string // e.g. "handler", "partitioner"
	Value any
	Stack []byte
}

// Recovered returns the *PanicError for a value recover() returned, with
// the current stack (call it in the deferred function).
func Recovered(where string, value any) *PanicError {
	return &PanicError{Where: where, Value: value, Stack: debug.Stack()}
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("keel: the %s panicked: %v", e.Where, e.Value)
}

// Is matches ErrPanicked.
func (e *PanicError) Is(target error) bool { return target == ErrPanicked }

// Unwrap returns the panic value when it is an error (panic(err)), so
// errors.Is sees through to it.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}
