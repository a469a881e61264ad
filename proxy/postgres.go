package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/protocol"
	"github.com/portcullis-db/portcullis/protocol/iobuf"
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

// PostgresServer serves PostgreSQL clients: on a native port (SSLRequest,
// then TLS) with Serve, and on connections that the Router has already
// terminated TLS for (ALPN ALPNPostgres and ALPNPostgresDirect) with
// ServeTLS. It checks the client's certificate, refuses with an
// ErrorResponse that psql shows, and relays the session to an agent that
// serves the certificate's database. A CancelRequest (Ctrl-C in psql) is
// routed to the agent of the session it names.
type PostgresServer struct {
	Frontend
	// GetCertificate returns the proxy's certificate for the native port.
	// Required for Serve.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	cancelMu sync.Mutex
	cancels  map[string]cancelTarget
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
	return s.Frontend.serve(l, s.handleNative)
}

// ServeTLS serves connections on which TLS is already established (from a
// Router route).
func (s *PostgresServer) ServeTLS(l net.Listener) error {
	return s.Frontend.serve(l, func(ctx context.Context, c net.Conn) func() {
		tc, ok := c.(*tls.Conn)
		if !ok {
			c.Close()
			return nil
		}
		return s.handleTLS(ctx, tc)
	})
}

// handleNative speaks the start of the protocol in the clear: only an
// SSLRequest (then TLS) or a CancelRequest is accepted.
func (s *PostgresServer) handleNative(ctx context.Context, c net.Conn) (relay func()) {
	c.SetDeadline(time.Now().Add(s.handshakeTimeout()))
	for {
		msg, err := postgres.ReadStartup(c, postgres.MaxStartupSize)
		if err != nil {
			// ReadStartup has told the client why, where it could.
			s.log().Debug("bad PostgreSQL startup", zap.Stringer("client", c.RemoteAddr()), zap.Error(err))
			return nil
		}
		switch m := msg.(type) {
		case *pgproto3.GSSEncRequest:
			if postgres.WriteEncryptionRefused(c) != nil {
				return nil
			}
			continue // libpq follows with an SSLRequest or a plain startup
		case *pgproto3.SSLRequest:
			if postgres.WriteSSLAccept(c) != nil {
				return nil
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
				return nil
			}
			return s.handleTLS(ctx, tc)
		case *pgproto3.CancelRequest:
			s.cancel(ctx, m)
			return nil
		case *pgproto3.StartupMessage:
			msg := "the Portcullis proxy needs TLS: connect with sslmode=verify-full and your database certificate (pcl db connect NAME)"
			s.auditRefusal(nil, "postgres", m.Parameters["user"], m.Parameters["database"], c.RemoteAddr().String(), msg)
			postgres.WriteError(c, postgres.CodeProtocolViolation, msg)
			return nil
		default:
			postgres.WriteError(c, postgres.CodeProtocolViolation, "unexpected message at the start of the session")
			return nil
		}
	}
}

// handleTLS serves a client over TLS: its startup, the certificate checks
// and the session.
func (s *PostgresServer) handleTLS(ctx context.Context, tc *tls.Conn) (relay func()) {
	tc.SetDeadline(time.Now().Add(s.handshakeTimeout()))
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil
	}
	msg, err := postgres.ReadStartup(tc, postgres.MaxStartupSize)
	if err != nil {
		// ReadStartup has told the client why, where it could.
		return nil
	}
	switch m := msg.(type) {
	case *pgproto3.CancelRequest:
		s.cancel(ctx, m)
		return nil
	case *pgproto3.StartupMessage:
		return s.startSession(ctx, tc, m)
	default:
		postgres.WriteError(tc, postgres.CodeProtocolViolation, "unexpected message at the start of the session: send a startup message")
	}
	return nil
}

// startSession checks the client and relays its session to an agent.
func (s *PostgresServer) startSession(ctx context.Context, tc *tls.Conn, m *pgproto3.StartupMessage) (relay func()) {
	user, db := m.Parameters["user"], m.Parameters["database"]
	refuse := func(id *ca.Identity, r *refusal) {
		code := postgres.CodeConnectionFailure
		if r.access {
			code = postgres.CodeInvalidAuthorization
		}
		s.auditRefusal(id, "postgres", user, db, tc.RemoteAddr().String(), r.msg)
		postgres.WriteError(tc, code, r.msg)
	}
	a, id, r := s.admit(ctx, tc.ConnectionState().PeerCertificates, "postgres", user, db)
	if r != nil {
		refuse(id, r)
		return nil
	}
	agent, agentID, r := s.dial(ctx, a, tc.RemoteAddr().String())
	if r != nil {
		refuse(a.id, r)
		return nil
	}
	relayed := false
	defer func() {
		if !relayed {
			agent.Close()
		}
	}()
	startup, err := m.Encode(nil)
	if err != nil {
		return nil
	}
	if _, err := agent.Write(startup); err != nil {
		postgres.WriteError(tc, postgres.CodeConnectionFailure, "the database's agent closed the session")
		return nil
	}
	// Pass the agent's startup replies to the client, noting the cancel key.
	br := iobuf.NewReader(agent, s.buffers())
	key, err := copyStartupReplies(tc, br)
	if err != nil {
		s.log().Debug("session ended during startup", zap.String("user", id.Username), zap.Error(err))
		return nil
	}
	if key != "" {
		s.cancelMu.Lock()
		if s.cancels == nil {
			s.cancels = map[string]cancelTarget{}
		}
		s.cancels[key] = cancelTarget{agentID: agentID, userCert: a.cert}
		s.cancelMu.Unlock()
	}
	tc.SetDeadline(time.Time{})
	relayed = true
	return func() {
		defer agent.Close()
		if key != "" {
			defer func() {
				s.cancelMu.Lock()
				delete(s.cancels, key)
				s.cancelMu.Unlock()
			}()
		}
		s.splice(tc, agent, br)
	}
}

// copyStartupReplies copies the agent's messages to the client up to and
// including ReadyForQuery, and returns the BackendKeyData key as a map key
// ("" if none). An ErrorResponse is passed on and ends the session.
func copyStartupReplies(client io.Writer, agent *iobuf.Reader) (string, error) {
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

// splice copies both directions until both have ended; rest reads from
// the agent, starting with what the proxy already read. Buffers come from
// the front end's pool only while bytes flow.
func (f *Frontend) splice(client *tls.Conn, agent *tls.Conn, rest io.Reader) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		iobuf.Copy(agent, client, f.buffers())
		agent.CloseWrite()
	}()
	iobuf.Copy(client, rest, f.buffers())
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
	s.cancelMu.Lock()
	t, ok := s.cancels[key]
	s.cancelMu.Unlock()
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
