package mysql

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// DefaultServerVersion is the version a proxy advertises when
// FrontendConfig.ServerVersion is empty. A MySQL 8 version makes MySQL 8
// and 9 clients, MariaDB clients and the Go drivers speak the protocol they
// speak to a current server.
const DefaultServerVersion = "8.0.36-portcullis"

// AuthPlugin is the authentication plugin the greeting names:
// caching_sha2_password, the default of MySQL 8 and the only built-in
// password plugin MySQL 9 clients still have. Clients answer with an empty
// response (they have no password: they log in with their certificate),
// which the proxy accepts without asking anything more.
const AuthPlugin = gomysql.AUTH_CACHING_SHA2_PASSWORD

// ProxyCapabilities are the capability flags the greeting offers
// (CLIENT_SSL only when ServerHandshake does the TLS upgrade). A client
// negotiates a subset of them ([ClientHello].Capabilities), and the agent
// opens the upstream session with exactly that subset ([ConnectUpstream]),
// so that both ends agree on how every packet is framed. They are the
// flags that every supported server has (MySQL 5.7 and later, MariaDB
// 10.2 and later) and that the upstream login can repeat:
//
//   - CLIENT_DEPRECATE_EOF and CLIENT_SESSION_TRACK are offered: clients
//     that take them (go-sql-driver, MySQL 8 clients) get result sets ended
//     by OK packets, clients that do not (the mariadb client) get EOF
//     packets, each because the upstream session asks for the same.
//   - CLIENT_LOCAL_FILES is offered, so that a client can ask for LOAD DATA
//     LOCAL INFILE; the agent passes it upstream only when it allows that
//     ([UpstreamParams].AllowLoadDataLocal), so by default the database
//     refuses the statement with its own error.
//   - Not offered: compression (the relay reads commands as they are sent),
//     CLIENT_QUERY_ATTRIBUTES and CLIENT_OPTIONAL_RESULTSET_METADATA (they
//     change the command and result formats, and MariaDB lacks them),
//     CLIENT_INTERACTIVE and CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS (the
//     upstream login cannot repeat them), multi-factor authentication.
//   - CLIENT_LONG_PASSWORD, which MariaDB calls CLIENT_MYSQL, is set: the
//     proxy presents itself as MySQL, so MariaDB clients use none of
//     MariaDB's extended capabilities (bulk and direct execution).
const ProxyCapabilities = gomysql.CLIENT_LONG_PASSWORD | gomysql.CLIENT_FOUND_ROWS | gomysql.CLIENT_LONG_FLAG |
	gomysql.CLIENT_CONNECT_WITH_DB | gomysql.CLIENT_LOCAL_FILES | gomysql.CLIENT_IGNORE_SPACE |
	gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_SSL | gomysql.CLIENT_TRANSACTIONS |
	gomysql.CLIENT_SECURE_CONNECTION | gomysql.CLIENT_MULTI_STATEMENTS | gomysql.CLIENT_MULTI_RESULTS |
	gomysql.CLIENT_PS_MULTI_RESULTS | gomysql.CLIENT_PLUGIN_AUTH | gomysql.CLIENT_CONNECT_ATTRS |
	gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | gomysql.CLIENT_SESSION_TRACK | gomysql.CLIENT_DEPRECATE_EOF

// MaxHandshakeSize bounds the client's HandshakeResponse (connection
// attributes included); MySQL clients send a few hundred bytes.
const MaxHandshakeSize = 64 << 10

// sslRequestSize is the payload size of an SSLRequest.
const sslRequestSize = 32

// greetingCharset is the collation the greeting names: utf8mb4_general_ci,
// which MySQL and MariaDB clients both know.
const greetingCharset = 45

// scrambleSize is the size of the authentication challenge.
const scrambleSize = 20

// TLSRequiredMessage is what a client that logs in without TLS is told.
const TLSRequiredMessage = "connect with TLS and your Portcullis client certificate (pcl db connect NAME)"

