package ui

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
)

// Without a token, the console's only protection is that it listens on
// loopback — and a web page of any other site, open in the same browser,
// can still reach loopback. Two doors stay open unless closed here:
//
//   - Cross-site writes. A page can POST a "simple" request (text/plain or
//     form data) to http://127.0.0.1:8080 without a CORS preflight; the
//     JSON decoder would take its body all the same and produce, create a
//     topic or replay. Writes must therefore be application/json (which
//     forces a preflight the console never answers) and, when the browser
//     names an Origin, come from the console's own.
//   - DNS rebinding. A page of evil.example re-points its own name at
//     127.0.0.1 and then reads the API as same-origin. Its requests carry
//     Host: evil.example:8080, so a loopback console accepts only loopback
//     Host names.

// hostGuard holds the Host names a loopback listener accepts; nil accepts
// any (not yet restricted, or bound to a real interface by choice).
type hostGuard struct {
	mu    sync.Mutex
	hosts map[string]bool
}

// RestrictHosts makes the server accept only the loopback names of addr
// (127.0.0.1, localhost, [::1] with its port) when addr is a loopback
// address. Call it with the listener's address before serving.
func (s *Server) RestrictHosts(addr net.Addr) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return // a real interface: who may reach it is the operator's choice (and the token's)
	}
	port := fmt.Sprint(tcp.Port)
	hosts := map[string]bool{}
	for _, h := range []string{"127.0.0.1", "localhost", "[::1]", tcp.IP.String(), "[" + tcp.IP.String() + "]"} {
		hosts[h+":"+port] = true
	}
	s.hosts.mu.Lock()
	s.hosts.hosts = hosts
	s.hosts.mu.Unlock()
}

var (
	errForeignHost = &apiError{status: http.StatusMisdirectedRequest, msg: "this console answers only on its loopback address (127.0.0.1 or localhost with its port); the Host of this request is another name"}
	errNotJSON     = &apiError{status: http.StatusUnsupportedMediaType, msg: "writes take a JSON body: send Content-Type: application/json"}
	errCrossOrigin = &apiError{status: http.StatusForbidden, msg: "writes are accepted only from the console's own pages, not from another origin"}
)

// crossSite says why r must be refused as a request another site's page
// could have made, or nil.
func (s *Server) crossSite(r *http.Request) error {
	s.hosts.mu.Lock()
	hosts := s.hosts.hosts
	s.hosts.mu.Unlock()
	if hosts != nil && !hosts[strings.ToLower(r.Host)] {
		return errForeignHost
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead || !strings.HasPrefix(r.URL.Path, "/api/") {
		return nil
	}
	if ct := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Type"))); ct != "application/json" && !strings.HasPrefix(ct, "application/json;") {
		return errNotJSON
	}
	if o := r.Header.Get("Origin"); o != "" && !strings.EqualFold(o, "http://"+r.Host) && !strings.EqualFold(o, "https://"+r.Host) {
		return errCrossOrigin // "null" (a sandboxed frame, a file) is another origin too
	}
	return nil
}
