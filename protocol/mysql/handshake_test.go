package mysql

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// handshakeResponse41 encodes a HandshakeResponse41 payload.
func handshakeResponse41(caps uint32, user string, auth []byte, db, plugin string, attrs [][2]string) []byte {
	p := binary.LittleEndian.AppendUint32(nil, caps)
	p = binary.LittleEndian.AppendUint32(p, 1<<24)
	p = append(p, 45)
	p = append(p, make([]byte, 23)...)
	p = append(append(p, user...), 0)
	switch {
	case caps&gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0:
		p = gomysql.AppendLengthEncodedInteger(p, uint64(len(auth)))
		p = append(p, auth...)
	case caps&gomysql.CLIENT_SECURE_CONNECTION != 0:
		p = append(append(p, byte(len(auth))), auth...)
	default:
		p = append(append(p, auth...), 0)
	}
	if caps&gomysql.CLIENT_CONNECT_WITH_DB != 0 {
		p = append(append(p, db...), 0)
	}
	if caps&gomysql.CLIENT_PLUGIN_AUTH != 0 {
		p = append(append(p, plugin...), 0)
	}
	if caps&gomysql.CLIENT_CONNECT_ATTRS != 0 {
		var block []byte
		for _, kv := range attrs {
			block = append(block, gomysql.PutLengthEncodedString([]byte(kv[0]))...)
			block = append(block, gomysql.PutLengthEncodedString([]byte(kv[1]))...)
		}
		p = append(gomysql.AppendLengthEncodedInteger(p, uint64(len(block))), block...)
	}
	return p
}