// FrontendConfig configures [ServerHandshake].
type FrontendConfig struct {
	// ServerVersion is the version the greeting advertises; empty means
	// DefaultServerVersion.
	ServerVersion string
	// ConnectionID is the connection ID the greeting gives the client
	// (what CONNECTION_ID() returns on MySQL, and what the mysql client
	// sends in KILL QUERY on Ctrl-C). The database's own ID is different;
	// the agent translates ([Relay].ConnIDs). Pick IDs that are unique
	// among the proxies' live sessions, e.g. random 31-bit numbers.
	ConnectionID uint32
	// TLSConfig is the proxy's server TLS configuration for the upgrade
	// after the client's SSLRequest. It should request a client
	// certificate without verifying it (tls.RequestClientCert; NoClientCert
	// is raised to that): the caller verifies the chain afterwards, so that
	// a refusal reaches the client as an ERR packet rather than a TLS
	// alert. nil means that conn is a *tls.Conn whose handshake is done (a
	// connection an ALPN router has terminated): the greeting then does not
	// offer TLS again.
	TLSConfig *tls.Config
	// Rand is the source of the authentication challenge; nil means
	// crypto/rand.Reader.
	Rand io.Reader
}

// ClientHello is what a client said when it logged in to the proxy.
type ClientHello struct {
	// Conn is the TLS connection to the client; the session goes on over
	// it.
	Conn *tls.Conn
	// Username and Database are what the client asked for (Database may
	// be empty). The route in the client's certificate decides; the proxy
	// checks that these agree with it.
	Username string
	Database string
	// Capabilities are the negotiated capability flags: the client's,
	// limited to [ProxyCapabilities].
	Capabilities uint32
	// Charset is the collation ID the client asked for, e.g. 45
	// (utf8mb4_general_ci) or 255 (utf8mb4_0900_ai_ci).
	Charset uint8
	// Attributes are the client's connection attributes (program name,
	// version, ...); nil when it sent none.
	Attributes map[string]string
	// AuthPlugin is the authentication plugin the client answered with.
	AuthPlugin string
	// AuthResponded reports that the client's authentication response was
	// not empty: it had a password. It decides the packets that accept its
	// login ([SessionStart.WriteAuthOK]).
	AuthResponded bool
	// ConnectionID is the ID the greeting gave the client.
	ConnectionID uint32
	// SequenceID is the sequence ID of the next packet to the client: the
	// OK or ERR packet that ends the login.
	SequenceID byte
}

