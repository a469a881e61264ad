package mysql

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// upstreamFor dials the shared MariaDB and returns what logs in as user.
func upstreamFor(t *testing.T, user string) (net.Conn, *tls.Config, *dbtest.MariaDB) {
	t.Helper()
	my := shared.MariaDB(t)
	cert, key := dbtest.ClientFiles(t, shared.CA(t), user)
	raw, err := net.Dial("tcp", my.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return raw, my.TLSConfig(t, cert, key), my
}

// clientCaps are the flags a typical client negotiates with the proxy.
const clientCaps = ProxyCapabilities &^ gomysql.CLIENT_SSL

// query sends a COM_QUERY on an upstream connection and returns the
// payloads of its answer, up to the packet that ends the result set.
func query(t *testing.T, conn net.Conn, q string, deprecateEOF bool) [][]byte {
	t.Helper()
	if d, ok := testContext(t).Deadline(); ok {
		conn.SetDeadline(d) // a mis-framed answer fails instead of hanging
	}
	if _, err := conn.Write(command(gomysql.COM_QUERY, []byte(q))); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	eofs := 0
	for seq := byte(1); ; seq++ {
		p, err := readPacket(conn, seq, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
		switch {
		case len(out) == 1 && (p[0] == gomysql.OK_HEADER || p[0] == gomysql.ERR_HEADER):
			return out
		case p[0] == gomysql.EOF_HEADER && len(p) < 0xffffff:
			eofs++
			if deprecateEOF || eofs == 2 {
				return out
			}
		}
	}
}

// The regression the capability flags guard against, at the source: the
// upstream session frames result sets as the client negotiated. With
// CLIENT_DEPRECATE_EOF: column count, definitions, rows, and an OK packet
// with the EOF header; without it: an EOF packet after the definitions and
// one after the rows. (go-mysql's client asks for CLIENT_DEPRECATE_EOF on
// its own; a login that did not drop it would answer the second client in
// the first client's framing.)
func TestConnectUpstreamFramesAsTheClientNegotiated(t *testing.T) {
	for _, deprecateEOF := range []bool{false, true} {
		caps := clientCaps
		if !deprecateEOF {
			caps &^= gomysql.CLIENT_DEPRECATE_EOF
		}
		raw, tlsCfg, _ := upstreamFor(t, "alice")
		up, err := ConnectUpstream(testContext(t), raw, tlsCfg, UpstreamParams{User: "alice", Database: "app", Capabilities: caps, Charset: 45})
		if err != nil {
			t.Fatal(err)
		}
		defer up.Conn.Close()
		if got := up.Capabilities&gomysql.CLIENT_DEPRECATE_EOF != 0; got != deprecateEOF {
			t.Errorf("upstream capabilities %#x", up.Capabilities)
		}
		if up.ConnectionID == 0 || !strings.Contains(up.ServerVersion, "MariaDB") || up.Status&StatusAutocommit == 0 {
			t.Errorf("upstream %+v", up)
		}
		ps := query(t, up.Conn, "select 1 union select 2", deprecateEOF)
		// column count, one definition, [EOF], two rows, EOF or OK
		want := 5
		if !deprecateEOF {
			want = 6
			if ps[2][0] != gomysql.EOF_HEADER || len(ps[2]) != 5 {
				t.Errorf("no EOF packet after the column definitions: %q", ps)
			}
			if last := ps[len(ps)-1]; len(last) != 5 {
				t.Errorf("the result set ends in %q, not an EOF packet", last)
			}
		} else if last := ps[len(ps)-1]; len(last) < 7 {
			t.Errorf("the result set ends in %q, not an OK packet", last)
		}
		if len(ps) != want {
			t.Errorf("CLIENT_DEPRECATE_EOF=%v: %d packets, want %d: %q", deprecateEOF, len(ps), want, ps)
		}
	}
}

// The login repeats the client's collation.
func TestConnectUpstreamCharset(t *testing.T) {
	for charset, want := range map[uint8]string{8: "latin1_swedish_ci", 33: "utf8mb3_general_ci", 45: "utf8mb4_general_ci", 46: "utf8mb4_bin", 0: "utf8mb4_general_ci"} {
		raw, tlsCfg, _ := upstreamFor(t, "alice")
		up, err := ConnectUpstream(testContext(t), raw, tlsCfg, UpstreamParams{User: "alice", Capabilities: clientCaps, Charset: charset})
		if err != nil {
			t.Fatal(err)
		}
		ps := query(t, up.Conn, "select @@collation_connection", true)
		up.Conn.Close()
		if len(ps) < 3 || !bytes.Contains(ps[2], []byte(want)) {
			t.Errorf("charset %d: %q, want %s", charset, ps, want)
		}
	}
}

func TestConnectUpstreamErrors(t *testing.T) {
	ctx := testContext(t)
	my := shared.MariaDB(t)
	my.Exec(t, "create user if not exists 'pwuser'@'%' identified by 'secret' require subject '/CN=pwuser'")

	t.Run("unknown database", func(t *testing.T) {
		raw, tlsCfg, _ := upstreamFor(t, "alice")
		_, err := ConnectUpstream(ctx, raw, tlsCfg, UpstreamParams{User: "alice", Database: "nope", Capabilities: clientCaps})
		var se *ServerError
		if !errors.As(err, &se) || IsPasswordRequired(err) || !strings.Contains(se.Message, "nope") {
			t.Fatalf("got %v, want the server's error", err)
		}
		var buf bytes.Buffer
		se.Forward(&buf, 3)
		ps, seqs := readPackets(t, buf.Bytes())
		code, state, msg, _ := decodeError(ps[0])
		if seqs[0] != 3 || code != se.Code || state != se.SQLState || msg != se.Message {
			t.Errorf("forwarded %q", buf.Bytes())
		}
	})
	t.Run("password", func(t *testing.T) {
		raw, tlsCfg, _ := upstreamFor(t, "pwuser")
		_, err := ConnectUpstream(ctx, raw, tlsCfg, UpstreamParams{User: "pwuser", Capabilities: clientCaps})
		if !IsPasswordRequired(err) || !IsServerError(err) || !strings.Contains(err.Error(), "REQUIRE SUBJECT '/CN=pwuser'") {
			t.Fatalf("got %v, want a PasswordRequiredError", err)
		}
	})
	t.Run("certificate of another user", func(t *testing.T) {
		raw, tlsCfg, _ := upstreamFor(t, "bob")
		_, err := ConnectUpstream(ctx, raw, tlsCfg, UpstreamParams{User: "alice", Capabilities: clientCaps})
		if !IsPasswordRequired(err) {
			t.Fatalf("got %v, want a PasswordRequiredError", err)
		}
	})
	t.Run("untrusted server", func(t *testing.T) {
		raw, tlsCfg, _ := upstreamFor(t, "alice")
		tlsCfg.RootCAs = nil
		_, err := ConnectUpstream(ctx, raw, tlsCfg, UpstreamParams{User: "alice", Capabilities: clientCaps})
		if err == nil || IsServerError(err) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("got %v, want a TLS error", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		raw, tlsCfg, _ := upstreamFor(t, "alice")
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := ConnectUpstream(cctx, raw, tlsCfg, UpstreamParams{User: "alice", Capabilities: clientCaps})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("arguments", func(t *testing.T) {
		raw, tlsCfg, _ := upstreamFor(t, "alice")
		if _, err := ConnectUpstream(ctx, raw, nil, UpstreamParams{User: "alice"}); err == nil {
			t.Error("no TLS configuration accepted")
		}
		raw, tlsCfg, _ = upstreamFor(t, "alice")
		if _, err := ConnectUpstream(ctx, raw, tlsCfg, UpstreamParams{}); err == nil {
			t.Error("no user accepted")
		}
	})
}

// fakeServer answers one connection with greeting and closes it.
func fakeServer(t *testing.T, greeting []byte) net.Conn {
	t.Helper()
	server, client := net.Pipe()
	go func() {
		defer server.Close()
		server.Write(greeting)
		buf := make([]byte, 512)
		server.Read(buf)
	}()
	return client
}

// Servers that cannot carry the client's session are refused before the
// login.
func TestConnectUpstreamRefusesServers(t *testing.T) {
	ctx := testContext(t)
	scramble := bytes.Repeat([]byte("s"), 20)
	full := uint32(gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_SECURE_CONNECTION | gomysql.CLIENT_PLUGIN_AUTH | gomysql.CLIENT_SSL |
		gomysql.CLIENT_DEPRECATE_EOF | gomysql.CLIENT_SESSION_TRACK)
	tlsCfg := &tls.Config{}
	for _, tc := range []struct {
		name     string
		greeting []byte
		check    func(error) bool
	}{
		{"error greeting", packet(0, []byte("\xff\x10\x04Too many connections")), func(err error) bool {
			var se *ServerError
			return errors.As(err, &se) && se.Code == 1040
		}},
		{"no TLS", appendGreeting(nil, "8.0.36", 1, full&^gomysql.CLIENT_SSL, scramble), func(err error) bool {
			return err != nil && strings.Contains(err.Error(), "does not accept TLS")
		}},
		{"no CLIENT_DEPRECATE_EOF", appendGreeting(nil, "5.6.0", 1, full&^gomysql.CLIENT_DEPRECATE_EOF, scramble), func(err error) bool {
			var ce *CapabilityError
			return errors.As(err, &ce) && len(ce.Missing) == 1 && ce.Missing[0] == "CLIENT_DEPRECATE_EOF"
		}},
		{"not MySQL", []byte("SSH-2.0-OpenSSH_9.2\r\n"), func(err error) bool { return err != nil }},
		{"protocol 9", packet(0, []byte("\x095.0\x00")), func(err error) bool {
			return err != nil && strings.Contains(err.Error(), "protocol version 9")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ConnectUpstream(ctx, fakeServer(t, tc.greeting), tlsCfg, UpstreamParams{User: "alice", Capabilities: clientCaps})
			if !tc.check(err) {
				t.Errorf("got %v", err)
			}
		})
	}
}