func TestParseHandshakeResponse(t *testing.T) {
	const base = gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_SECURE_CONNECTION
	for _, tc := range []struct {
		name string
		in   []byte
		want *handshakeResponse
	}{
		{"everything", handshakeResponse41(base|gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA|gomysql.CLIENT_CONNECT_WITH_DB|gomysql.CLIENT_PLUGIN_AUTH|gomysql.CLIENT_CONNECT_ATTRS,
			"alice", bytes.Repeat([]byte{7}, 32), "app", "caching_sha2_password", [][2]string{{"_client_name", "libmysql"}, {"program_name", "mysql"}}),
			&handshakeResponse{capabilities: base | gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | gomysql.CLIENT_CONNECT_WITH_DB | gomysql.CLIENT_PLUGIN_AUTH | gomysql.CLIENT_CONNECT_ATTRS,
				maxPacket: 1 << 24, charset: 45, username: "alice", authResponded: true, database: "app", authPlugin: "caching_sha2_password",
				attributes: map[string]string{"_client_name": "libmysql", "program_name": "mysql"}}},
		{"no password, no database", handshakeResponse41(base|gomysql.CLIENT_PLUGIN_AUTH, "bob", nil, "", "mysql_native_password", nil),
			&handshakeResponse{capabilities: base | gomysql.CLIENT_PLUGIN_AUTH, maxPacket: 1 << 24, charset: 45, username: "bob", authPlugin: "mysql_native_password"}},
		{"old-style auth", handshakeResponse41(gomysql.CLIENT_PROTOCOL_41, "carol", []byte("x"), "", "", nil),
			&handshakeResponse{capabilities: gomysql.CLIENT_PROTOCOL_41, maxPacket: 1 << 24, charset: 45, username: "carol", authResponded: true}},
		{"database flag without a database", handshakeResponse41(base, "dave", nil, "", "", nil)[:0:0], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseHandshakeResponse(tc.in)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("parsed %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	// Every truncation of a valid response either fails or parses the
	// fields it still has.
	full := handshakeResponse41(base|gomysql.CLIENT_CONNECT_WITH_DB|gomysql.CLIENT_PLUGIN_AUTH|gomysql.CLIENT_CONNECT_ATTRS, "alice", []byte{1, 2}, "app", "p", [][2]string{{"k", "v"}})
	for i := range full {
		parseHandshakeResponse(full[:i])
	}
}

// frontend runs ServerHandshake on each connection of a loopback listener
// and accepts the login (or refuses it with refuse).
type frontend struct {
	ln     net.Listener
	hellos chan *ClientHello
	errs   chan error
}

func startFrontend(t *testing.T, cfg FrontendConfig, alreadyTLS *tls.Config) *frontend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &frontend{ln: ln, hellos: make(chan *ClientHello, 4), errs: make(chan error, 4)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			func() {
				defer c.Close()
				if alreadyTLS != nil {
					tc := tls.Server(c, alreadyTLS)
					if err := tc.Handshake(); err != nil {
						f.errs <- err
						return
					}
					c = tc
				}
				h, err := ServerHandshake(c, cfg)
				if err != nil {
					f.errs <- err
					return
				}
				h.SessionStart().WriteAuthOK(h.Conn, StatusAutocommit)
				f.hellos <- h
				io.Copy(io.Discard, h.Conn) // until the client leaves
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return f
}

func proxyTLS(t *testing.T) *tls.Config {
	t.Helper()
	prefix := serverFiles(t)
	pair, err := tls.LoadX509KeyPair(prefix+".crt", prefix+".key")
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}}
}

// The greeting and login work for go-mysql's client, which answers the
// caching_sha2_password challenge when it has a password: the OK then
// follows the "fast authentication" packet it waits for.
func TestServerHandshakeAcceptsClients(t *testing.T) {
	f := startFrontend(t, FrontendConfig{ConnectionID: 4242, TLSConfig: proxyTLS(t), ServerVersion: "8.0.99-test"}, nil)
	for _, password := range []string{"", "ignored"} {
		c, err := client.Connect(f.ln.Addr().String(), "alice", password, "app", func(c *client.Conn) error {
			c.SetTLSConfig(clientTLSFor(t, "alice"))
			c.SetAttributes(map[string]string{"program_name": "handshake_test"})
			return nil
		})
		if err != nil {
			t.Fatalf("password %q: %v", password, err)
		}
		h := <-f.hellos
		if c.GetConnectionID() != 4242 || c.GetServerVersion() != "8.0.99-test" {
			t.Errorf("client saw connection %d, version %q", c.GetConnectionID(), c.GetServerVersion())
		}
		c.Close()
		if h.Username != "alice" || h.Database != "app" || h.Attributes["program_name"] != "handshake_test" ||
			h.AuthPlugin != AuthPlugin || h.AuthResponded != (password != "") || h.SequenceID != 3 || h.ConnectionID != 4242 {
			t.Errorf("hello %+v", h)
		}
		if h.Capabilities&^ProxyCapabilities != 0 || h.Capabilities&gomysql.CLIENT_QUERY_ATTRIBUTES != 0 {
			t.Errorf("negotiated %#x, more than offered", h.Capabilities)
		}
		if len(h.Conn.ConnectionState().PeerCertificates) != 1 {
			t.Error("the client certificate was not requested")
		}
	}
}

// On a connection that is TLS already (an ALPN route), the greeting does
// not offer TLS and the login comes in the clear inside it.
func TestServerHandshakeInsideTLS(t *testing.T) {
	f := startFrontend(t, FrontendConfig{ConnectionID: 7}, proxyTLS(t))
	tlsCfg := clientTLSFor(t, "alice")
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return tls.Dial(network, addr, tlsCfg)
	}
	c, err := client.ConnectWithDialer(context.Background(), "tcp", f.ln.Addr().String(), "alice", "", "", dial)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	h := <-f.hellos
	if h.SequenceID != 2 || h.Capabilities&gomysql.CLIENT_SSL != 0 || h.Username != "alice" {
		t.Errorf("hello %+v", h)
	}

	// A client that insists on TLS inside TLS is told why not.
	c, err = client.ConnectWithDialer(context.Background(), "tcp", f.ln.Addr().String(), "alice", "", "", dial,
		func(c *client.Conn) error { c.SetTLSConfig(tlsCfg); return nil })
	if err == nil {
		c.Close()
		t.Fatal("TLS inside TLS accepted")
	}
	if err := <-f.errs; err == nil {
		t.Error("no error")
	}
}

func TestServerHandshakeRefusals(t *testing.T) {
	f := startFrontend(t, FrontendConfig{TLSConfig: proxyTLS(t)}, nil)
	for _, tc := range []struct {
		name  string
		login []byte // the client's first packet payload
		code  uint16
		msg   string
	}{
		{"plaintext login", handshakeResponse41(gomysql.CLIENT_PROTOCOL_41|gomysql.CLIENT_SECURE_CONNECTION, "alice", nil, "", "", nil), CodeSecureTransportRequired, TLSRequiredMessage},
		{"protocol 4.0", []byte{0x85, 0xa4, 0xff, 0xff, 0x00, 'a', 0}, CodeMalformedPacket, "protocol 4.1"},
		{"too short", []byte{1}, CodeMalformedPacket, "malformed"},
		{"long SSL request", append(handshakeResponse41(gomysql.CLIENT_PROTOCOL_41|gomysql.CLIENT_SSL, "a", nil, "", "", nil), 0), CodeMalformedPacket, "SSL request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", f.ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			greeting, err := readPacket(c, 0, maxGreeting)
			if err != nil {
				t.Fatal(err)
			}
			caps, err := greetingCapabilities(greeting)
			if err != nil || caps != ProxyCapabilities {
				t.Fatalf("greeting capabilities %#x, %v", caps, err)
			}
			if !bytes.HasSuffix(greeting, []byte(AuthPlugin+"\x00")) {
				t.Errorf("greeting %q does not name %s", greeting, AuthPlugin)
			}
			c.Write(packet(1, tc.login))
			resp, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			checkERR(t, resp, 2, tc.code, tc.msg)
			err = <-f.errs
			if err == nil {
				t.Fatal("ServerHandshake returned no error")
			}
			// A plaintext login is a typed error naming the user, so that
			// the proxy can audit the refusal.
			var te *TLSRequiredError
			if got := errors.As(err, &te); got != (tc.code == CodeSecureTransportRequired) {
				t.Fatalf("TLSRequiredError = %v for %v", got, err)
			}
			if te != nil && te.Username != "alice" {
				t.Errorf("TLSRequiredError names %q, want alice", te.Username)
			}
		})
	}
}

