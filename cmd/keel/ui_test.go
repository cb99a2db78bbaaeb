package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// consoleURL is the address the "keel ui: serving ... on http://ADDR/"
// line names.
var consoleURL = regexp.MustCompile(`on (http://[^/ ]+)/`)

func TestUIServesReadOnlyUntilInterrupted(t *testing.T) {
	cluster := testCluster(t)
	d, line := startKeel(t, "keel ui: serving", "ui", "-b", cluster.Addr(), "--addr", "127.0.0.1:0", "--read-only")
	m := consoleURL.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no address in %q", line)
	}
	base := m[1]
	res, err := http.Get(base + "/api/config")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	json.NewDecoder(res.Body).Decode(&cfg)
	res.Body.Close()
	if cfg["readOnly"] != true {
		t.Fatalf("config %v", cfg)
	}
	res, err = http.Post(base+"/api/topics", "application/json", strings.NewReader(`{"name":"x","partitions":1}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("write on a read-only console: %d", res.StatusCode)
	}
	d.interrupt(t)
}

func TestDevWithUI(t *testing.T) {
	d := startDev(t, "--port", "0", "--brokers", "1", "--ui", "--ui-addr", "127.0.0.1:0")
	var line string
	select {
	case line = <-d.served:
	case <-time.After(30 * time.Second):
		t.Fatalf("keel dev --ui served no console\nstderr:\n%s", d.stderr.String())
	}
	m := consoleURL.FindStringSubmatch(line)
	if m == nil || !strings.Contains(line, d.brokers) {
		t.Fatalf("console line %q does not name the cluster %s", line, d.brokers)
	}
	res, err := http.Get(m[1] + "/api/overview")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("overview: %d", res.StatusCode)
	}
	d.interrupt(t)
}

func TestUIUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"ui", "-b", "127.0.0.1:1", "--addr", "nonsense"},
		{"ui", "-b", "127.0.0.1:1", "extra"},
	} {
		r := runBinary(t, nil, args...)
		if r.code != exitUsage {
			t.Errorf("keel %v: exit %d, want %d\n%s", args, r.code, exitUsage, r.stderr)
		}
	}
}
