package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"
)

// diagRole serves the daemon's diagnostics on diag_addr:
//
//   - /healthz: 200 while the process runs;
//   - /readyz: 200 when every role can do its work, else 503 with a line
//     per role that cannot (the database agent is ready while at least one
//     of its reverse tunnels is up; the Auth service and the proxy once they
//     listen), for a load balancer or an orchestrator's readiness probe;
//   - Go's profiler under /debug/pprof/ (CPU, heap, goroutines, execution
//     traces), so that a running proxy or agent can be profiled where it is
//     slow.
//
// For example:
//
//	go tool pprof http://127.0.0.1:3000/debug/pprof/profile?seconds=10
//
// It has no authentication, so ParseConfig accepts only a loopback
// address for it.
type diagRole struct {
	log *zap.Logger
	l   net.Listener
	srv *http.Server

	// checks are the roles' readiness, set before run.
	checks []readiness
}

// readiness is a role's answer to /readyz: nil when it is ready, else why
// not, in one sentence.
type readiness struct {
	role  string
	ready func() error
}

func (d *diagRole) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var problems []string
	for _, c := range d.checks {
		if err := c.ready(); err != nil {
			problems = append(problems, c.role+": "+err.Error())
		}
	}
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, p := range problems {
			fmt.Fprintln(w, p)
		}
		return
	}
	fmt.Fprintln(w, "ok")
}

func prepareDiag(addr string, log *zap.Logger) (*diagRole, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("diag_addr: %w", err)
	}
	d := &diagRole{log: log, l: l}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", d.readyz)
	// The handlers of net/http/pprof, mounted on this mux only (the
	// package also registers them on http.DefaultServeMux, which nothing
	// here serves).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No WriteTimeout: a CPU profile or trace answers after the seconds it
	// was asked for.
	d.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(log)}
	return d, nil
}

func (d *diagRole) run(ctx context.Context) error {
	d.log.Info("diagnostics listening", zap.String("addr", d.l.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- d.srv.Serve(d.l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("diagnostics: %w", err)
	case <-ctx.Done():
		// Nothing here is worth waiting for: a profile under way is cut.
		d.srv.Close()
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

func (d *diagRole) Close() error {
	d.srv.Close()
	return d.l.Close()
}

// checkDiagAddr accepts host:port whose host is a loopback address or
// localhost.
func checkDiagAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("diag_addr %q is not host:port", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("diag_addr %q is not a loopback address; the diagnostics have no authentication, so use 127.0.0.1:PORT", addr)
}
