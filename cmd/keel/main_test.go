package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"nope"}, stdio{out: &out, err: &errOut}); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(errOut.String(), `unknown command "nope"`) {
		t.Fatal(errOut.String())
	}
}

func TestHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, stdio{out: &out, err: &errOut}); code != 0 || !strings.Contains(out.String(), "Examples:") {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"demo", "-h"}, stdio{out: &out, err: &errOut}); code != 0 || !strings.Contains(errOut.String(), "embedded") {
		t.Fatalf("demo -h exit %d: %s", code, errOut.String())
	}
}
