package dbagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/protocol/mysql"
)

// mysqlConns maps the connection IDs the proxy's greeting gave clients to
// the database's own IDs of those sessions, so that KILL (the mysql
// client's Ctrl-C sends KILL QUERY with the ID it was given) reaches the
// right session, and only the same user's.
type mysqlConns struct {
	mu  sync.Mutex
	ids map[uint32]mysqlConn
}

type mysqlConn struct {
	server uint32
	user   string
	db     string
}

func (m *mysqlConns) add(client uint32, c mysqlConn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ids == nil {
		m.ids = map[uint32]mysqlConn{}
	}
	m.ids[client] = c
}

func (m *mysqlConns) remove(client uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.ids, client)
}

// lookup translates a client-visible ID of one of user's sessions on db.
func (m *mysqlConns) lookup(client uint32, user, db string) (uint32, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.ids[client]
	if !ok || c.user != user || c.db != db {
		return 0, false
	}
	return c.server, true
}

// serveMySQL runs a MySQL session: the login the proxy hands over, the
// access check, the upstream login as the route's database user, and the
// audited relay.
func (ss *session) serveMySQL(ctx context.Context) (relay func()) {
	c := ss.conn
	c.SetDeadline(time.Now().Add(sessionHandshakeTimeout))
	start, err := mysql.ReadSessionStart(c)
	if err != nil {
		ss.log.Warn("cannot read the session start from the proxy", zap.Error(err))
		return nil
	}
	route := ss.id.Route
	dbUser, dbName := route.DBUser, route.DBName
	if dbName == "" {
		dbName = start.Database
	}
	ss.meta = ss.metadata("mysql", dbUser, dbName)
	refuse := func(code uint16, state, reason string) {
		ss.emitStart(reason)
		start.WriteError(c, code, state, reason)
	}
	if ss.db == nil || ss.db.Protocol != "mysql" {
		refuse(mysql.CodeBadDB, mysql.StateSyntax, fmt.Sprintf("database %q is not a MySQL database served by this agent; `pcl db ls` lists the databases you can reach", route.ServiceName))
		return nil
	}
	if err := ss.svc.authorize(ctx, ss.id, ss.db, dbUser, dbName); err != nil {
		var ue *unavailableError
		if errors.As(err, &ue) {
			refuse(mysql.CodeConnectionFailure, mysql.StateGeneral, err.Error())
		} else {
			refuse(mysql.CodeAccessDenied, mysql.StateAccessDenied, err.Error())
		}
		return nil
	}
	cert, err := ss.svc.dbCerts.get(ctx, dbUser)
	if err != nil {
		ss.log.Error("cannot get a database client certificate", zap.Error(err))
		refuse(mysql.CodeConnectionFailure, mysql.StateGeneral, fmt.Sprintf("the database agent could not get a certificate for database user %q; try again shortly", dbUser))
		return nil
	}
	tlsCfg, err := ss.upstreamTLS(cert)
	if err != nil {
		ss.log.Error("database TLS is misconfigured", zap.Error(err))
		refuse(mysql.CodeConnectionFailure, mysql.StateGeneral, fmt.Sprintf("database %q is misconfigured on its agent; ask an administrator to check its tls settings", ss.db.Name))
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, sessionHandshakeTimeout)
	defer cancel()
	raw, err := ss.svc.dialUpstream(dctx, ss.db.URI)
	if err != nil {
		ss.log.Warn("cannot reach the database", zap.String("uri", ss.db.URI), zap.Error(err))
		refuse(mysql.CodeConnectionFailure, mysql.StateGeneral, fmt.Sprintf("database %q is down or unreachable from its agent; try again later", ss.db.Name))
		return nil
	}
	attrs := make(map[string]string, len(start.Attributes)+1)
	for k, v := range start.Attributes {
		attrs[k] = v
	}
	attrs["portcullis_user"] = ss.id.Username
	up, err := mysql.ConnectUpstream(dctx, raw, tlsCfg, mysql.UpstreamParams{
		User:               dbUser,
		Database:           dbName,
		Capabilities:       start.Capabilities,
		Charset:            start.Charset,
		Attributes:         attrs,
		AllowLoadDataLocal: ss.db.AllowLoadDataLocal,
	})
	if err != nil {
		var se *mysql.ServerError
		switch {
		// A password demand also unwraps to the server's error: say why
		// in our words before forwarding the server's.
		case mysql.IsPasswordRequired(err):
			refuse(mysql.CodeAccessDenied, mysql.StateAccessDenied, err.Error())
		case errors.As(err, &se):
			ss.emitStart(se.Error())
			se.Forward(c, start.Sequence)
		case mysql.IsCapability(err):
			ss.log.Warn("the database cannot frame results as the client negotiated", zap.Error(err))
			refuse(mysql.CodeConnectionFailure, mysql.StateGeneral, err.Error())
		default:
			ss.log.Warn("cannot start a session with the database", zap.Error(err))
			refuse(mysql.CodeConnectionFailure, mysql.StateGeneral, fmt.Sprintf("database %q refused the agent's connection; an administrator can find why in the agent's log", ss.db.Name))
		}
		return nil
	}
	ss.emitStart("")
	if err := start.WriteAuthOK(c, up.Status); err != nil {
		up.Conn.Close()
		return nil
	}
	ss.logStarted()
	c.SetDeadline(time.Time{})
	ss.svc.mysqlConns.add(start.ConnectionID, mysqlConn{server: up.ConnectionID, user: ss.id.Username, db: ss.db.Name})
	return func() {
		defer up.Conn.Close()
		defer ss.svc.mysqlConns.remove(start.ConnectionID)
		ss.relayMySQL(ctx, c, up)
	}
}

// relayMySQL relays a started session and records its end.
func (ss *session) relayMySQL(ctx context.Context, c net.Conn, up *mysql.Upstream) {
	started := time.Now()
	user, dbSvc := ss.id.Username, ss.db.Name
	relay := &mysql.Relay{
		Client:             c,
		Server:             up.Conn,
		Emitter:            ss.svc.Emitter,
		ClusterName:        ss.svc.Credentials.Current().ClusterName,
		Session:            ss.meta,
		AllowLoadDataLocal: ss.db.AllowLoadDataLocal,
		MaxPacketSize:      ss.db.MaxPacketSize,
		ConnIDs: func(id uint32) (uint32, bool) {
			return ss.svc.mysqlConns.lookup(id, user, dbSvc)
		},
		Logger:  ss.log,
		Buffers: ss.svc.myBuffers(),
	}
	stats, err := relay.Run(ctx)
	reason := ""
	if mysql.IsPacketRefused(err) {
		reason = err.Error()
	}
	ss.emitEnd(started, stats.BytesFromClient, stats.BytesToClient, reason)
}
