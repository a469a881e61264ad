package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/protocol"
	"github.com/portcullis-db/portcullis/protocol/postgres"
)

// ALPN names under which the proxy's public port carries PostgreSQL: its
// own (pcl's local proxy, database.Dial) and the one psql 17 sends with
// sslnegotiation=direct.
const (
	ALPNPostgres       = "portcullis-postgres"
	ALPNPostgresDirect = "postgresql"
)

// maxStartupReply bounds the messages the proxy reads from an agent
// before ReadyForQuery (parameter statuses, notices, the cancel key).
const maxStartupReply = 1 << 20

// relayBufferSize is the copy buffer of each direction once a session is
// set up.
const relayBufferSize = 64 << 10

// PostgresServer serves PostgreSQL clients: on a native port (SSLRequest,
// then TLS) with Serve, and on connections that the Router has already
// terminated TLS for (ALPN ALPNPostgres and ALPNPostgresDirect) with
// ServeTLS. It checks the client's certificate, refuses with an
// ErrorResponse that psql shows, and relays the session to an agent that
// serves the certificate's database. A CancelRequest (Ctrl-C in psql) is
// routed to the agent of the session it names.
type PostgresServer struct {
	// Dispatcher opens sessions to agents. Required.
	Dispatcher *Dispatcher
	// GetCertificate returns the proxy's certificate for the native port.
	// Required for Serve.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// UserCAs verify clients' certificates. Required.
	UserCAs func() []*x509.Certificate
	// ClusterName, when set, must be the certificates' cluster.
	ClusterName string
	// Locks, if set, lists the locks in force; a locked user is refused.
	Locks func(ctx context.Context) ([]policy.Lock, error)
	// Emitter receives the sessions the proxy refuses itself (a
	// db.session.start that failed); the agent audits the rest.
	Emitter audit.Emitter
	// HandshakeTimeout bounds TLS and startup (default 10s).
	HandshakeTimeout time.Duration
	// Clock tells the time (default time.Now).
	Clock func() time.Time
	// Logger logs refusals and failures (default: no-op).
	Logger *zap.Logger

	mu      sync.Mutex
	cancels map[string]cancelTarget
	wg      sync.WaitGroup
	closed  bool
	lns     map[net.Listener]struct{}
	conns   map[net.Conn]struct{}
}

// cancelTarget is the agent and user a session's cancel key belongs to.
type cancelTarget struct {
	agentID  string
	userCert *x509.Certificate
}

// Serve accepts PostgreSQL clients on a native port until l fails or the
// server is closed.
func (s *PostgresServer) Serve(l net.Listener) error {
	if s.GetCertificate == nil {
		return errors.New("proxy: PostgresServer.GetCertificate is required to serve a native port")
	}
	return s.serve(l, s.handleNative)
}

// ServeTLS serves connections on which TLS is already established (from a
// Router route).
func (s *PostgresServer) ServeTLS(l net.Listener) error {
	return s.serve(l, func(ctx context.Context, c net.Conn) {
		tc, ok := c.(*tls.Conn)
		if !ok {
			c.Close()
			return
		}
		s.handleTLS(ctx, tc)
	})
}

func (s *PostgresServer) serve(l net.Listener, handle func(context.Context, net.Conn)) error {
	if s.Dispatcher == nil || s.UserCAs == nil {
		return errors.New("proxy: PostgresServer.Dispatcher and UserCAs are required")
	}
	if !s.track(l, nil, true) {
		return ErrRouterClosed
	}
	defer s.track(l, nil, false)
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrRouterClosed
			}
			return err
		}
		if !s.track(nil, c, true) {
			c.Close()
			return ErrRouterClosed
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(nil, c, false)
			defer c.Close()
			handle(context.Background(), c)
		}()
	}
}

// track registers (add) or forgets a listener or connection; it reports
// false once the server is closed.
func (s *PostgresServer) track(l net.Listener, c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lns == nil {
		s.lns, s.conns = map[net.Listener]struct{}{}, map[net.Conn]struct{}{}
	}
	if add && s.closed {
		return false
	}
	switch {
	case l != nil && add:
		s.lns[l] = struct{}{}
	case l != nil:
		delete(s.lns, l)
	case add:
		s.conns[c] = struct{}{}
	default:
		delete(s.conns, c)
	}
	return true
}