// ServerHandshake runs the proxy's side of a MySQL login on conn, a new
// client connection: it sends a protocol 10 greeting offering
// [ProxyCapabilities] and the [AuthPlugin], reads the client's SSLRequest,
// upgrades to TLS with cfg.TLSConfig and reads the HandshakeResponse over
// TLS. It does not answer the login: after checking the client's
// certificate (Conn.ConnectionState().PeerCertificates) the caller accepts
// it with [SessionStart.WriteAuthOK] (usually on the agent, once the
// database session is open) or refuses it with [ClientHello.WriteError].
//
// A client that sends its login without TLS, or does not speak protocol
// 4.1, gets an ERR packet (TLSRequiredMessage, code
// [CodeSecureTransportRequired]) before the error is returned. The caller
// bounds the exchange with a deadline on conn.
func ServerHandshake(conn net.Conn, cfg FrontendConfig) (*ClientHello, error) {
	random := cfg.Rand
	if random == nil {
		random = rand.Reader
	}
	var scramble [scrambleSize]byte
	if _, err := io.ReadFull(random, scramble[:]); err != nil {
		return nil, fmt.Errorf("mysql: generate an authentication challenge: %w", err)
	}
	for i, c := range scramble {
		scramble[i] = 0x21 + c%94 // printable, never NUL
	}
	caps := ProxyCapabilities
	if cfg.TLSConfig == nil {
		if _, ok := conn.(*tls.Conn); !ok {
			return nil, errors.New("mysql: ServerHandshake needs FrontendConfig.TLSConfig, or a connection that is already TLS")
		}
		caps &^= gomysql.CLIENT_SSL
	}
	version := cfg.ServerVersion
	if version == "" {
		version = DefaultServerVersion
	}
	if _, err := conn.Write(appendGreeting(nil, version, cfg.ConnectionID, caps, scramble[:])); err != nil {
		return nil, fmt.Errorf("mysql: send the greeting to %s: %w", conn.RemoteAddr(), err)
	}

	first, err := readPacket(conn, 1, MaxHandshakeSize)
	if err != nil {
		return nil, fmt.Errorf("mysql: read the login of %s: %w", conn.RemoteAddr(), err)
	}
	if len(first) < 4 {
		WriteError(conn, 2, CodeMalformedPacket, StateGeneral, "malformed login packet; connect with a MySQL client")
		return nil, fmt.Errorf("mysql: %s sent a login of %d bytes; it does not speak the MySQL protocol", conn.RemoteAddr(), len(first))
	}
	clientCaps := binary.LittleEndian.Uint32(first)
	if clientCaps&gomysql.CLIENT_PROTOCOL_41 == 0 {
		WriteError(conn, 2, CodeMalformedPacket, StateGeneral, "this client is too old: it does not speak MySQL protocol 4.1; use a current mysql or mariadb client")
		return nil, fmt.Errorf("mysql: %s does not speak protocol 4.1", conn.RemoteAddr())
	}

	var tc *tls.Conn
	seq := byte(2)
	response := first
	if cfg.TLSConfig != nil {
		if clientCaps&gomysql.CLIENT_SSL == 0 {
			WriteError(conn, 2, CodeSecureTransportRequired, StateGeneral, TLSRequiredMessage)
			e := &TLSRequiredError{Addr: conn.RemoteAddr().String()}
			if hr, err := parseHandshakeResponse(first); err == nil {
				e.Username, e.Database = hr.username, hr.database
			}
			return nil, e
		}
		if len(first) != sslRequestSize {
			WriteError(conn, 2, CodeMalformedPacket, StateGeneral, "malformed SSL request; connect with a MySQL client")
			return nil, fmt.Errorf("mysql: %s sent an SSL request of %d bytes", conn.RemoteAddr(), len(first))
		}
		tlsConfig := cfg.TLSConfig
		if tlsConfig.ClientAuth == tls.NoClientCert {
			tlsConfig = tlsConfig.Clone()
			tlsConfig.ClientAuth = tls.RequestClientCert
		}
		tc = tls.Server(conn, tlsConfig)
		if err := tc.HandshakeContext(context.Background()); err != nil {
			return nil, fmt.Errorf("mysql: TLS handshake with %s: %w", conn.RemoteAddr(), err)
		}
		if response, err = readPacket(tc, 2, MaxHandshakeSize); err != nil {
			return nil, fmt.Errorf("mysql: read the login of %s: %w", conn.RemoteAddr(), err)
		}
		seq = 3
	} else {
		tc = conn.(*tls.Conn)
		if clientCaps&gomysql.CLIENT_SSL != 0 {
			WriteError(conn, 2, CodeMalformedPacket, StateGeneral, "this connection is already encrypted by TLS; connect without TLS inside it")
			return nil, fmt.Errorf("mysql: %s asked for TLS inside TLS", conn.RemoteAddr())
		}
	}

	hr, err := parseHandshakeResponse(response)
	if err != nil {
		WriteError(tc, seq, CodeMalformedPacket, StateGeneral, "malformed login packet; connect with a MySQL client")
		return nil, fmt.Errorf("mysql: %s sent a malformed login: %w", conn.RemoteAddr(), err)
	}
	return &ClientHello{
		Conn:          tc,
		Username:      hr.username,
		Database:      hr.database,
		Capabilities:  hr.capabilities & caps,
		Charset:       hr.charset,
		Attributes:    hr.attributes,
		AuthPlugin:    hr.authPlugin,
		AuthResponded: hr.authResponded,
		ConnectionID:  cfg.ConnectionID,
		SequenceID:    seq,
	}, nil
}

// WriteError refuses the login with an ERR packet on h.Conn (see
// [WriteError]).
func (h *ClientHello) WriteError(code uint16, sqlstate, message string) error {
	return WriteError(h.Conn, h.SequenceID, code, sqlstate, message)
}

// SessionStart returns what the proxy hands the agent for this login.
func (h *ClientHello) SessionStart() *SessionStart {
	return &SessionStart{
		Username:      h.Username,
		Database:      h.Database,
		Capabilities:  h.Capabilities,
		Charset:       h.Charset,
		Attributes:    h.Attributes,
		ConnectionID:  h.ConnectionID,
		AuthPlugin:    h.AuthPlugin,
		AuthResponded: h.AuthResponded,
		Sequence:      h.SequenceID,
	}
}

