package dbagent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/protocol"
	"github.com/portcullis-db/portcullis/protocol/postgres"
)

// pgCancels maps the cancel keys the agent handed clients to the sessions
// they stand for.
type pgCancels struct {
	mu   sync.Mutex
	keys map[string]pgCancelTarget
}

type pgCancelTarget struct {
	db   *Database
	user string // the session's user: only their own sessions are cancelled
	real postgres.BackendKey
}

func keyString(k postgres.BackendKey) string {
	var b [4]byte
	b[0], b[1], b[2], b[3] = byte(k.ProcessID>>24), byte(k.ProcessID>>16), byte(k.ProcessID>>8), byte(k.ProcessID)
	return hex.EncodeToString(append(b[:], k.Secret...))
}

func (c *pgCancels) add(k postgres.BackendKey, t pgCancelTarget) string {
	s := keyString(k)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = map[string]pgCancelTarget{}
	}
	c.keys[s] = t
	return s
}

func (c *pgCancels) remove(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.keys, s)
}

func (c *pgCancels) get(k postgres.BackendKey) (pgCancelTarget, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.keys[keyString(k)]
	return t, ok
}

// servePostgres runs a PostgreSQL session: the client's startup (relayed
// by the proxy), the access check, the upstream connection as the route's
// database user, and the audited relay.
func (ss *session) servePostgres(ctx context.Context) (relay func()) {
	c := ss.conn
	c.SetDeadline(time.Now().Add(sessionHandshakeTimeout))
	msg, err := postgres.ReadStartup(c, postgres.MaxStartupSize)
	if err != nil {
		ss.log.Warn("cannot read the startup message from the proxy", zap.Error(err))
		return nil
	}
	startup, ok := msg.(*pgproto3.StartupMessage)
	if !ok {
		postgres.WriteError(c, postgres.CodeProtocolViolation, "expected a startup message")
		return nil
	}
	route := ss.id.Route
	dbUser, dbName := route.DBUser, route.DBName
	if dbName == "" {
		dbName = startup.Parameters["database"]
	}
	if dbName == "" {
		dbName = dbUser // PostgreSQL's own default
	}
	ss.meta = ss.metadata("postgres", dbUser, dbName)
	// A refusal is audited before the client is told, so that the event
	// is recorded (and stamped) before the client can act on the error.
	refuse := func(code, reason string) {
		ss.emitStart(reason)
		postgres.WriteError(c, code, reason)
	}
	if ss.db == nil {
		refuse(postgres.CodeInvalidCatalogName, fmt.Sprintf("database %q is not served by this agent; `pcl db ls` lists the databases you can reach", route.ServiceName))
		return nil
	}
	if ss.db.Protocol != "postgres" {
		refuse(postgres.CodeInvalidCatalogName, fmt.Sprintf("database %q is not a PostgreSQL database", route.ServiceName))
		return nil
	}
	if r := startup.Parameters["replication"]; r != "" && r != "false" && r != "off" && r != "no" && r != "0" {
		// A replication connection speaks another protocol, whose commands
		// the relay would not audit.
		refuse(postgres.CodeProtocolViolation, "replication connections are not supported through Portcullis; connect for queries only")
		return nil
	}
	if err := ss.svc.authorize(ctx, ss.id, ss.db, dbUser, dbName); err != nil {
		var ue *unavailableError
		code := postgres.CodeInvalidAuthorization
		if errors.As(err, &ue) {
			code = postgres.CodeConnectionFailure
		}
		refuse(code, err.Error())
		return nil
	}
	cert, err := ss.svc.dbCerts.get(ctx, dbUser)
	if err != nil {
		ss.log.Error("cannot get a database client certificate", zap.Error(err))
		refuse(postgres.CodeConnectionFailure, fmt.Sprintf("the database agent could not get a certificate for database user %q; try again shortly", dbUser))
		return nil
	}
	tlsCfg, err := ss.upstreamTLS(cert)
	if err != nil {
		ss.log.Error("database TLS is misconfigured", zap.Error(err))
		refuse(postgres.CodeConnectionFailure, fmt.Sprintf("database %q is misconfigured on its agent; ask an administrator to check its tls settings", ss.db.Name))
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, sessionHandshakeTimeout)
	defer cancel()
	raw, err := ss.svc.dialUpstream(dctx, ss.db.URI)
	if err != nil {
		ss.log.Warn("cannot reach the database", zap.String("uri", ss.db.URI), zap.Error(err))
		refuse(postgres.CodeConnectionFailure, fmt.Sprintf("database %q is down or unreachable from its agent; try again later", ss.db.Name))
		return nil
	}
	if err := postgres.NegotiateProtocol(c, startup); err != nil {
		raw.Close()
		return nil
	}
	params := make(map[string]string, len(startup.Parameters)+2)
	for k, v := range startup.Parameters {
		params[k] = v
	}
	params["user"], params["database"] = dbUser, dbName
	up, err := postgres.ConnectUpstream(dctx, raw, tlsCfg, params)
	if err != nil {
		var se *postgres.ServerError
		switch {
		case errors.As(err, &se):
			ss.emitStart(se.Error())
			se.Forward(c)
		case postgres.IsPasswordRequired(err):
			refuse(postgres.CodeInvalidAuthorization, err.Error())
		default:
			ss.log.Warn("cannot start a session with the database", zap.Error(err))
			refuse(postgres.CodeConnectionFailure, fmt.Sprintf("database %q refused the agent's connection; an administrator can find why in the agent's log", ss.db.Name))
		}
		return nil
	}
	relayed := false
	defer func() {
		if !relayed {
			up.Conn.Close()
		}
	}()
	key, err := postgres.NewBackendKey(rand.Reader)
	if err != nil {
		return nil
	}
	ks := ss.svc.pgCancels.add(key, pgCancelTarget{db: ss.db, user: ss.id.Username, real: up.Key})
	if err := up.ReplayStartup(c, key); err != nil {
		ss.svc.pgCancels.remove(ks)
		return nil
	}
	ss.emitStart("")
	ss.logStarted()
	c.SetDeadline(time.Time{})
	relayed = true
	return func() {
		defer up.Conn.Close()
		defer ss.svc.pgCancels.remove(ks)
		ss.relayPostgres(ctx, c, up)
	}
}

