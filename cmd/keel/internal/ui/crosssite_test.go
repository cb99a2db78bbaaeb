package ui

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/keel-go/keel/keeltest"
)

// A page of another site can reach a loopback console from the user's
// browser; it must not be able to write (cross-site "simple" POSTs) or to
// read through a rebound DNS name.
func TestCrossSiteRequestsRefused(t *testing.T) {
	f := newFixture(t, Config{}, keeltest.Topic("orders", 1))
	post := func(contentType, origin string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", f.srv.URL+"/api/topics/orders/messages", strings.NewReader(`{"value":"from another site"}`))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	// What a form or a no-cors fetch of another page can send without a
	// preflight.
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		if code := post(ct, ""); code != http.StatusUnsupportedMediaType {
			t.Errorf("POST with Content-Type %q: status %d, want 415", ct, code)
		}
	}
	for _, o := range []string{"http://evil.example", "null"} {
		if code := post("application/json", o); code != http.StatusForbidden {
			t.Errorf("POST from origin %q: status %d, want 403", o, code)
		}
	}
	if hw := f.cluster.HighWatermark("orders", 0); hw != 0 {
		t.Fatalf("a refused cross-site write produced %d record(s)", hw)
	}
	// The console's own page: JSON, its own origin.
	if code := post("application/json", "http://"+f.srv.Listener.Addr().String()); code != http.StatusOK {
		t.Fatalf("POST from the console's own origin: status %d", code)
	}
	if code := post("application/json; charset=utf-8", ""); code != http.StatusOK {
		t.Fatalf("POST without Origin (curl, scripts): status %d", code)
	}

	// DNS rebinding: once restricted to its loopback names, another Host
	// is refused, for reads too.
	addr := f.srv.Listener.Addr()
	f.srv.Config.Handler.(*Server).RestrictHosts(addr)
	port := addr.(*net.TCPAddr).Port
	for host, want := range map[string]int{
		fmt.Sprintf("evil.example:%d", port): http.StatusMisdirectedRequest,
		fmt.Sprintf("localhost:%d", port):    http.StatusOK,
		fmt.Sprintf("127.0.0.1:%d", port):    http.StatusOK,
		fmt.Sprintf("127.0.0.1:%d", port+1):  http.StatusMisdirectedRequest,
	} {
		req, _ := http.NewRequest("GET", f.srv.URL+"/api/topics", nil)
		req.Host = host
		res, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET with Host %s: status %d, want %d", host, res.StatusCode, want)
		}
	}
}
