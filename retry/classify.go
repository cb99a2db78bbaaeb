package retry

import "errors"

// PermanentError marks a handler error that retrying cannot fix (a record
// that does not parse, a reference to something that does not exist): the
// record goes to the dead-letter topic at once. Make one with Permanent.
type PermanentError struct{ Err error }

// Permanent wraps err so that the policy dead-letters the record at once
// instead of retrying it. Permanent(nil) is nil.
//
//	if err := json.Unmarshal(m.Value, &order); err != nil {
//		return retry.Permanent(fmt.Errorf("order %s does not parse: %w", m.Key, err))
//	}
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Error returns the wrapped error's text.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err, or an error it wraps, was made with
// Permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// permanent decides whether a handler error must skip the remaining
// attempts: marked with Permanent, or so classified by the user's
// function.
func (c *config) permanent(err error) bool {
	if IsPermanent(err) {
		return true
	}
	return c.permanentIf != nil && c.permanentIf(err)
}

// ErrHandlerPanicked matches the error of an attempt whose handler
// panicked. A panic is a failed attempt like any other (retried, then
// dead-lettered), so that one record that trips a bug does not crash the
// process again and again; classify it with PermanentIf(func(err error)
// bool { return errors.Is(err, retry.ErrHandlerPanicked) }) to send such
// records to the dead-letter topic at once.
var ErrHandlerPanicked = errors.New("retry: handler panicked")
