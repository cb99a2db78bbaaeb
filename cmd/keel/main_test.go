package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestDemoRunsAndExitsZero(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	start := time.Now()
	if code := run(ctx, []string{"demo"}, stdio{out: &out, err: &errOut}); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("demo took %v, over its 30s promise", took)
	}
	for _, want := range []string{"broker 0 at 127.0.0.1:", "topic orders", "6 partitions", "leader", "ErrUnknownTopic) = true", `topic "ordres" does not exist`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

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
