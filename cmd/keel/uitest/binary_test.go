package uitest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildKeel builds the keel binary into the test's temporary directory.
func buildKeel(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to build keel: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "keel")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, gobin, "build", "-buildvcs=false", "-o", bin, "github.com/keel-go/keel/cmd/keel").CombinedOutput()
	if err != nil {
		t.Fatalf("go build keel: %v\n%s", err, out)
	}
	return bin
}

var servingLine = regexp.MustCompile(`^keel ui: serving the console for (\S+) on (http://[^/ ]+)/`)

// `keel dev --ui` as a developer runs it: the console of the binary, with
// its embedded pages, on the cluster beside it; what its forms write,
// kcat reads.
func TestBrowserKeelDevUI(t *testing.T) {
	bin := buildKeel(t)
	cmd := exec.Command(bin, "dev", "--port", "0", "--brokers", "3", "--ui", "--ui-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "KEEL_BROKERS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	served := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				served <- m[1:]
			}
		}
		exited <- cmd.Wait()
	}()
	stopped := false
	stop := func() error {
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			return err
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			return fmt.Errorf("keel dev did not stop within 30 s of SIGINT\nstderr:\n%s", stderr.String())
		}
	}
	defer func() {
		if !stopped {
			_ = stop()
		}
	}()
	var brokers, url string
	select {
	case m := <-served:
		brokers, url = m[0], m[1]
	case err := <-exited:
		t.Fatalf("keel dev --ui exited (%v) before serving the console\nstderr:\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("keel dev --ui served no console within 60 s\nstderr:\n%s", stderr.String())
	}

	b := newTab(t, url)
	b.open("")
	b.waitUntil("three brokers", `document.querySelectorAll('main table tbody tr').length === 3`)
	b.open("topics")
	b.fill(`[data-testid="create-topic"] [name="name"]`, "signups")
	b.fill(`[data-testid="create-topic"] [name="partitions"]`, "1")
	b.click(`[data-testid="create-topic"] button[type="submit"]`)
	b.waitUntil("the new topic", `[...document.querySelectorAll('[data-testid="topics-table"] tbody tr')].some(tr => tr.children[0].textContent === 'signups')`)
	b.open("messages/signups")
	b.waitUntil("the produce form", `document.querySelector('[data-testid="produce"]')`)
	b.fill(`[data-testid="produce"] [name="key"]`, "user-1")
	b.fill(`[data-testid="produce"] [name="value"]`, `{"plan":"pro"}`)
	b.click(`[data-testid="produce"] button[type="submit"]`)
	b.waitUntil("the record in the page", `[...document.querySelectorAll('[data-testid="records-table"] tbody tr')].some(tr => tr.children[3].textContent === 'user-1')`)

	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv(requireBrowserEnv) == "1" {
			t.Fatalf("%s=1 (CI) but no kcat: %v", requireBrowserEnv, err)
		}
		t.Logf("no kcat (%v): the record was seen by the page only", err)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, kcat, "-C", "-b", strings.Split(brokers, ",")[0], "-t", "signups", "-o", "beginning", "-e", "-q", "-f", `%k=%s\n`).CombinedOutput()
		if err != nil || string(out) != "user-1={\"plan\":\"pro\"}\n" {
			t.Fatalf("kcat reads %q (%v), want the record the console's form wrote", out, err)
		}
	}

	if err := stop(); err != nil {
		t.Fatalf("keel dev after SIGINT: %v\nstderr:\n%s", err, stderr.String())
	}
}