// Close stops the listeners, ends every session and waits for them.
func (s *PostgresServer) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.lns {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *PostgresServer) now() time.Time {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Now()
}

func (s *PostgresServer) log() *zap.Logger {
	if s.Logger == nil {
		return zap.NewNop()
	}
	return s.Logger
}

func (s *PostgresServer) handshakeTimeout() time.Duration {
	if s.HandshakeTimeout > 0 {
		return s.HandshakeTimeout
	}
	return DefaultHandshakeTimeout
}

// handleNative speaks the start of the protocol in the clear: only an
// SSLRequest (then TLS) or a CancelRequest is accepted.
func (s *PostgresServer) handleNative(ctx context.Context, c net.Conn) {
	c.SetDeadline(time.Now().Add(s.handshakeTimeout()))
	for {
		msg, err := postgres.ReadStartup(c, postgres.MaxStartupSize)
		if err != nil {
			// ReadStartup has told the client why, where it could.
			s.log().Debug("bad PostgreSQL startup", zap.Stringer("client", c.RemoteAddr()), zap.Error(err))
			return
		}
		switch m := msg.(type) {
		case *pgproto3.GSSEncRequest:
			if postgres.WriteEncryptionRefused(c) != nil {
				return
			}
			continue // libpq follows with an SSLRequest or a plain startup
		case *pgproto3.SSLRequest:
			if postgres.WriteSSLAccept(c) != nil {
				return
			}
			tc := tls.Server(c, &tls.Config{
				MinVersion:     tls.VersionTLS12,
				GetCertificate: s.GetCertificate,
				// The chain is verified after the handshake, so that a
				// refusal reaches psql as a sentence, not a TLS alert.
				ClientAuth: tls.RequestClientCert,
			})
			if err := tc.HandshakeContext(ctx); err != nil {
				s.log().Debug("TLS handshake failed", zap.Stringer("client", c.RemoteAddr()), zap.Error(err))
				return
			}
			s.handleTLS(ctx, tc)
			return
		case *pgproto3.CancelRequest:
			s.cancel(ctx, m)
			return
		case *pgproto3.StartupMessage:
			s.refuse(c, nil, m, postgres.CodeProtocolViolation,
				"the Portcullis proxy needs TLS: connect with sslmode=verify-full and your database certificate (pcl db connect NAME)")
			return
		default:
			postgres.WriteError(c, postgres.CodeProtocolViolation, "unexpected message at the start of the session")
			return
		}
	}
}

// handleTLS serves a client over TLS: its startup, the certificate checks
// and the session.
func (s *PostgresServer) handleTLS(ctx context.Context, tc *tls.Conn) {
	tc.SetDeadline(time.Now().Add(s.handshakeTimeout()))
	if err := tc.HandshakeContext(ctx); err != nil {
		return
	}
	msg, err := postgres.ReadStartup(tc, postgres.MaxStartupSize)
	if err != nil {
		// ReadStartup has told the client why, where it could.
		return
	}
	switch m := msg.(type) {
	case *pgproto3.CancelRequest:
		s.cancel(ctx, m)
		return
	case *pgproto3.StartupMessage:
		s.startSession(ctx, tc, m)
	default:
		postgres.WriteError(tc, postgres.CodeProtocolViolation, "unexpected message at the start of the session: send a startup message")
	}
}

