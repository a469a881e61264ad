package postgres

import (
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATE codes Portcullis uses when it refuses a client itself, in an
// ErrorResponse ([WriteError]).
const (
	// CodeInvalidAuthorization: the client's certificate or identity is
	// not accepted (expired, locked, no route, denied by a role).
	CodeInvalidAuthorization = "28000"
	// CodeConnectionFailure: the database cannot be reached (no agent
	// serves it, the database is down).
	CodeConnectionFailure = "08006"
	// CodeInvalidCatalogName: the database service is unknown.
	CodeInvalidCatalogName = "3D000"
	// CodeTooManyConnections: a connection limit was reached.
	CodeTooManyConnections = "53300"
	// CodeProtocolViolation: the client broke the protocol (plaintext
	// where TLS is required, a malformed or oversized message).
	CodeProtocolViolation = "08P01"
)

// WriteError writes a FATAL ErrorResponse with the given SQLSTATE and
// message to w, in one write. psql prints it as
//
//	psql: error: connection to server at "HOST", port PORT failed: FATAL:  MESSAGE
//
// so message should be one sentence that says what went wrong and what to
// do. The caller closes the connection afterwards: FATAL tells the client
// that the session is over.
func WriteError(w io.Writer, sqlstate, message string) error {
	buf, err := encodeError(sqlstate, message)
	if err != nil {
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("postgres: write error response: %w", err)
	}
	return nil
}

func encodeError(sqlstate, message string) ([]byte, error) {
	msg := &pgproto3.ErrorResponse{
		Severity:            "FATAL",
		SeverityUnlocalized: "FATAL",
		Code:                sqlstate,
		Message:             message,
	}
	buf, err := msg.Encode(nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode error response: %w", err)
	}
	return buf, nil
}

// ServerError is an ErrorResponse the database sent while a session was
// being set up ([ConnectUpstream]), e.g. `role "alice" does not exist` or
// `database "app" does not exist`. The agent forwards it to the client
// unchanged with [ServerError.Forward], so the person sees what the
// database said.
type ServerError struct {
	// Severity is the localized severity ("FATAL", "ERROR", ...).
	Severity string
	// Code is the SQLSTATE, e.g. "3D000".
	Code string
	// Message is the database's primary message.
	Message string
	// Detail and Hint are the optional secondary messages.
	Detail, Hint string

	raw []byte // the message as the server sent it, with its header
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("database refused the session: %s (SQLSTATE %s)", e.Message, e.Code)
}

// Forward writes the ErrorResponse to w exactly as the database sent it.
func (e *ServerError) Forward(w io.Writer) error {
	if _, err := w.Write(e.raw); err != nil {
		return fmt.Errorf("postgres: forward error response: %w", err)
	}
	return nil
}

// IsServerError reports whether err is or wraps a [*ServerError].
func IsServerError(err error) bool {
	var e *ServerError
	return errors.As(err, &e)
}

// Authentication methods for [PasswordRequiredError.Method].
const (
	AuthCleartext = "password"
	AuthMD5       = "md5"
	AuthSCRAM     = "scram" // SASL (SCRAM-SHA-256)
)

// PasswordRequiredError says that the database asked for a password while
// the agent logged in with a client certificate: the database's pg_hba.conf
// has a password method (password, md5, scram-sha-256) where Portcullis
// needs `cert`.
type PasswordRequiredError struct {
	// Method is the authentication the database asked for: AuthCleartext,
	// AuthMD5 or AuthSCRAM.
	Method string
}

func (e *PasswordRequiredError) Error() string {
	return "database asked for a password (" + e.Method + "); configure it for client-certificate authentication (pctl auth sign --format db)"
}

// IsPasswordRequired reports whether err is or wraps a
// [*PasswordRequiredError].
func IsPasswordRequired(err error) bool {
	var e *PasswordRequiredError
	return errors.As(err, &e)
}

// MessageRefusedError is what [Relay.Run] returns when it ended a session
// because of a client message it would not pass on: one larger than
// MaxMessageSize, a malformed frame, or a malformed message of a type it
// audits. The client was sent a FATAL ErrorResponse with Reason and the
// refusal was audited.
type MessageRefusedError struct {
	// Type is the message's type byte, e.g. 'Q'.
	Type byte
	// Size is the message's size as its header declared it (type byte,
	// length word and body).
	Size int64
	// Reason is the sentence the client was sent.
	Reason string
}

func (e *MessageRefusedError) Error() string { return e.Reason }

// IsMessageRefused reports whether err is or wraps a
// [*MessageRefusedError].
func IsMessageRefused(err error) bool {
	var e *MessageRefusedError
	return errors.As(err, &e)
}
