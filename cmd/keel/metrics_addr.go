package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keel-go/keel"
	kprom "github.com/keel-go/keel/plugin/prometheus"
)

// metricsFlag adds --metrics-addr to a command that makes a client.
func metricsFlag(fs *flag.FlagSet) *string {
	return fs.String("metrics-addr", "", "serve Prometheus metrics (keel_*, Go runtime) at http://`ADDR`/metrics while running, e.g. 127.0.0.1:9100")
}

// metricsServer is --metrics-addr's HTTP server.
type metricsServer struct {
	srv  *http.Server
	done chan struct{}
}

// startMetrics listens on addr and serves /metrics from a registry of its
// own holding the plugin's metrics; the returned option installs them in
// the client. addr "" serves nothing and gives no option.
func startMetrics(addr string, io stdio) ([]keel.ClientOption, *metricsServer, error) {
	if addr == "" {
		return nil, nil, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := kprom.New(kprom.Registerer(reg), kprom.PartitionLabels())
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s := &metricsServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(io.err, "keel: metrics server: %v\n", err)
		}
	}()
	fmt.Fprintf(io.err, "serving metrics on http://%s/metrics\n", ln.Addr())
	return []keel.ClientOption{keel.WithHooks(m)}, s, nil
}

// stop shuts the server down and waits for it; nil-safe.
func (s *metricsServer) stop() {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		s.srv.Close()
	}
	<-s.done
}
