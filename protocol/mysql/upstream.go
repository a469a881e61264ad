package mysql

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/charset"
)

// maxGreeting bounds the server's greeting; real ones are under 200 bytes.
const maxGreeting = 64 << 10

// fallbackCollation is the collation the upstream login asks for when the
// client's collation ID is unknown (e.g. a MariaDB-only collation).
const fallbackCollation = "utf8mb4_general_ci"

// framingCapabilities change how the server frames what it sends: a client
// that negotiated one of them needs a database that has it.
const framingCapabilities = gomysql.CLIENT_DEPRECATE_EOF | gomysql.CLIENT_SESSION_TRACK

// goMySQLDefaults are the flags go-mysql's client always asks for unless
// told otherwise (client.Conn.UnsetCapability).
const goMySQLDefaults = gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_SECURE_CONNECTION |
	gomysql.CLIENT_LONG_PASSWORD | gomysql.CLIENT_TRANSACTIONS | gomysql.CLIENT_PLUGIN_AUTH |
	gomysql.CLIENT_LONG_FLAG | gomysql.CLIENT_QUERY_ATTRIBUTES | gomysql.CLIENT_DEPRECATE_EOF

// goMySQLRequired are defaults the upstream login keeps whatever the
// client negotiated: the login itself needs them.
const goMySQLRequired = gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_SECURE_CONNECTION | gomysql.CLIENT_PLUGIN_AUTH

// goMySQLOptional are the flags go-mysql's client asks for only when told
// to (client.Conn.SetCapability) and that ProxyCapabilities offers.
const goMySQLOptional = gomysql.CLIENT_FOUND_ROWS | gomysql.CLIENT_IGNORE_SPACE | gomysql.CLIENT_MULTI_STATEMENTS |
	gomysql.CLIENT_MULTI_RESULTS | gomysql.CLIENT_PS_MULTI_RESULTS | gomysql.CLIENT_LOCAL_FILES |
	gomysql.CLIENT_SESSION_TRACK

// UpstreamParams are the login [ConnectUpstream] makes.
type UpstreamParams struct {
	// User is the database user (from the route); required. The agent
	// logs in with its client certificate and no password.
	User string
	// Database is the default database; empty for none.
	Database string
	// Capabilities are the flags the client negotiated
	// ([SessionStart].Capabilities); the login asks for exactly those the
	// database has (minus CLIENT_LOCAL_FILES, see AllowLoadDataLocal).
	Capabilities uint32
	// Charset is the client's collation ID; unknown IDs fall back to
	// utf8mb4_general_ci.
	Charset uint8
	// Attributes are connection attributes for the database (the client's,
	// plus whatever the agent adds, e.g. the Portcullis user); they replace
	// go-mysql's own of the same name.
	Attributes map[string]string
	// AllowLoadDataLocal keeps CLIENT_LOCAL_FILES when the client
	// negotiated it, so that LOAD DATA LOCAL INFILE works; by default the
	// database refuses it. The relay must agree ([Relay].AllowLoadDataLocal).
	AllowLoadDataLocal bool
}

// Upstream is a session with a MySQL or MariaDB server, logged in with the
// agent's client certificate over verified TLS and ready for commands.
type Upstream struct {
	// Conn is the TLS connection to the server, positioned after the
	// login's OK packet: hand it to [Relay].Server.
	Conn net.Conn
	// ConnectionID is the server's ID for the session (its thread ID,
	// CONNECTION_ID()); map the client's ID to it for KILL
	// ([Relay].ConnIDs).
	ConnectionID uint32
	// ServerVersion is the version the server's greeting advertised, e.g.
	// "5.5.5-10.11.19-MariaDB-0+deb12u1".
	ServerVersion string
	// Capabilities are the flags the upstream session negotiated: the
	// client's and the server's in common, as the login asked.
	Capabilities uint32
	// Status are the server status flags after the login
	// ([SessionStart.WriteAuthOK]).
	Status uint16
}

