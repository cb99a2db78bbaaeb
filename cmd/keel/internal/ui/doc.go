// Package ui is keel's browser console: a JSON API over the admin
// package, a direct consumer, a producer and the retry package's replay,
// plus the static pages that use it, embedded in the binary.
//
// The server is an http.Handler (New), so tests drive it with httptest
// and `keel ui` serves it. Safety lives here, not in the pages: the
// server refuses writes when read-only, checks the bearer token, and
// sends a Content-Security-Policy that allows only its own script and
// style; the pages put record contents into the DOM as text only.
package ui
