//go:build race

package main

// raceEnabled: the tests run with -race, so the keel binary they build
// is built with it too; otherwise the race detector would never see the
// code the CLI tests exercise (they run the binary, not run()).
const raceEnabled = true
