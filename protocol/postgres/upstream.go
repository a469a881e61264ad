package postgres

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// maxStartupReply bounds one message the server sends during startup
// (ParameterStatus, NoticeResponse, ErrorResponse, ...); real ones are a few
// hundred bytes.
const maxStartupReply = 1 << 20

// PostgreSQL authentication request codes (AuthenticationXxx messages).
const (
	authOK        = 0
	authCleartext = 3
	authMD5       = 5
	authSASL      = 10
)

// BackendKey is the key a PostgreSQL server hands its client for
// cancelling queries (BackendKeyData), and that a CancelRequest carries
// back. With protocol 3.0 the secret is 4 bytes.
type BackendKey struct {
	ProcessID uint32
	Secret    []byte
}

// NewBackendKey makes a random key for a client, to stand in for the
// database's real one (the agent maps it back when a CancelRequest
// arrives), reading randomness from rand (crypto/rand.Reader in
// production). The process ID is positive, the secret 4 bytes.
func NewBackendKey(rand io.Reader) (BackendKey, error) {
	var b [8]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return BackendKey{}, fmt.Errorf("postgres: generate a cancel key: %w", err)
	}
	pid := binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
	if pid == 0 {
		pid = 1
	}
	return BackendKey{ProcessID: pid, Secret: b[4:8:8]}, nil
}

// Upstream is a session with a PostgreSQL server that has completed
// startup and is ready for queries: authenticated with the agent's client
// certificate over verified TLS.
type Upstream struct {
	// Conn is the TLS connection to the server, positioned right after
	// ReadyForQuery: hand it to [Relay].Server.
	Conn net.Conn
	// Key is the server's real cancel key; keep it on the agent and give
	// the client a substitute ([NewBackendKey], [Upstream.ReplayStartup]).
	Key BackendKey
	// Parameters are the run-time parameters the server reported
	// (server_version, client_encoding, ...).
	Parameters map[string]string

	replay   []byte // ParameterStatus and NoticeResponse messages, as sent
	txStatus byte   // from ReadyForQuery
}

// ConnectUpstream sets up a session on conn, an established TCP connection
// to a PostgreSQL server: it asks for TLS (SSLRequest) and does the
// handshake with tlsConfig (which must verify the server and present the
// client certificate for the database user), sends a protocol 3.0
// StartupMessage with params ("user" is required; "database",
// "application_name", "client_encoding", "options" and so on are passed as
// given; protocol options "_pq_.*" are dropped), and reads the server's
// replies up to ReadyForQuery.
//
// The caller decides the parameters: an agent sets "user" and "database"
// from the route, never from what the client asked.
//
// Errors: a [*PasswordRequiredError] when the server asks for a password;
// a [*ServerError] (forward it to the client) when the server refuses the
// session with an ErrorResponse; others for TLS and I/O failures. ctx
// bounds the whole exchange. On error conn is closed; on success the
// returned Upstream owns it (through Conn).
func ConnectUpstream(ctx context.Context, conn net.Conn, tlsConfig *tls.Config, params map[string]string) (up *Upstream, err error) {
	defer func() {
		if err != nil {
			conn.Close()
			up = nil
		}
	}()
	if tlsConfig == nil {
		return nil, errors.New("postgres: ConnectUpstream needs a TLS configuration; the database session must be encrypted and verified")
	}
	if params["user"] == "" {
		return nil, errors.New(`postgres: ConnectUpstream needs params["user"], the database user`)
	}
	stop := watchContext(ctx, conn)
	defer func() {
		if cerr := stop(); cerr != nil {
			if err == nil {
				err = cerr
			} else {
				err = fmt.Errorf("%w: %w", cerr, err)
			}
		}
	}()

	tlsConn, err := startTLS(ctx, conn, tlsConfig)
	if err != nil {
		return nil, err
	}
	conn = tlsConn // closed on error from here on

	sent := make(map[string]string, len(params))
	for k, v := range params {
		if !strings.HasPrefix(k, protocolOptionPrefix) {
			sent[k] = v
		}
	}
	startup, err := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: sent}).Encode(nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode StartupMessage: %w", err)
	}
	if _, err := conn.Write(startup); err != nil {
		return nil, fmt.Errorf("postgres: send StartupMessage: %w", err)
	}
	u := &Upstream{Conn: tlsConn, Parameters: map[string]string{}}
	if err := u.readStartupReplies(tlsConn); err != nil {
		return nil, err
	}
	return u, nil
}

// startTLS sends an SSLRequest on conn and, if the server agrees, does the
// TLS handshake.
func startTLS(ctx context.Context, conn net.Conn, tlsConfig *tls.Config) (*tls.Conn, error) {
	req, err := (&pgproto3.SSLRequest{}).Encode(nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode SSLRequest: %w", err)
	}
	if _, err := conn.Write(req); err != nil {
		return nil, fmt.Errorf("postgres: send SSLRequest to %s: %w", conn.RemoteAddr(), err)
	}
	var answer [1]byte
	if _, err := io.ReadFull(conn, answer[:]); err != nil {
		return nil, fmt.Errorf("postgres: read the answer to SSLRequest from %s: %w", conn.RemoteAddr(), err)
	}
	switch answer[0] {
	case 'S':
	case 'N':
		return nil, fmt.Errorf("postgres: database at %s does not accept TLS; set ssl = on with the files from pctl auth sign --format db", conn.RemoteAddr())
	default:
		return nil, fmt.Errorf("postgres: database at %s answered SSLRequest with %q; is it a PostgreSQL server?", conn.RemoteAddr(), answer[0])
	}
	tlsConn := tls.Client(conn, tlsConfig)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("postgres: TLS handshake with the database at %s: %w", conn.RemoteAddr(), err)
	}
	return tlsConn, nil
}

