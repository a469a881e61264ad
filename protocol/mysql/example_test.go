package mysql_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/protocol/mysql"
)

// A proxy refuses a client in the protocol's own words: the mysql client
// prints "ERROR 1045 (28000): ...".
func ExampleWriteError() {
	var conn bytes.Buffer // the client connection
	mysql.WriteError(&conn, 3, mysql.CodeAccessDenied, mysql.StateAccessDenied,
		"your certificate expired at 2026-11-23T20:00:00Z; run pcl login, then pcl db login")
	b := conn.Bytes()
	fmt.Printf("length %d, sequence %d, ERR %#x, code %d, state %s\n", int(b[0])|int(b[1])<<8, b[3], b[4], int(b[5])|int(b[6])<<8, b[8:13])
	// Output: length 91, sequence 3, ERR 0xff, code 1045, state 28000
}

// The proxy's side of a session: the login, the certificate check, the
// hand-off to an agent, then bytes both ways.
func Example_proxy() {
	var (
		client    net.Conn    // accepted on the MySQL port
		proxyTLS  *tls.Config // the proxy's certificate; ClientAuth: tls.RequestClientCert
		dialAgent func() (net.Conn, error)
		connID    uint32 // unique among live sessions, e.g. random
	)
	hello, err := mysql.ServerHandshake(client, mysql.FrontendConfig{ConnectionID: connID, TLSConfig: proxyTLS})
	if err != nil {
		return // the client was told why, where it could be
	}
	if len(hello.Conn.ConnectionState().PeerCertificates) == 0 {
		hello.WriteError(mysql.CodeAccessDenied, mysql.StateAccessDenied, "no client certificate was sent: log in with pcl login and connect with pcl db connect NAME")
		return
	}
	// ... verify the certificate, check hello.Username against the route ...
	agent, err := dialAgent()
	if err != nil {
		hello.WriteError(mysql.CodeConnectionFailure, mysql.StateGeneral, "the proxy could not reach the database's agent; try again shortly")
		return
	}
	if err := mysql.WriteSessionStart(agent, hello.SessionStart()); err != nil {
		return
	}
	// The agent answers the login; copy both ways from here on.
}

// An agent's side of one session: read the hand-off, log in to the
// database with the agent's client certificate, accept the client's login
// and relay with audit.
func Example_agent() {
	var (
		ctx     = context.Background()
		conn    net.Conn      // the session from the proxy (over the tunnel, after mTLS)
		dbTLS   *tls.Config   // verifies the database; presents the client cert for the db user
		emitter audit.Emitter // asynchronous in production
		logger  = zap.NewNop()
		route   = audit.DatabaseMetadata{DatabaseService: "my1", DatabaseProtocol: "mysql", DatabaseUser: "alice", DatabaseName: "app"}
		ids     sync.Map // client-visible connection ID -> database thread ID, shared by sessions
	)
	start, err := mysql.ReadSessionStart(conn)
	if err != nil {
		return
	}
	dbConn, err := net.Dial("tcp", "db.internal:3306")
	if err != nil {
		start.WriteError(conn, mysql.CodeConnectionFailure, mysql.StateGeneral, "database my1 is down or unreachable from its agent; try again later")
		return
	}
	up, err := mysql.ConnectUpstream(ctx, dbConn, dbTLS, mysql.UpstreamParams{
		User: route.DatabaseUser, Database: route.DatabaseName, // the route decides
		Capabilities: start.Capabilities, Charset: start.Charset, Attributes: start.Attributes,
	})
	var se *mysql.ServerError
	switch {
	case mysql.IsPasswordRequired(err):
		start.WriteError(conn, mysql.CodeAccessDenied, mysql.StateAccessDenied, err.Error())
		return
	case errors.As(err, &se):
		se.Forward(conn, start.Sequence) // what the database said, e.g. Unknown database
		return
	case err != nil:
		start.WriteError(conn, mysql.CodeConnectionFailure, mysql.StateGeneral, "database my1 refused the agent's connection")
		return
	}
	defer up.Conn.Close()
	ids.Store(start.ConnectionID, up.ConnectionID)
	defer ids.Delete(start.ConnectionID)
	if err := start.WriteAuthOK(conn, up.Status); err != nil {
		return
	}
	relay := &mysql.Relay{
		Client:  conn,
		Server:  up.Conn,
		Emitter: emitter,
		Session: audit.DatabaseSessionMetadata{DatabaseMetadata: route},
		ConnIDs: func(id uint32) (uint32, bool) {
			real, ok := ids.Load(id) // in production: only the same user's sessions on the same database
			if !ok {
				return 0, false
			}
			return real.(uint32), true
		},
		Logger: logger,
	}
	stats, err := relay.Run(ctx)
	_ = stats // emit db.session.end with stats; err is a *PacketRefusedError for a refusal
}
