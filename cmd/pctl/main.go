// Command pctl is the administrator's tool of a Portcullis cluster: users,
// roles, join tokens, locks, CA export, database server certificates and
// the cluster's status.
//
// On the Auth host it reads the admin identity and the API address that
// the Auth service writes into its data dir (--data-dir, or
// PORTCULLIS_DATA_DIR); from elsewhere it takes --auth HOST:PORT and
// --identity FILE.
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