// relayPostgres relays a started session and records its end.
func (ss *session) relayPostgres(ctx context.Context, c net.Conn, up *postgres.Upstream) {
	started := time.Now()
	relay := &postgres.Relay{
		Client:      c,
		Server:      up.Conn,
		Emitter:     ss.svc.Emitter,
		ClusterName: ss.svc.Credentials.Current().ClusterName,
		Session:     ss.meta,
		Logger:      ss.log,
		Buffers:     ss.svc.pgBuffers(),
	}
	stats, err := relay.Run(ctx)
	reason := ""
	if postgres.IsMessageRefused(err) {
		reason = err.Error()
	}
	ss.emitEnd(started, stats.BytesFromClient, stats.BytesToClient, reason)
}

// cancelPostgres forwards a CancelRequest for one of this agent's
// sessions to its database, if the key is known and the session is the
// requester's.
func (ss *session) cancelPostgres(ctx context.Context, ck *protocol.CancelKey) {
	if ck == nil {
		return
	}
	t, ok := ss.svc.pgCancels.get(postgres.BackendKey{ProcessID: ck.ProcessID, Secret: ck.Secret})
	if !ok || t.user != ss.id.Username {
		ss.log.Info("ignored a cancel request for an unknown session")
		return
	}
	cert, err := ss.svc.dbCerts.get(ctx, ss.id.Route.DBUser)
	if err != nil {
		return
	}
	ss.db = t.db
	tlsCfg, err := ss.upstreamTLS(cert)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sessionHandshakeTimeout)
	defer cancel()
	err = postgres.SendCancel(ctx, func(ctx context.Context) (net.Conn, error) {
		return ss.svc.dialUpstream(ctx, t.db.URI)
	}, tlsCfg, t.real)
	if err != nil {
		ss.log.Warn("cannot send a cancel request to the database", zap.Error(err))
		return
	}
	ss.log.Info("cancelled a query", zap.String("db", t.db.Name))
}

func (s *Service) dialUpstream(ctx context.Context, addr string) (net.Conn, error) {
	if s.UpstreamDialer != nil {
		return s.UpstreamDialer(ctx, "tcp", addr)
	}
	return (&net.Dialer{Timeout: sessionHandshakeTimeout, KeepAlive: 30 * time.Second}).DialContext(ctx, "tcp", addr)
}