// appendGreeting appends a protocol 10 greeting (sequence ID 0).
func appendGreeting(b []byte, version string, connID, caps uint32, scramble []byte) []byte {
	p := make([]byte, 0, 64+len(version))
	p = append(p, gomysql.ClassicProtocolVersion)
	p = append(p, version...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint32(p, connID)
	p = append(p, scramble[:8]...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps))
	p = append(p, greetingCharset)
	p = binary.LittleEndian.AppendUint16(p, gomysql.SERVER_STATUS_AUTOCOMMIT)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps>>16))
	p = append(p, byte(len(scramble)+1))
	p = append(p, make([]byte, 10)...) // reserved; MariaDB's extended capabilities when CLIENT_MYSQL is unset
	p = append(p, scramble[8:]...)
	p = append(p, 0)
	p = append(p, AuthPlugin...)
	p = append(p, 0)
	return appendPacket(b, 0, p)
}

// handshakeResponse is the decoded HandshakeResponse41.
type handshakeResponse struct {
	capabilities  uint32 // as the client sent them
	maxPacket     uint32
	charset       uint8
	username      string
	authResponded bool
	database      string
	authPlugin    string
	attributes    map[string]string
}

// parseHandshakeResponse decodes a HandshakeResponse41 payload. The
// fields present follow the flags the client sent.
func parseHandshakeResponse(p []byte) (*handshakeResponse, error) {
	r := reader{b: p}
	var hr handshakeResponse
	var err error
	if hr.capabilities, err = r.uint32(); err != nil {
		return nil, err
	}
	if hr.capabilities&gomysql.CLIENT_PROTOCOL_41 == 0 {
		return nil, errors.New("not a protocol 4.1 login")
	}
	if hr.maxPacket, err = r.uint32(); err != nil {
		return nil, err
	}
	if hr.charset, err = r.byte(); err != nil {
		return nil, err
	}
	if _, err = r.bytes(23); err != nil { // filler (MariaDB: extended capabilities in the last 4)
		return nil, err
	}
	user, err := r.cstring(false)
	if err != nil {
		return nil, fmt.Errorf("user name: %w", err)
	}
	hr.username = string(user)
	var auth []byte
	switch {
	case hr.capabilities&gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0:
		auth, err = r.lenencBytes()
	case hr.capabilities&gomysql.CLIENT_SECURE_CONNECTION != 0:
		var n byte
		if n, err = r.byte(); err == nil {
			auth, err = r.bytes(int(n))
		}
	default:
		auth, err = r.cstring(true)
	}
	if err != nil {
		return nil, fmt.Errorf("authentication response: %w", err)
	}
	hr.authResponded = len(auth) > 0 && !(len(auth) == 1 && auth[0] == 0)
	if hr.capabilities&gomysql.CLIENT_CONNECT_WITH_DB != 0 && r.len() > 0 {
		db, err := r.cstring(true)
		if err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
		hr.database = string(db)
	}
	if hr.capabilities&gomysql.CLIENT_PLUGIN_AUTH != 0 && r.len() > 0 {
		plugin, err := r.cstring(true)
		if err != nil {
			return nil, fmt.Errorf("authentication plugin: %w", err)
		}
		hr.authPlugin = string(plugin)
	}
	if hr.capabilities&gomysql.CLIENT_CONNECT_ATTRS != 0 && r.len() > 0 {
		block, err := r.lenencBytes()
		if err != nil {
			return nil, fmt.Errorf("connection attributes: %w", err)
		}
		ar := reader{b: block}
		for ar.len() > 0 {
			k, err := ar.lenencBytes()
			if err != nil {
				return nil, fmt.Errorf("connection attribute name: %w", err)
			}
			v, err := ar.lenencBytes()
			if err != nil {
				return nil, fmt.Errorf("connection attribute %q: %w", k, err)
			}
			if hr.attributes == nil {
				hr.attributes = map[string]string{}
			}
			hr.attributes[string(k)] = string(v)
		}
	}
	// What follows (the zstd compression level) is not used: compression
	// is never offered.
	return &hr, nil
}
