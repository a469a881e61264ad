package dbagent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/protocol"
	"github.com/portcullis-db/portcullis/protocol/iobuf"
)

// sessionHandshakeTimeout bounds the TLS handshake and startup of a session.
const sessionHandshakeTimeout = 15 * time.Second

// handleSession serves one tunnel channel a proxy opened: mutual TLS with
// the proxy's session certificate, then the database protocol of the
// certificate's route.
func (s *Service) handleSession(_ context.Context, conn net.Conn, extra []byte) {
	ctx, ok := s.beginSession()
	if !ok {
		return
	}
	defer s.sessions.Done()
	// The handshakes and checks run on a goroutine of their own, so that
	// the relay keeps a small stack for the whole session.
	if relay := iobuf.OnOwnStack(func() func() { return s.setupSession(ctx, conn, extra) }); relay != nil {
		relay()
	}
}

// setupSession does the mutual TLS and the session's start, and returns
// what relays the session (nil when it is over already).
func (s *Service) setupSession(ctx context.Context, conn net.Conn, extra []byte) (relay func()) {
	log := s.log()
	var req protocol.SessionRequest
	if len(extra) > protocol.MaxSessionRequestSize || json.Unmarshal(extra, &req) != nil {
		log.Warn("refused a session with a malformed request from the proxy")
		return nil
	}
	tc := tls.Server(conn, s.sessionTLSConfig())
	defer func() {
		if relay == nil {
			tc.Close()
		}
	}()
	hctx, cancel := context.WithTimeout(ctx, sessionHandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		log.Warn("session TLS handshake with the proxy failed", zap.Error(err))
		return nil
	}
	id, err := s.verifySession(s.Credentials.Current(), tc.ConnectionState().PeerCertificates)
	if err != nil {
		log.Warn("refused a session certificate", zap.Error(err))
		return nil
	}
	db := s.database(id.Route.ServiceName)
	sess := &session{svc: s, conn: tc, id: id, db: db, clientAddr: req.ClientAddr, log: log.WithLazy(
		zap.String("user", id.Username), zap.String("db", id.Route.ServiceName))}
	var run func()
	switch {
	case req.Type == protocol.SessionCancel && db != nil && db.Protocol == "postgres":
		sess.cancelPostgres(ctx, req.Cancel)
	case req.Type == protocol.SessionCancel:
	case id.Route.Protocol == "postgres":
		run = sess.servePostgres(ctx)
	case id.Route.Protocol == "mysql":
		run = sess.serveMySQL(ctx)
	default:
		log.Warn("refused a session for an unsupported protocol", zap.String("protocol", id.Route.Protocol))
	}
	if run == nil {
		return nil
	}
	return func() {
		defer tc.Close()
		run()
	}
}

func (s *Service) database(name string) *Database {
	for i := range s.Databases {
		if s.Databases[i].Name == name {
			return &s.Databases[i]
		}
	}
	return nil
}

func (s *Service) log() *zap.Logger {
	if s.Logger == nil {
		return zap.NewNop()
	}
	return s.Logger
}

// session is one database session on the agent.
type session struct {
	svc        *Service
	conn       *tls.Conn
	id         *ca.Identity
	db         *Database
	clientAddr string
	log        *zap.Logger
	meta       audit.DatabaseSessionMetadata
}

// metadata fills the fields every event of the session carries.
func (ss *session) metadata(protocolName, dbUser, dbName string) audit.DatabaseSessionMetadata {
	var m audit.DatabaseSessionMetadata
	m.SessionID = audit.NewSessionID()
	m.User, m.Roles = ss.id.Username, ss.id.Roles
	m.DatabaseService, m.DatabaseProtocol = ss.id.Route.ServiceName, protocolName
	m.DatabaseUser, m.DatabaseName = dbUser, dbName
	m.ClientAddr = ss.clientAddr
	return m
}

func (ss *session) emit(e audit.Event) {
	em := ss.svc.Emitter
	if em == nil {
		return
	}
	e.GetMetadata().ClusterName = ss.svc.Credentials.Current().ClusterName
	if err := em.EmitAuditEvent(context.Background(), e); err != nil {
		ss.log.Error("cannot write an audit event", zap.String("event", e.GetMetadata().Type), zap.Error(err))
	}
}

// emitStart records the session starting, or refused with reason.
func (ss *session) emitStart(reason string) {
	ss.emit(&audit.DatabaseSessionStart{
		Metadata:                audit.Metadata{Type: audit.TypeDatabaseSessionStart},
		DatabaseSessionMetadata: ss.meta,
		Status:                  audit.Status{Success: reason == "", Error: reason},
	})
}

// logStarted logs that the session started. It names the session's
// fields itself rather than through ss.log, whose fields (added lazily)
// would otherwise be encoded here and kept, about a KiB, for as long as
// the session stays open.
func (ss *session) logStarted() {
	ss.svc.log().Info("database session started", zap.String("user", ss.id.Username), zap.String("db", ss.id.Route.ServiceName),
		zap.String("sid", ss.meta.SessionID), zap.String("db_user", ss.meta.DatabaseUser), zap.String("db_name", ss.meta.DatabaseName))
}

// emitEnd records and logs the end of a session that started at started;
// reason says why the relay ended it, if it did.
func (ss *session) emitEnd(started time.Time, bytesIn, bytesOut int64, reason string) {
	end := &audit.DatabaseSessionEnd{
		Metadata:                audit.Metadata{Type: audit.TypeDatabaseSessionEnd},
		DatabaseSessionMetadata: ss.meta,
		SessionStart:            started,
		Duration:                time.Since(started),
		BytesIn:                 bytesIn,
		BytesOut:                bytesOut,
		Reason:                  reason,
	}
	ss.emit(end)
	ss.log.Info("database session ended", zap.String("sid", ss.meta.SessionID), zap.Duration("duration", end.Duration),
		zap.Int64("bytes_in", bytesIn), zap.Int64("bytes_out", bytesOut), zap.String("reason", reason))
}

// upstreamTLS is the agent's TLS configuration towards a database: the
// client certificate for the database user, and the server verified
// against the database's CA (the cluster's database CA unless configured).
func (ss *session) upstreamTLS(cert *tls.Certificate) (*tls.Config, error) {
	pool, err := ss.svc.roots.roots(ss.db, ss.svc.Credentials.Current())
	if err != nil {
		return nil, err
	}
	name := ss.db.TLS.ServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(ss.db.URI)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      pool,
		ServerName:   name,
		Certificates: []tls.Certificate{*cert},
	}, nil
}
