// Command pcl is the user's client of a Portcullis cluster: it logs in
// (a key made locally, a short-lived certificate from the cluster), shows
// the login, logs out, and sets a new user's password with a sign-up
// token. `pcl db` lists the databases the user may reach, gets route
// certificates for them and starts psql or mysql through the proxy
// (ls, login, connect, config, env, logout). `pcl bench` measures a
// database's latency and throughput through the cluster, side by side with
// a direct connection (--direct DSN).
//
// The profile lives in $PORTCULLIS_HOME (default ~/.portcullis); see the
// client package for its layout.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first Ctrl-C cancels what is under way; a second one kills.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
