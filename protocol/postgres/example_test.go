package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/protocol/postgres"
)

// A proxy refuses a client in the protocol's own words: psql prints the
// message after "FATAL:".
func ExampleWriteError() {
	var conn bytes.Buffer // the client connection
	postgres.WriteError(&conn, postgres.CodeInvalidAuthorization,
		"certificate for alice expired at 2026-11-23T20:00:00Z; run pcl login again")

	msg, _ := pgproto3.NewFrontend(&conn, io.Discard).Receive()
	e := msg.(*pgproto3.ErrorResponse)
	fmt.Printf("%s %s: %s\n", e.Severity, e.Code, e.Message)
	// Output: FATAL 28000: certificate for alice expired at 2026-11-23T20:00:00Z; run pcl login again
}

// An agent's side of one session: read the client's startup, log in to the
// database with the agent's client certificate, hand the client a
// substitute cancel key, then relay with audit.
func Example_agent() {
	var (
		ctx       = context.Background()
		client    net.Conn       // the client's session (over the tunnel, after mTLS)
		dbTLS     *tls.Config    // verifies the database; presents the client cert for the db user
		emitter   audit.Emitter  // asynchronous in production
		logger    = zap.NewNop() // the agent's logger
		route     = audit.DatabaseMetadata{DatabaseService: "pg1", DatabaseProtocol: "postgres", DatabaseUser: "alice", DatabaseName: "app"}
		cancelMap = map[uint32]postgres.BackendKey{} // substitute pid -> real key, shared by sessions
	)
	msg, err := postgres.ReadStartup(client, 0)
	if err != nil {
		return
	}
	startup, ok := msg.(*pgproto3.StartupMessage)
	if !ok {
		return // a CancelRequest: look its key up in cancelMap and call SendCancel
	}
	if err := postgres.NegotiateProtocol(client, startup); err != nil {
		return
	}
	params := startup.Parameters
	params["user"], params["database"] = route.DatabaseUser, route.DatabaseName // the route decides

	dbConn, err := net.Dial("tcp", "db.internal:5432")
	if err != nil {
		postgres.WriteError(client, postgres.CodeConnectionFailure, "database pg1 is unreachable; try again later")
		return
	}
	up, err := postgres.ConnectUpstream(ctx, dbConn, dbTLS, params)
	if err != nil {
		var se *postgres.ServerError
		if errors.As(err, &se) {
			se.Forward(client) // the database's own words
		} else {
			postgres.WriteError(client, postgres.CodeConnectionFailure, err.Error())
		}
		return
	}
	key, err := postgres.NewBackendKey(rand.Reader)
	if err != nil {
		return
	}
	cancelMap[key.ProcessID] = up.Key
	if err := up.ReplayStartup(client, key); err != nil {
		return
	}
	relay := &postgres.Relay{
		Client:      client,
		Server:      up.Conn,
		Emitter:     emitter,
		ClusterName: "example",
		Session: audit.DatabaseSessionMetadata{
			SessionMetadata:    audit.SessionMetadata{SessionID: "9b1d7c3e-5a4f-4e21-8c6d-2f0e1a3b4c5d"},
			UserMetadata:       audit.UserMetadata{User: "alice", Roles: []string{"access"}},
			DatabaseMetadata:   route,
			ConnectionMetadata: audit.ConnectionMetadata{ClientAddr: "203.0.113.7:51234"},
		},
		Logger: logger,
	}
	stats, err := relay.Run(ctx)
	logger.Info("session ended", zap.Int64("bytes_in", stats.BytesFromClient), zap.Int64("bytes_out", stats.BytesToClient), zap.Error(err))
}
