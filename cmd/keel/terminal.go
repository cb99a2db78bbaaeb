package main

import "os"

// isTerminal reports whether f is a character device (a terminal). It
// avoids a dependency on x/term: a terminal is what progress lines need,
// and a character device is a good enough test for that.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