// ConnectUpstream logs in on conn, an established TCP connection to a
// MySQL or MariaDB server: it reads the server's greeting, asks for TLS and
// does the handshake with tlsConfig (which must verify the server and
// present the client certificate for the database user), and logs in as
// p.User without a password, with go-mysql's client.
//
// The login's capability flags are the client's, p.Capabilities, limited
// to what the server has, with CLIENT_LOCAL_FILES dropped unless
// p.AllowLoadDataLocal: go-mysql's own defaults (CLIENT_DEPRECATE_EOF,
// CLIENT_QUERY_ATTRIBUTES) are dropped when the client did not negotiate
// them, since a result set framed for another client breaks the client.
// When the server lacks a flag that frames what it sends
// (CLIENT_DEPRECATE_EOF, CLIENT_SESSION_TRACK) and the client negotiated
// it, the session cannot be relayed: a [*CapabilityError].
//
// Errors: a [*PasswordRequiredError] when the server does not accept the
// certificate login (wrap-checks also find its [*ServerError]); a
// [*ServerError] (forward it to the client) for another ERR packet, e.g.
// an unknown database; others for TLS and I/O failures. ctx bounds the
// whole exchange. On error conn is closed; on success the returned
// Upstream owns it (through Conn).
func ConnectUpstream(ctx context.Context, conn net.Conn, tlsConfig *tls.Config, p UpstreamParams) (up *Upstream, err error) {
	defer func() {
		if err != nil {
			conn.Close()
			up = nil
		}
	}()
	if tlsConfig == nil {
		return nil, errors.New("mysql: ConnectUpstream needs a TLS configuration; the database session must be encrypted and verified")
	}
	if p.User == "" {
		return nil, errors.New("mysql: ConnectUpstream needs UpstreamParams.User, the database user")
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

	// Read the greeting first, to know the server's flags before the
	// login is written; go-mysql then reads the same bytes again.
	greeting, err := readPacket(conn, 0, maxGreeting)
	if err != nil {
		return nil, fmt.Errorf("mysql: read the greeting of the database at %s: %w", conn.RemoteAddr(), err)
	}
	if code, state, msg, ok := decodeError(greeting); ok {
		return nil, &ServerError{Code: code, SQLState: state, Message: msg}
	}
	serverCaps, err := greetingCapabilities(greeting)
	if err != nil {
		return nil, fmt.Errorf("mysql: the database at %s sent a bad greeting (%v); is it a MySQL server?", conn.RemoteAddr(), err)
	}
	const needed = gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_SECURE_CONNECTION | gomysql.CLIENT_PLUGIN_AUTH
	if serverCaps&needed != needed {
		return nil, fmt.Errorf("mysql: the database at %s is too old (no protocol 4.1 with authentication plugins); Portcullis needs MySQL 5.7 or MariaDB 10.2 or later", conn.RemoteAddr())
	}
	if serverCaps&gomysql.CLIENT_SSL == 0 {
		return nil, fmt.Errorf("mysql: the database at %s does not accept TLS; configure ssl_cert, ssl_key and ssl_ca with the files from pctl auth sign --format db", conn.RemoteAddr())
	}
	if missing := p.Capabilities & framingCapabilities &^ serverCaps; missing != 0 {
		return nil, &CapabilityError{Missing: capabilityNames(missing)}
	}
	want := p.Capabilities & ProxyCapabilities & serverCaps
	if !p.AllowLoadDataLocal {
		want &^= gomysql.CLIENT_LOCAL_FILES
	}

	collation := fallbackCollation
	if c, err := charset.GetCollationByID(int(p.Charset)); err == nil && c.ID == int(p.Charset) {
		collation = c.Name
	}
	replay := &replayConn{Conn: conn, prefix: appendPacket(nil, 0, greeting)}
	dial := func(context.Context, string, string) (net.Conn, error) { return replay, nil }
	configure := func(c *client.Conn) error {
		c.SetTLSConfig(tlsConfig)
		c.BufferSize = 16 << 10
		for _, f := range flagList(goMySQLDefaults &^ goMySQLRequired &^ want) {
			c.UnsetCapability(f)
		}
		for _, f := range flagList(goMySQLOptional & want) {
			if err := c.SetCapability(f); err != nil {
				return err
			}
		}
		if want&gomysql.CLIENT_LOCAL_FILES == 0 {
			c.UnsetCapability(gomysql.CLIENT_LOCAL_FILES)
		}
		if err := c.SetCollation(collation); err != nil {
			return err
		}
		if len(p.Attributes) > 0 {
			c.SetAttributes(p.Attributes)
		}
		return nil
	}
	cl, err := client.ConnectWithDialer(ctx, "tcp", conn.RemoteAddr().String(), p.User, "", p.Database, dial, configure)
	if err != nil {
		return nil, loginError(p.User, conn, err)
	}
	tlsConn, ok := cl.Conn.Conn.(*tls.Conn)
	if !ok {
		return nil, errors.New("mysql: the database session is not encrypted after the login; this is a bug in Portcullis")
	}
	// What go-mysql asked for: the flags above, TLS, and the login's
	// own (attributes, which it always sends, and the database).
	sent := want | goMySQLRequired | gomysql.CLIENT_SSL | gomysql.CLIENT_CONNECT_ATTRS
	if p.Database != "" {
		sent |= gomysql.CLIENT_CONNECT_WITH_DB
	}
	var status uint16
	if cl.IsAutoCommit() {
		status |= gomysql.SERVER_STATUS_AUTOCOMMIT
	}
	if cl.IsInTransaction() {
		status |= gomysql.SERVER_STATUS_IN_TRANS
	}
	return &Upstream{
		Conn:          tlsConn,
		ConnectionID:  cl.GetConnectionID(),
		ServerVersion: cl.GetServerVersion(),
		Capabilities:  sent & serverCaps,
		Status:        status,
	}, nil
}

// loginError turns go-mysql's error for a failed login into ours.
func loginError(user string, conn net.Conn, err error) error {
	var me *gomysql.MyError
	if errors.As(err, &me) {
		se := &ServerError{Code: me.Code, SQLState: me.State, Message: me.Message}
		switch me.Code {
		case gomysql.ER_ACCESS_DENIED_ERROR, gomysql.ER_ACCESS_DENIED_NO_PASSWORD_ERROR:
			return &PasswordRequiredError{User: user, Server: se}
		}
		return se
	}
	if m := unsupportedPlugin.FindStringSubmatch(err.Error()); m != nil {
		return &PasswordRequiredError{User: user, Plugin: m[1]}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("mysql: log in to the database at %s: %w", conn.RemoteAddr(), err)
	}
	var re tls.RecordHeaderError
	var ce *tls.CertificateVerificationError
	if errors.As(err, &re) || errors.As(err, &ce) {
		return fmt.Errorf("mysql: TLS handshake with the database at %s: %w", conn.RemoteAddr(), err)
	}
	return fmt.Errorf("mysql: log in to the database at %s: %w", conn.RemoteAddr(), err)
}

// unsupportedPlugin matches go-mysql's errors for an authentication plugin
// it cannot answer.
var unsupportedPlugin = regexp.MustCompile(`auth plugin (?:name )?'([^']*)'(?: is not supported)?`)

// greetingCapabilities returns the capability flags of a protocol 10
// greeting.
func greetingCapabilities(g []byte) (uint32, error) {
	r := reader{b: g}
	v, err := r.byte()
	if err != nil {
		return 0, err
	}
	if v != gomysql.ClassicProtocolVersion {
		return 0, fmt.Errorf("protocol version %d, not 10", v)
	}
	if _, err := r.cstring(false); err != nil { // server version
		return 0, err
	}
	if _, err := r.bytes(4 + 8 + 1); err != nil { // connection ID, scramble, filler
		return 0, err
	}
	lo, err := r.uint16()
	if err != nil {
		return 0, err
	}
	if r.len() < 5 {
		return uint32(lo), nil
	}
	if _, err := r.bytes(3); err != nil { // charset, status
		return 0, err
	}
	hi, err := r.uint16()
	if err != nil {
		return 0, err
	}
	return uint32(lo) | uint32(hi)<<16, nil
}

// flagList splits flags into single bits.
func flagList(flags uint32) []uint32 {
	var out []uint32
	for bit := uint32(1); bit != 0; bit <<= 1 {
		if flags&bit != 0 {
			out = append(out, bit)
		}
	}
	return out
}

func capabilityNames(flags uint32) []string {
	var names []string
	for _, f := range flagList(flags) {
		if n, ok := gomysql.CapNames[f]; ok {
			names = append(names, n)
		} else {
			names = append(names, fmt.Sprintf("capability 0x%x", f))
		}
	}
	return names
}

// replayConn is a net.Conn whose reads return prefix first.
type replayConn struct {
	net.Conn
	prefix []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
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
