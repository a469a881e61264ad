package postgres

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgproto3"
)

// SendCancel asks a PostgreSQL server to cancel the query running in the
// session whose real key is key. It dials a new connection with dial and,
// when tlsConfig is not nil, asks for TLS first (SSLRequest); if the
// server answers 'N' the CancelRequest goes in plaintext on the same
// connection, as libpq does. A nil tlsConfig sends it in plaintext at once.
//
// The server never answers a CancelRequest; SendCancel returns once the
// server has closed the connection (so the cancel has been processed) or
// ctx is done. As with any PostgreSQL cancel, there is no guarantee that
// a query was running or is stopped.
func SendCancel(ctx context.Context, dial func(ctx context.Context) (net.Conn, error), tlsConfig *tls.Config, key BackendKey) (err error) {
	req, err := (&pgproto3.CancelRequest{ProcessID: key.ProcessID, SecretKey: key.Secret}).Encode(nil)
	if err != nil {
		return fmt.Errorf("postgres: encode CancelRequest: %w", err)
	}
	conn, err := dial(ctx)
	if err != nil {
		return fmt.Errorf("postgres: dial the database to cancel a query: %w", err)
	}
	defer conn.Close()
	stop := watchContext(ctx, conn)
	defer func() {
		if cerr := stop(); cerr != nil {
			err = fmt.Errorf("postgres: cancel a query: %w", cerr)
		}
	}()

	var c net.Conn = conn
	if tlsConfig != nil {
		if c, err = cancelTLS(ctx, conn, tlsConfig); err != nil {
			return err
		}
	}
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("postgres: send CancelRequest: %w", err)
	}
	// Wait for the server to hang up. Whatever ends the wait (EOF, a
	// reset, ctx through the deadline, which stop reports) comes after the
	// request was sent.
	var discard [64]byte
	for {
		if _, err := c.Read(discard[:]); err != nil {
			return nil
		}
	}
}

// cancelTLS asks for TLS on conn; it returns conn itself when the server
// declines.
func cancelTLS(ctx context.Context, conn net.Conn, tlsConfig *tls.Config) (net.Conn, error) {
	req, err := (&pgproto3.SSLRequest{}).Encode(nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode SSLRequest: %w", err)
	}
	if _, err := conn.Write(req); err != nil {
		return nil, fmt.Errorf("postgres: send SSLRequest to cancel a query: %w", err)
	}
	var answer [1]byte
	if _, err := io.ReadFull(conn, answer[:]); err != nil {
		return nil, fmt.Errorf("postgres: read the answer to SSLRequest: %w", err)
	}
	switch answer[0] {
	case 'N':
		return conn, nil
	case 'S':
		tlsConn := tls.Client(conn, tlsConfig)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("postgres: TLS handshake to cancel a query: %w", err)
		}
		return tlsConn, nil
	default:
		return nil, fmt.Errorf("postgres: database answered SSLRequest with %q; is it a PostgreSQL server?", answer[0])
	}
}
