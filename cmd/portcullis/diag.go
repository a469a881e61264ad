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

// diagRole serves the daemon's diagnostics on diag_addr: /healthz, and Go's
// profiler under /debug/pprof/ (CPU, heap, goroutines, execution traces),
// so that a running proxy or agent can be profiled where it is slow:
//
//	go tool pprof http://127.0.0.1:3000/debug/pprof/profile?seconds=10
//
// It has no authentication, so ParseConfig accepts only a loopback
// address for it.
type diagRole struct {
	log *zap.Logger
	l   net.Listener
	srv *http.Server
}

func prepareDiag(addr string, log *zap.Logger) (*diagRole, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("diag_addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	// The handlers of net/http/pprof, mounted on this mux only (the
	// package also registers them on http.DefaultServeMux, which nothing
	// here serves).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &diagRole{
		log: log,
		l:   l,
		// No WriteTimeout: a CPU profile or trace answers after the
		// seconds it was asked for.
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(log)},
	}, nil
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