// startSession checks the client and relays its session to an agent.
func (s *PostgresServer) startSession(ctx context.Context, tc *tls.Conn, m *pgproto3.StartupMessage) {
	chain := tc.ConnectionState().PeerCertificates
	if len(chain) == 0 {
		s.refuse(tc, nil, m, postgres.CodeInvalidAuthorization,
			"no client certificate was sent: log in with pcl login and connect with pcl db connect NAME")
		return
	}
	v := &ca.Verifier{Roots: s.UserCAs(), Kinds: []ca.CertKind{ca.KindUser}, Usage: x509.ExtKeyUsageClientAuth,
		ClusterName: s.ClusterName, Clock: s.now}
	id, err := v.Verify(chain)
	if err != nil {
		msg := "the client certificate is not accepted: " + err.Error()
		var who *ca.Identity
		switch {
		case ca.IsExpired(err):
			msg = fmt.Sprintf("your certificate expired at %s; run pcl login, then pcl db login", chain[0].NotAfter.UTC().Format(time.RFC3339))
			// The Verifier checks the signature before the validity
			// window, so an expired certificate is one this cluster
			// issued: audit the refusal under its user's name.
			who, _ = ca.IdentityFromCertificate(chain[0])
		case ca.IsUnknownAuthority(err):
			msg = "the client certificate was not issued by this cluster; run pcl login, then pcl db login"
		}
		s.refuse(tc, who, m, postgres.CodeInvalidAuthorization, msg)
		return
	}
	route := id.Route
	switch {
	case route == nil:
		s.refuse(tc, id, m, postgres.CodeInvalidAuthorization, "this certificate has no database route; run pcl db login NAME")
		return
	case route.Protocol != "postgres":
		s.refuse(tc, id, m, postgres.CodeInvalidAuthorization,
			fmt.Sprintf("database %q speaks %s, not PostgreSQL; connect with pcl db connect %s", route.ServiceName, route.Protocol, route.ServiceName))
		return
	}
	if u := m.Parameters["user"]; u != "" && u != route.DBUser {
		s.refuse(tc, id, m, postgres.CodeInvalidAuthorization,
			fmt.Sprintf("this certificate is for database user %q, not %q; run pcl db login %s --db-user %s", route.DBUser, u, route.ServiceName, u))
		return
	}
	if d := m.Parameters["database"]; route.DBName != "" && d != "" && d != route.DBName {
		s.refuse(tc, id, m, postgres.CodeInvalidAuthorization,
			fmt.Sprintf("this certificate is for database name %q, not %q; run pcl db login %s --db-name %s", route.DBName, d, route.ServiceName, d))
		return
	}
	if s.Locks != nil {
		locks, err := s.Locks(ctx)
		if err == nil {
			err = policy.CheckLocks(locks, id.Username, id.Roles, s.now())
		}
		if err != nil {
			s.refuse(tc, id, m, postgres.CodeInvalidAuthorization, err.Error())
			return
		}
	}
	agent, agentID, err := s.Dispatcher.Dial(ctx, chain[0], id, protocol.SessionRequest{
		Type: protocol.SessionConnect, ClientAddr: tc.RemoteAddr().String(),
	})
	if err != nil {
		var de *DispatchError
		msg := "the proxy could not reach the database's agent; try again shortly"
		if errors.As(err, &de) {
			msg = de.Msg
		}
		s.log().Warn("dispatch failed", zap.String("user", id.Username), zap.String("db", route.ServiceName), zap.Error(err))
		s.refuse(tc, id, m, postgres.CodeConnectionFailure, msg)
		return
	}
	defer agent.Close()
	startup, err := m.Encode(nil)
	if err != nil {
		return
	}
	if _, err := agent.Write(startup); err != nil {
		postgres.WriteError(tc, postgres.CodeConnectionFailure, "the database's agent closed the session")
		return
	}
	// Pass the agent's startup replies to the client, noting the cancel key.
	br := bufio.NewReaderSize(agent, relayBufferSize)
	key, err := copyStartupReplies(tc, br)
	if err != nil {
		s.log().Debug("session ended during startup", zap.String("user", id.Username), zap.Error(err))
		return
	}
	if key != "" {
		s.mu.Lock()
		if s.cancels == nil {
			s.cancels = map[string]cancelTarget{}
		}
		s.cancels[key] = cancelTarget{agentID: agentID, userCert: chain[0]}
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.cancels, key)
			s.mu.Unlock()
		}()
	}
	tc.SetDeadline(time.Time{})
	splice(tc, agent, br)
}

