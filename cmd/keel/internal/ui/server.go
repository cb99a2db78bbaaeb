package ui

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/keel-go/keel"
	"github.com/keel-go/keel/admin"
)

//go:embed static
var staticFiles embed.FS

// Config is what a Server needs.
type Config struct {
	// Client is the connection to the cluster (required). The server does
	// not close it.
	Client *keel.Client
	// ReadOnly hides and refuses every write: creating topics, adding
	// partitions, producing, resetting offsets and replaying dead letters.
	ReadOnly bool
	// Token, when set, is required as "Authorization: Bearer TOKEN" on
	// every API call (the pages keep it in the browser's session storage,
	// entered once). The static pages themselves are served without it:
	// they hold no data.
	Token string
	// Logger receives one line per failed API call; default: discard.
	Logger *slog.Logger
	// RequestTimeout bounds each API call's work on the cluster
	// (default 15 s).
	RequestTimeout time.Duration
}

// Server serves the console's pages and JSON API.
type Server struct {
	cfg   Config
	admin *admin.Admin
	mux   *http.ServeMux
	tail  tailLimits
	// closing ends live streams (tails, lag updates) when Close is called.
	closing context.Context
	stop    context.CancelFunc
	prod    lazyProducer
	hosts   hostGuard // see crosssite.go
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Client == nil {
		return nil, errors.New("ui: Config.Client is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 15 * time.Second
	}
	adm, err := admin.New(cfg.Client)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, admin: adm, mux: http.NewServeMux(), tail: defaultTailLimits}
	s.closing, s.stop = context.WithCancel(context.Background())
	s.prod.client = cfg.Client
	s.routes()
	return s, nil
}

// Close ends live streams and closes the producer the server made for
// produce and replay, if any.
func (s *Server) Close(ctx context.Context) error {
	s.stop()
	return s.prod.close(ctx)
}

func (s *Server) routes() {
	static, _ := fs.Sub(staticFiles, "static")
	files := http.FileServerFS(static)
	s.mux.Handle("GET /", files)

	// The config (read-only? token needed?) is public: the page needs it
	// to ask for the token, and it holds no cluster data.
	s.mux.HandleFunc("GET /api/config", s.jsonHandler(s.getConfig))
	s.api("GET /api/overview", s.getOverview)
	s.api("GET /api/topics", s.listTopics)
	s.api("GET /api/topics/{topic}", s.getTopic)
	s.api("GET /api/topics/{topic}/messages", s.getMessages)
	s.mux.HandleFunc("GET /api/topics/{topic}/tail", s.guard(s.tailMessages))
	s.api("GET /api/groups", s.listGroups)
	s.api("GET /api/groups/{group}", s.getGroup)
	s.api("POST /api/groups/{group}/reset-offsets", s.resetOffsets) // preview unless execute; refused read-only only when executing
	s.api("GET /api/deadletters", s.listDeadLetterTopics)

	s.write("POST /api/topics", s.createTopic)
	s.write("POST /api/topics/{topic}/partitions", s.addPartitions)
	s.write("POST /api/topics/{topic}/messages", s.produce)
	s.write("POST /api/deadletters/{topic}/replay", s.replay)
}

// apiFunc is an API handler: it returns the JSON answer or an error that
// writeError turns into a status and a JSON body.
type apiFunc func(ctx context.Context, r *http.Request) (any, error)

// api registers a read endpoint.
func (s *Server) api(pattern string, h apiFunc) {
	s.mux.HandleFunc(pattern, s.guard(s.jsonHandler(h)))
}

// write registers an endpoint that changes the cluster: refused when the
// server is read-only.
func (s *Server) write(pattern string, h apiFunc) {
	s.mux.HandleFunc(pattern, s.guard(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.ReadOnly {
			writeError(w, errReadOnly)
			return
		}
		s.jsonHandler(h)(w, r)
	}))
}

func (s *Server) jsonHandler(h apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		v, err := h(ctx, r)
		if err != nil {
			s.cfg.Logger.Warn("ui: API call failed", "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// guard checks the bearer token of an API call.
func (s *Server) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token != "" && !s.tokenOK(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="keel ui"`)
			writeError(w, errUnauthorized)
			return
		}
		h(w, r)
	}
}

func (s *Server) tokenOK(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		// EventSource cannot send headers: the live streams take the
		// token as a query parameter instead.
		got = r.URL.Query().Get("token")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}

// ServeHTTP serves the console, with the security headers on every answer.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Only the console's own script and style run; record contents can
	// never bring their own (the pages also insert them as text only).
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if err := s.crossSite(r); err != nil {
		writeError(w, err)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) getConfig(ctx context.Context, r *http.Request) (any, error) {
	return map[string]any{"readOnly": s.cfg.ReadOnly, "auth": s.cfg.Token != ""}, nil
}
