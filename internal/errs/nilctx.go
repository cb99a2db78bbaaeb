package errs

// ErrNilContext is the error of a keel call given a nil context.Context.
// keel treats it as bad input, not as a reason to panic: the call does
// nothing and says which method was misused.
var ErrNilContext = NewSentinel("keel: nil context.Context", false)

// NilContext returns the error for method (e.g. "Producer.Send") called
// with a nil ctx.
func NilContext(method string) error {
	return &Error{Detail: "keel: " + method + " was called with a nil context.Context; pass context.Background() or a ctx that bounds the call", Err: ErrNilContext}
}
