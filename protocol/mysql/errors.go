package mysql

import (
	"errors"
	"fmt"
	"io"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// MySQL error codes and SQLSTATEs Portcullis uses when it refuses a client
// itself, in an ERR packet ([WriteError]). Clients show them as
// "ERROR 1045 (28000): message".
const (
	// CodeAccessDenied (ER_ACCESS_DENIED_ERROR) with StateAccessDenied:
	// the client's certificate or identity is not accepted (expired,
	// locked, no route, denied by a role, wrong database user).
	CodeAccessDenied  = gomysql.ER_ACCESS_DENIED_ERROR
	StateAccessDenied = "28000"
	// CodeDBAccessDenied (ER_DBACCESS_DENIED_ERROR) with StateSyntax: the
	// database name is not allowed.
	CodeDBAccessDenied = gomysql.ER_DBACCESS_DENIED_ERROR
	// CodeBadDB (ER_BAD_DB_ERROR) with StateSyntax: the database service is
	// unknown.
	CodeBadDB = gomysql.ER_BAD_DB_ERROR
	// CodeTooManyConnections (ER_CON_COUNT_ERROR) with
	// StateTooManyConnections: a connection limit was reached.
	CodeTooManyConnections  = gomysql.ER_CON_COUNT_ERROR
	StateTooManyConnections = "08004"
	// CodeConnectionFailure with StateGeneral: the database cannot be
	// reached (no agent serves it, it is down). It is ER_UNKNOWN_ERROR:
	// client-side codes such as CR_CONN_HOST_ERROR (2003) cannot be sent
	// by a server, since the mariadb client shows any code from 2000 to
	// 2999 in a login ERR as "Received malformed packet" and hides the
	// message.
	CodeConnectionFailure = 1105
	// CodeSecureTransportRequired (ER_SECURE_TRANSPORT_REQUIRED) with
	// StateGeneral: the client logged in without TLS.
	CodeSecureTransportRequired = 3159
	// CodePacketTooLarge (ER_NET_PACKET_TOO_LARGE) with
	// StateConnection: a command exceeded the relay's size limit.
	CodePacketTooLarge = gomysql.ER_NET_PACKET_TOO_LARGE
	// CodeMalformedPacket (ER_MALFORMED_PACKET) with StateGeneral: the
	// client broke the protocol.
	CodeMalformedPacket = gomysql.ER_MALFORMED_PACKET
	// CodeNotSupported (ER_NOT_SUPPORTED_YET) with StateSyntax: a command
	// Portcullis does not pass on (COM_CHANGE_USER, replication, ...).
	CodeNotSupported = gomysql.ER_NOT_SUPPORTED_YET

	// StateGeneral is SQLSTATE HY000, "general error".
	StateGeneral = "HY000"
	// StateSyntax is SQLSTATE 42000, "syntax error or access rule
	// violation".
	StateSyntax = "42000"
	// StateConnection is SQLSTATE 08S01, "communication link failure".
	StateConnection = "08S01"
)

// ServerError is an ERR packet the database sent while the agent logged in
// ([ConnectUpstream]), e.g. "Unknown database 'app'" (1049) or
// "Too many connections" (1040). The agent passes it on to the client with
// [ServerError.Forward], so that the person sees what the database said.
type ServerError struct {
	// Code is the MySQL error code, e.g. 1049.
	Code uint16
	// SQLState is the five-character SQLSTATE, e.g. "42000".
	SQLState string
	// Message is the server's message.
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("database refused the session: %s (error %d, SQLSTATE %s)", e.Message, e.Code, e.SQLState)
}

// Forward writes the error to the client as an ERR packet with the
// sequence ID the client expects next ([SessionStart].Sequence): the
// database's code, SQLSTATE and message, unchanged.
func (e *ServerError) Forward(w io.Writer, seq byte) error {
	return WriteError(w, seq, e.Code, e.SQLState, e.Message)
}

// IsServerError reports whether err is or wraps a [*ServerError].
func IsServerError(err error) bool {
	var e *ServerError
	return errors.As(err, &e)
}

// PasswordRequiredError says that the database did not accept the agent's
// login by client certificate: the account has a password (or an
// authentication plugin such as PAM that asks for one), or its
// REQUIRE SUBJECT does not match the certificate. The database answers
// both with "Access denied", so the error names both causes.
type PasswordRequiredError struct {
	// User is the database user the agent logged in as.
	User string
	// Plugin is the authentication plugin the database switched to, when
	// Portcullis cannot answer it (e.g. "dialog"); empty for an access
	// denied.
	Plugin string
	// Server is the database's ERR packet, when it sent one.
	Server *ServerError
}

func (e *PasswordRequiredError) Error() string {
	if e.Plugin != "" {
		return fmt.Sprintf("database asked for a password for user %q (authentication plugin %s); create the user with REQUIRE SUBJECT '/CN=%s' and no password so that it logs in by certificate (pctl auth sign --format db)", e.User, e.Plugin, e.User)
	}
	return fmt.Sprintf("database refused the certificate login of user %q; create the user with REQUIRE SUBJECT '/CN=%s' and no password (pctl auth sign --format db)", e.User, e.User)
}

// Unwrap returns the database's ERR packet, if any.
func (e *PasswordRequiredError) Unwrap() error {
	if e.Server == nil {
		return nil
	}
	return e.Server
}

// IsPasswordRequired reports whether err is or wraps a
// [*PasswordRequiredError].
func IsPasswordRequired(err error) bool {
	var e *PasswordRequiredError
	return errors.As(err, &e)
}

// CapabilityError says that the database lacks a protocol capability the
// client negotiated with the proxy and that changes how packets are
// framed, so the session cannot be relayed as it is.
type CapabilityError struct {
	// Missing are the capability names, e.g. "CLIENT_DEPRECATE_EOF".
	Missing []string
}

func (e *CapabilityError) Error() string {
	return fmt.Sprintf("the database does not support %s, which the client negotiated; upgrade the database to MySQL 5.7 or MariaDB 10.2 or later", strings.Join(e.Missing, ", "))
}

// IsCapability reports whether err is or wraps a [*CapabilityError].
func IsCapability(err error) bool {
	var e *CapabilityError
	return errors.As(err, &e)
}

// PacketRefusedError is what [Relay.Run] returns when it ended a session
// because of a client command it would not pass on: one larger than
// MaxPacketSize, a packet out of sequence, or a malformed command of a kind
// it audits. The client was sent an ERR packet with Code and Reason, and
// the refusal was audited.
type PacketRefusedError struct {
	// Command is the command byte, e.g. 0x03 for COM_QUERY.
	Command byte
	// Size is the command's payload size as far as the relay read it.
	Size int64
	// Code is the MySQL error code the client was sent.
	Code uint16
	// Reason is the sentence the client was sent.
	Reason string
}

func (e *PacketRefusedError) Error() string { return e.Reason }

// IsPacketRefused reports whether err is or wraps a
// [*PacketRefusedError].
func IsPacketRefused(err error) bool {
	var e *PacketRefusedError
	return errors.As(err, &e)
}

// TLSRequiredError is a client that logged in without TLS; it was sent
// [TLSRequiredMessage]. It names the user and database the client asked
// for, so that the refusal can be audited.
type TLSRequiredError struct {
	Username string
	Database string
	Addr     string
}

func (e *TLSRequiredError) Error() string {
	return fmt.Sprintf("mysql: %s logged in as %q without TLS; it was told to use TLS", e.Addr, e.Username)
}

// IsTLSRequired reports whether err is a [*TLSRequiredError].
func IsTLSRequired(err error) bool {
	var e *TLSRequiredError
	return errors.As(err, &e)
}
