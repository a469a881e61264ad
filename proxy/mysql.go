package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/protocol/mysql"
)

// ALPNMySQL is the ALPN name under which the proxy's public port carries
// the MySQL protocol (pcl's local proxy, database.Dial).
const ALPNMySQL = "portcullis-mysql"

// MySQLServer serves MySQL and MariaDB clients: on a native port (the
// server greeting, then the client's TLS upgrade) with Serve, and on
// connections the Router has terminated TLS for (ALPN ALPNMySQL) with
// ServeTLS. It checks the client's certificate, refuses with an ERR packet
// that the mysql and mariadb clients show, and relays the session to an
// agent that serves the certificate's database.
type MySQLServer struct {
	Frontend
	// GetCertificate returns the proxy's certificate for the native port.
	// Required for Serve.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ServerVersion is the version the greeting advertises (default
	// mysql.DefaultServerVersion).
	ServerVersion string
}

// Serve accepts MySQL clients on a native port until l fails or the
// server is closed.
func (s *MySQLServer) Serve(l net.Listener) error {
	if s.GetCertificate == nil {
		return errors.New("proxy: MySQLServer.GetCertificate is required to serve a native port")
	}
	return s.Frontend.serve(l, func(ctx context.Context, c net.Conn) func() {
		return s.handle(ctx, c, &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: s.GetCertificate,
			// Verified after the handshake, so that a refusal reaches the
			// client as an ERR packet rather than a TLS alert.
			ClientAuth: tls.RequestClientCert,
		})
	})
}

// ServeTLS serves connections on which TLS is already established (from a
// Router route).
func (s *MySQLServer) ServeTLS(l net.Listener) error {
	return s.Frontend.serve(l, func(ctx context.Context, c net.Conn) func() {
		tc, ok := c.(*tls.Conn)
		if !ok {
			return nil
		}
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil
		}
		return s.handle(ctx, tc, nil)
	})
}

// handle runs one client: the MySQL login (with the TLS upgrade when
// tlsConfig is set), the certificate checks, and the relay to an agent.
func (s *MySQLServer) handle(ctx context.Context, c net.Conn, tlsConfig *tls.Config) (relay func()) {
	c.SetDeadline(time.Now().Add(s.handshakeTimeout()))
	hello, err := mysql.ServerHandshake(c, mysql.FrontendConfig{
		ServerVersion: s.ServerVersion,
		ConnectionID:  newConnectionID(),
		TLSConfig:     tlsConfig,
	})
	if err != nil {
		// ServerHandshake has told the client why, where it could.
		var te *mysql.TLSRequiredError
		if errors.As(err, &te) {
			s.auditRefusal(nil, "mysql", te.Username, te.Database, te.Addr, mysql.TLSRequiredMessage)
		}
		s.log().Debug("MySQL login failed", zap.Stringer("client", c.RemoteAddr()), zap.Error(err))
		return nil
	}
	tc := hello.Conn
	addr := tc.RemoteAddr().String()
	refuse := func(id *ca.Identity, r *refusal) {
		code, state := uint16(mysql.CodeConnectionFailure), mysql.StateGeneral
		if r.access {
			code, state = mysql.CodeAccessDenied, mysql.StateAccessDenied
		}
		s.auditRefusal(id, "mysql", hello.Username, hello.Database, addr, r.msg)
		hello.WriteError(code, state, r.msg)
	}
	a, id, r := s.admit(ctx, tc.ConnectionState().PeerCertificates, "mysql", hello.Username, hello.Database)
	if r != nil {
		refuse(id, r)
		return nil
	}
	agent, _, r := s.dial(ctx, a, addr)
	if r != nil {
		refuse(a.id, r)
		return nil
	}
	if err := mysql.WriteSessionStart(agent, hello.SessionStart()); err != nil {
		agent.Close()
		refuse(a.id, &refusal{msg: "the database's agent closed the session; try again shortly"})
		return nil
	}
	tc.SetDeadline(time.Time{})
	return func() {
		defer agent.Close()
		s.splice(tc, agent, agent)
	}
}

// newConnectionID returns a random positive 31-bit connection ID for the
// greeting (the agent maps it to the database's own for KILL).
func newConnectionID() uint32 {
	var b [4]byte
	rand.Read(b[:])
	id := binary.BigEndian.Uint32(b[:]) & 0x7fffffff
	if id == 0 {
		id = 1
	}
	return id
}