// copyStartupReplies copies the agent's messages to the client up to and
// including ReadyForQuery, and returns the BackendKeyData key as a map key
// ("" if none). An ErrorResponse is passed on and ends the session.
func copyStartupReplies(client io.Writer, agent *bufio.Reader) (string, error) {
	var key string
	total := 0
	for {
		hdr, err := agent.Peek(5)
		if err != nil {
			return "", err
		}
		typ := hdr[0]
		n := int(binary.BigEndian.Uint32(hdr[1:5])) + 1
		if n < 5 || total+n > maxStartupReply {
			return "", errors.New("the agent's startup reply is malformed or too large")
		}
		total += n
		msg := make([]byte, n)
		if _, err := io.ReadFull(agent, msg); err != nil {
			return "", err
		}
		if _, err := client.Write(msg); err != nil {
			return "", err
		}
		switch typ {
		case 'K':
			key = hex.EncodeToString(msg[5:])
		case 'Z':
			return key, nil
		case 'E':
			return "", errors.New("the session was refused")
		}
	}
}

// splice copies both directions until both have ended; rest holds what the
// proxy already read from the agent.
func splice(client *tls.Conn, agent *tls.Conn, rest *bufio.Reader) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, relayBufferSize)
		io.CopyBuffer(agent, client, buf)
		agent.CloseWrite()
	}()
	buf := make([]byte, relayBufferSize)
	io.CopyBuffer(client, rest, buf)
	client.CloseWrite()
	// The client may keep its side open after the agent ended; do not wait
	// for it forever.
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	<-done
}

// cancel routes a CancelRequest to the agent of the session whose key it
// carries. As PostgreSQL does, it answers nothing.
func (s *PostgresServer) cancel(ctx context.Context, m *pgproto3.CancelRequest) {
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], m.ProcessID)
	key := hex.EncodeToString(append(k[:], m.SecretKey...))
	s.mu.Lock()
	t, ok := s.cancels[key]
	s.mu.Unlock()
	if !ok {
		s.log().Debug("cancel request for an unknown session")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.handshakeTimeout())
	defer cancel()
	conn, err := s.Dispatcher.DialAgent(ctx, t.agentID, t.userCert, protocol.SessionRequest{
		Type:   protocol.SessionCancel,
		Cancel: &protocol.CancelKey{ProcessID: m.ProcessID, Secret: m.SecretKey},
	})
	if err != nil {
		s.log().Warn("cannot forward a cancel request", zap.String("agent", t.agentID), zap.Error(err))
		return
	}
	defer conn.Close()
	// Wait for the agent to finish (it closes when the cancel was sent).
	conn.SetReadDeadline(time.Now().Add(s.handshakeTimeout()))
	io.Copy(io.Discard, conn)
}

// refuse audits a refusal and tells the client why, in an ErrorResponse.
// The event is recorded first, so that it is in the log (and its time is
// before) when the client learns of the refusal.
func (s *PostgresServer) refuse(w io.Writer, id *ca.Identity, m *pgproto3.StartupMessage, code, msg string) {
	s.auditRefusal(w, id, m, msg)
	postgres.WriteError(w, code, msg)
}

func (s *PostgresServer) auditRefusal(w io.Writer, id *ca.Identity, m *pgproto3.StartupMessage, msg string) {
	if s.Emitter == nil {
		return
	}
	e := &audit.DatabaseSessionStart{
		Metadata: audit.Metadata{Type: audit.TypeDatabaseSessionStart, ClusterName: s.ClusterName},
		Status:   audit.Status{Success: false, Error: msg},
	}
	e.SessionID = newSessionID()
	e.DatabaseProtocol = "postgres"
	if m != nil {
		e.DatabaseUser, e.DatabaseName = m.Parameters["user"], m.Parameters["database"]
	}
	if id != nil {
		e.User, e.Roles = id.Username, id.Roles
		if id.Route != nil {
			e.DatabaseService = id.Route.ServiceName
		}
	}
	if c, ok := w.(net.Conn); ok {
		e.ClientAddr = c.RemoteAddr().String()
	}
	if err := s.Emitter.EmitAuditEvent(context.Background(), e); err != nil {
		s.log().Error("cannot audit a refused session", zap.Error(err))
	}
}

// newSessionID returns a random UUIDv4.
func newSessionID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