// readStartupReplies reads the server's messages up to ReadyForQuery. It
// reads each message exactly (header, then body), so nothing after
// ReadyForQuery is consumed and Conn can be relayed as it is.
func (u *Upstream) readStartupReplies(conn net.Conn) error {
	var head [5]byte
	var body []byte
	for {
		if _, err := io.ReadFull(conn, head[:]); err != nil {
			return fmt.Errorf("postgres: read from the database during startup: %w", err)
		}
		n := int64(int32(binary.BigEndian.Uint32(head[1:]))) - 4
		if n < 0 || n > maxStartupReply {
			return fmt.Errorf("postgres: database sent a startup message of %d bytes; is it a PostgreSQL server?", n)
		}
		if int64(cap(body)) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(conn, body); err != nil {
			return fmt.Errorf("postgres: read from the database during startup: %w", err)
		}
		switch head[0] {
		case 'R':
			if err := checkAuth(body); err != nil {
				return err
			}
		case 'S':
			var m pgproto3.ParameterStatus
			if err := m.Decode(body); err != nil {
				return fmt.Errorf("postgres: database sent a bad ParameterStatus: %w", err)
			}
			u.Parameters[m.Name] = m.Value
			u.replay = append(append(u.replay, head[:]...), body...)
		case 'N':
			u.replay = append(append(u.replay, head[:]...), body...)
		case 'K':
			var m pgproto3.BackendKeyData
			if err := m.Decode(body); err != nil {
				return fmt.Errorf("postgres: database sent a bad BackendKeyData: %w", err)
			}
			u.Key = BackendKey{ProcessID: m.ProcessID, Secret: m.SecretKey}
		case 'v':
			// NegotiateProtocolVersion: the server accepts 3.0 without
			// the options it lists; we asked for 3.0 without options.
		case 'E':
			var m pgproto3.ErrorResponse
			if err := m.Decode(body); err != nil {
				return fmt.Errorf("postgres: database sent a bad ErrorResponse: %w", err)
			}
			raw := append(head[:], body...)
			return &ServerError{Severity: m.Severity, Code: m.Code, Message: m.Message, Detail: m.Detail, Hint: m.Hint, raw: raw}
		case 'Z':
			var m pgproto3.ReadyForQuery
			if err := m.Decode(body); err != nil {
				return fmt.Errorf("postgres: database sent a bad ReadyForQuery: %w", err)
			}
			u.txStatus = m.TxStatus
			return nil
		default:
			return fmt.Errorf("postgres: database sent message %q during startup; is it a PostgreSQL server?", head[0])
		}
	}
}

// checkAuth accepts AuthenticationOk and refuses every other
// authentication request.
func checkAuth(body []byte) error {
	if len(body) < 4 {
		return errors.New("postgres: database sent a bad authentication request")
	}
	switch code := binary.BigEndian.Uint32(body); code {
	case authOK:
		return nil
	case authCleartext:
		return &PasswordRequiredError{Method: AuthCleartext}
	case authMD5:
		return &PasswordRequiredError{Method: AuthMD5}
	case authSASL:
		return &PasswordRequiredError{Method: AuthSCRAM}
	default:
		return fmt.Errorf("postgres: database asked for authentication method %d, which Portcullis does not support; configure it for client-certificate authentication (pctl auth sign --format db)", code)
	}
}

// ReplayStartup writes to the client, in one write, what a server sends
// after a successful login: AuthenticationOk, the server's ParameterStatus
// and NoticeResponse messages in the order it sent them, BackendKeyData
// with key (the client's substitute, not u.Key) and ReadyForQuery. key's
// secret must be 4 bytes (protocol 3.0; see [NewBackendKey]).
func (u *Upstream) ReplayStartup(w io.Writer, key BackendKey) error {
	if len(key.Secret) != 4 {
		return fmt.Errorf("postgres: a protocol 3.0 cancel key has a 4-byte secret, not %d bytes; make it with NewBackendKey", len(key.Secret))
	}
	buf := make([]byte, 0, 9+len(u.replay)+12+6)
	buf, _ = (&pgproto3.AuthenticationOk{}).Encode(buf)
	buf = append(buf, u.replay...)
	buf, _ = (&pgproto3.BackendKeyData{ProcessID: key.ProcessID, SecretKey: key.Secret}).Encode(buf)
	buf, _ = (&pgproto3.ReadyForQuery{TxStatus: u.txStatus}).Encode(buf)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("postgres: replay startup to the client: %w", err)
	}
	return nil
}

// watchContext makes I/O on conn fail once ctx is done, by moving its
// deadline (ctx's own deadline at once, and "now" on cancellation). stop
// undoes that and reports ctx's error if ctx ended the I/O.
func watchContext(ctx context.Context, conn net.Conn) (stop func() error) {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	cancelled := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		conn.SetDeadline(time.Unix(1, 0))
		close(cancelled)
	})
	return func() error {
		if !stopAfter() {
			<-cancelled
			return ctx.Err()
		}
		conn.SetDeadline(time.Time{})
		return nil
	}
}