// ServerHandshake needs a TLS configuration unless the connection is TLS.
func TestServerHandshakeNeedsTLS(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := ServerHandshake(a, FrontendConfig{}); err == nil {
		t.Error("no error")
	}
}

func TestSessionStartRoundTrip(t *testing.T) {
	in := &SessionStart{Username: "alice", Database: "app", Capabilities: clientCaps, Charset: 255,
		Attributes: map[string]string{"program_name": "mysql", "_pid": "42"}, ConnectionID: 1 << 31, AuthPlugin: AuthPlugin, AuthResponded: true, Sequence: 3}
	var buf bytes.Buffer
	if err := WriteSessionStart(&buf, in); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("next")
	out, err := ReadSessionStart(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("got %+v", out)
	}
	if buf.String() != "next" {
		t.Errorf("read past the session start: %q left", buf.String())
	}

	// The agent accepts the login as a server would.
	var ok bytes.Buffer
	out.WriteAuthOK(&ok, StatusAutocommit)
	ps, seqs := readPackets(t, ok.Bytes())
	if len(ps) != 2 || !bytes.Equal(ps[0], []byte{1, 3}) || ps[1][0] != 0 || seqs[0] != 3 || seqs[1] != 4 {
		t.Errorf("WriteAuthOK wrote %q", ok.Bytes())
	}
	ok.Reset()
	out.AuthResponded = false
	out.WriteAuthOK(&ok, StatusAutocommit)
	if ps, seqs := readPackets(t, ok.Bytes()); len(ps) != 1 || seqs[0] != 3 {
		t.Errorf("WriteAuthOK wrote %q", ok.Bytes())
	}
}

func TestReadSessionStartRefuses(t *testing.T) {
	frame := func(body string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	for name, in := range map[string][]byte{
		"empty":          nil,
		"zero length":    {0, 0, 0, 0},
		"too long":       {0x7f, 0xff, 0xff, 0xff},
		"short body":     {0, 0, 0, 9, '{'},
		"not JSON":       frame("hello"),
		"no protocol 41": frame(`{"username":"a","capabilities":0}`),
		"compression":    frame(`{"username":"a","capabilities":544}`),
	} {
		if _, err := ReadSessionStart(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	huge := &SessionStart{Capabilities: clientCaps, Attributes: map[string]string{"x": strings.Repeat("\x01", MaxSessionStartSize)}}
	if err := WriteSessionStart(io.Discard, huge); err == nil {
		t.Error("wrote a session start over the limit")
	}
}

func TestWriteErrorCutsLongMessages(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteError(&buf, 5, CodeAccessDenied, "bad", strings.Repeat("é", 70000)); err != nil {
		t.Fatal(err)
	}
	ps, seqs := readPackets(t, buf.Bytes())
	code, state, msg, ok := decodeError(ps[0])
	if !ok || seqs[0] != 5 || code != CodeAccessDenied || state != StateGeneral || len(ps[0]) > 0xffff+9 || !strings.Contains(msg, "truncated") {
		t.Errorf("ERR %d %q %q (%d bytes)", code, state, msg[:20], len(ps[0]))
	}
	if !errors.Is(WriteError(failingWriter{}, 1, 1, "HY000", "x"), errFailingWriter) {
		t.Error("write error not wrapped")
	}
}

var errFailingWriter = errors.New("failing writer")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errFailingWriter }
