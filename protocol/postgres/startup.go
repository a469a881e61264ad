package postgres

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// MaxStartupSize is the largest startup packet [ReadStartup] accepts,
// including its length word: PostgreSQL's own limit
// (MAX_STARTUP_PACKET_LENGTH).
const MaxStartupSize = 10000

// protocolOptionPrefix starts the names of protocol options (as opposed to
// run-time parameters) in a StartupMessage.
const protocolOptionPrefix = "_pq_."

// ReadStartup reads the first message of a client connection: a
// *pgproto3.SSLRequest, *pgproto3.GSSEncRequest, *pgproto3.CancelRequest
// or *pgproto3.StartupMessage. It reads exactly that message and nothing
// after it, so the caller can start TLS on conn right after an SSLRequest
// and call ReadStartup again for the message that follows the handshake.
//
// maxSize bounds the packet (length word included); 0 or more than
// [MaxStartupSize] means MaxStartupSize. A packet that is too large or
// malformed, and a StartupMessage without a user name, are answered with a
// FATAL ErrorResponse ([CodeProtocolViolation], [CodeInvalidAuthorization])
// on conn before the error is returned.
//
// It answers nothing else: the caller replies to SSLRequest and
// GSSEncRequest with [WriteSSLAccept] or [WriteEncryptionRefused].
func ReadStartup(conn io.ReadWriter, maxSize int) (pgproto3.FrontendMessage, error) {
	if maxSize <= 0 || maxSize > MaxStartupSize {
		maxSize = MaxStartupSize
	}
	var head [4]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return nil, fmt.Errorf("postgres: read startup message: %w", err)
	}
	size := int64(int32(binary.BigEndian.Uint32(head[:])))
	if size < 8 || size > int64(maxSize) {
		WriteError(conn, CodeProtocolViolation, "invalid startup packet length; connect with a PostgreSQL client")
		return nil, fmt.Errorf("postgres: startup packet of %d bytes is outside 8..%d; the client does not speak PostgreSQL", size, maxSize)
	}
	// The backend reads the header again, then exactly the rest of the
	// packet: nothing that follows it is consumed.
	r := io.MultiReader(bytes.NewReader(head[:]), io.LimitReader(conn, size-4))
	msg, err := pgproto3.NewBackend(r, conn).ReceiveStartupMessage()
	if err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isNetError(err) {
			WriteError(conn, CodeProtocolViolation, "invalid startup packet; connect with a PostgreSQL client")
		}
		return nil, fmt.Errorf("postgres: read startup message: %w", err)
	}
	if m, ok := msg.(*pgproto3.StartupMessage); ok && m.Parameters["user"] == "" {
		WriteError(conn, CodeInvalidAuthorization, "no PostgreSQL user name specified in startup packet")
		return nil, fmt.Errorf("postgres: startup message names no user")
	}
	return msg, nil
}

// WriteSSLAccept answers an SSLRequest with 'S': the client starts its TLS
// handshake next.
func WriteSSLAccept(w io.Writer) error {
	if _, err := w.Write([]byte{'S'}); err != nil {
		return fmt.Errorf("postgres: answer SSLRequest: %w", err)
	}
	return nil
}

// WriteEncryptionRefused answers an SSLRequest or GSSEncRequest with 'N':
// the client may go on without that encryption on the same connection
// (libpq then tries TLS after GSS, or sends its StartupMessage in
// plaintext, which a caller that requires TLS refuses with [WriteError]).
func WriteEncryptionRefused(w io.Writer) error {
	if _, err := w.Write([]byte{'N'}); err != nil {
		return fmt.Errorf("postgres: answer encryption request: %w", err)
	}
	return nil
}

// NegotiateProtocol brings a client's StartupMessage down to what the
// upstream session speaks: protocol 3.0 without protocol options. When the
// client asked for a newer minor version (3.2) or for options ("_pq_."
// parameters), it writes a NegotiateProtocolVersion message to w (as
// PostgreSQL itself does right after the StartupMessage), removes the
// options from m.Parameters and sets m.ProtocolVersion to 3.0. Otherwise it
// writes nothing. Call it before [ConnectUpstream]; the client then
// expects a 4-byte cancel secret, as [NewBackendKey] makes.
func NegotiateProtocol(w io.Writer, m *pgproto3.StartupMessage) error {
	var options []string
	for name := range m.Parameters {
		if strings.HasPrefix(name, protocolOptionPrefix) {
			options = append(options, name)
		}
	}
	if m.ProtocolVersion == pgproto3.ProtocolVersion30 && len(options) == 0 {
		return nil
	}
	sort.Strings(options)
	for _, name := range options {
		delete(m.Parameters, name)
	}
	m.ProtocolVersion = pgproto3.ProtocolVersion30
	msg := &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: options}
	buf, err := msg.Encode(nil)
	if err != nil {
		return fmt.Errorf("postgres: encode NegotiateProtocolVersion: %w", err)
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("postgres: write NegotiateProtocolVersion: %w", err)
	}
	return nil
}

// isNetError reports whether err comes from the network rather than from
// the bytes read.
func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed)
}
