package mysql

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/portcullis-db/portcullis/audit"
)

// countingEmitter keeps events and renders each as JSON, as a real sink
// would, so that the fuzzer also exercises the events' encoding.
type countingEmitter struct{ events []audit.Event }

func (c *countingEmitter) EmitAuditEvent(_ context.Context, e audit.Event) error {
	c.events = append(c.events, e)
	_, err := audit.MarshalEvent(e)
	return err
}

// executeBody is a COM_STMT_EXECUTE body (after the command byte) for
// statement 1 with a LONGLONG, a string and a NULL.
func executeBody() []byte {
	b := append(u32(1), 0, 1, 0, 0, 0)
	b = append(b, 0b100, 1, gomysql.MYSQL_TYPE_LONGLONG, 0, gomysql.MYSQL_TYPE_VAR_STRING, 0, gomysql.MYSQL_TYPE_NULL, 0)
	b = binary.LittleEndian.AppendUint64(b, 42)
	return append(b, 2, 'h', 'i')
}

// relaySeeds are client streams: the commands clients send, and broken ones.
func relaySeeds() [][]byte {
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	return [][]byte{
		join(command(gomysql.COM_QUERY, []byte("select 1")), comQuit),
		join(command(gomysql.COM_STMT_PREPARE, []byte("select ?, ?, ?")), command(gomysql.COM_STMT_EXECUTE, executeBody()),
			command(gomysql.COM_STMT_SEND_LONG_DATA, u32(1), []byte{1, 0}, []byte("data")), command(gomysql.COM_STMT_RESET, u32(1)),
			command(gomysql.COM_STMT_FETCH, u32(1), u32(10)), command(gomysql.COM_STMT_CLOSE, u32(1))),
		join(command(gomysql.COM_INIT_DB, []byte("app")), command(gomysql.COM_CREATE_DB, []byte("x")), command(gomysql.COM_DROP_DB, []byte("x"))),
		join(command(gomysql.COM_PROCESS_KILL, u32(5)), command(gomysql.COM_QUERY, []byte("kill query 1000001"))),
		join(command(gomysql.COM_CHANGE_USER, []byte("bob\x00\x00")), command(gomysql.COM_PING)),
		join(command(gomysql.COM_QUERY, []byte("load data local infile 'x' into table t")), packet(2, []byte("1\n")), packet(3, nil)),
		{0xff, 0xff, 0xff, 0, gomysql.COM_QUERY},
		{0, 0, 0, 0},
		{5, 0, 0, 7, 3, 's', 'e', 'l', 'e'},
	}
}

// FuzzRelayClientPackets feeds an arbitrary client stream to a Relay
// whose server only records (in half the runs decoding every command as
// it streams instead of in place). The relay must not panic, must forward
// nothing but whole packets of the stream in their order (dropping refused
// commands, ending with a COM_QUIT of its own), and must allocate in
// proportion to the bytes it was sent, not to the sizes their headers
// claim.
func FuzzRelayClientPackets(f *testing.F) {
	for _, s := range relaySeeds() {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, stream []byte, streaming bool) {
		client, server := newMemConn(false), newMemConn(true)
		client.send(stream)
		client.endInput()
		em := &countingEmitter{}
		r := &Relay{Client: client, Server: server, Emitter: em, QueryLimit: 1 << 10, ParamLimit: 64,
			ConnIDs: func(id uint32) (uint32, bool) { return id + 1, id == 1000001 }}
		ctx := context.Background()
		s := r.newSession(ctx)
		if streaming {
			s.inPlace = 0
		}

		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		stats, err := s.run(ctx)
		runtime.ReadMemStats(&after)

		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20+64*uint64(len(stream)) {
			t.Errorf("relaying %d bytes allocated %d bytes", len(stream), alloc)
		}
		if stats.BytesFromClient > int64(len(stream)) {
			t.Errorf("counted %d bytes from a %d-byte stream", stats.BytesFromClient, len(stream))
		}
		if err != nil && !IsPacketRefused(err) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("relay: %v", err)
		}
		out := server.bytes()
		if bytes.HasSuffix(out, comQuit) {
			out = out[:len(out)-len(comQuit)]
		}
		if bytes.Contains(stream, []byte("1000001")) || bytes.Contains(stream, u32(1000001)) {
			return // a KILL may have been rewritten
		}
		pos := 0
		for rest := stream; len(rest) >= 4 && pos < len(out); {
			n := min(4+(int(rest[0])|int(rest[1])<<8|int(rest[2])<<16), len(rest))
			p := rest[:n]
			rest = rest[n:]
			switch {
			case bytes.HasPrefix(out[pos:], p):
				pos += len(p)
			case bytes.HasPrefix(p, out[pos:]):
				pos = len(out) // the part of a command sent before a refusal
			}
		}
		if pos != len(out) {
			t.Errorf("the server got bytes that are not packets of the stream:\n got %q\nfrom %q", server.bytes(), stream)
		}
	})
}

// FuzzDecodeCommand decodes one audited command for a session that knows
// statement 1 with a given number of parameters, once in place and once
// streaming through a relay: both must agree on the event, or both refuse.
func FuzzDecodeCommand(f *testing.F) {
	f.Add(byte(3), append([]byte{gomysql.COM_STMT_EXECUTE}, executeBody()...))
	f.Add(byte(0), append([]byte{gomysql.COM_QUERY}, "select 1"...))
	f.Add(byte(1), append([]byte{gomysql.COM_STMT_SEND_LONG_DATA}, 1, 0, 0, 0, 0, 0, 'x'))
	f.Add(byte(2), append([]byte{gomysql.COM_STMT_EXECUTE}, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, gomysql.MYSQL_TYPE_DATETIME, 0, gomysql.MYSQL_TYPE_TIME, 0, 7, 0xea, 7, 1, 2, 3, 4, 5, 8, 1, 1, 0, 0, 0, 2, 3, 4))
	f.Add(byte(1), append([]byte{gomysql.COM_STMT_EXECUTE}, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, gomysql.MYSQL_TYPE_BLOB, 0, 0xfd, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, params byte, payload []byte) {
		if len(payload) == 0 || !audited(payload[0]) || len(payload) > 1<<16 {
			return
		}
		clock := func() time.Time { return time.Unix(0, 0) }
		seed := func(d *decoder) {
			d.stmts.put(1, &stmtInfo{query: "q", numParams: int(params)})
			d.stmts.put(2, &stmtInfo{query: "r", numParams: 1, types: []byte{gomysql.MYSQL_TYPE_LONG, 0}})
		}

		r := &Relay{Clock: clock, QueryLimit: 100, ParamLimit: 16}
		var w prepWatch
		d := newDecoder(r, &w)
		seed(d)
		want, _, werr := d.decode(payload[0], &source{buf: payload[1:]}, false)

		client, server := newMemConn(false), newMemConn(true)
		client.send(command(payload[0], payload[1:]))
		client.endInput()
		em := &countingEmitter{}
		r = &Relay{Client: client, Server: server, Emitter: em, Clock: clock, QueryLimit: 100, ParamLimit: 16}
		ctx := context.Background()
		s := r.newSession(ctx)
		s.inPlace = 0
		seed(s.dec)
		_, err := s.run(ctx)

		if werr != nil {
			if !IsPacketRefused(err) {
				t.Fatalf("in place: %v; streaming: %v", werr, err)
			}
			return
		}
		if err != nil || len(em.events) != 1 {
			t.Fatalf("in place: %+v; streaming: %v, %d events", want, err, len(em.events))
		}
		if !reflect.DeepEqual(em.events[0], want) {
			t.Fatalf("in place: %+v\nstreaming: %+v", want, em.events[0])
		}
		if got := server.bytes(); !bytes.Equal(got, append(command(payload[0], payload[1:]), comQuit...)) {
			t.Fatalf("the server got %q", got)
		}
	})
}

// FuzzParseHandshakeResponse parses arbitrary logins. What it accepts must
// survive an encode/parse round trip.
func FuzzParseHandshakeResponse(f *testing.F) {
	const base = gomysql.CLIENT_PROTOCOL_41 | gomysql.CLIENT_SECURE_CONNECTION
	f.Add(handshakeResponse41(base|gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA|gomysql.CLIENT_CONNECT_WITH_DB|gomysql.CLIENT_PLUGIN_AUTH|gomysql.CLIENT_CONNECT_ATTRS,
		"alice", bytes.Repeat([]byte{7}, 32), "app", "caching_sha2_password", [][2]string{{"_client_name", "libmariadb"}, {"program_name", "mysql"}}))
	f.Add(handshakeResponse41(base|gomysql.CLIENT_PLUGIN_AUTH, "bob", nil, "", "mysql_native_password", nil))
	f.Add(handshakeResponse41(gomysql.CLIENT_PROTOCOL_41, "carol", []byte("x"), "", "", nil))
	f.Add([]byte{0x00, 0x02, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		hr, err := parseHandshakeResponse(in)
		if err != nil {
			return
		}
		var attrs [][2]string
		for k, v := range hr.attributes {
			attrs = append(attrs, [2]string{k, v})
		}
		auth := []byte(nil)
		if hr.authResponded {
			auth = []byte{1}
		}
		caps := hr.capabilities | gomysql.CLIENT_SECURE_CONNECTION | gomysql.CLIENT_CONNECT_WITH_DB | gomysql.CLIENT_PLUGIN_AUTH | gomysql.CLIENT_CONNECT_ATTRS
		caps &^= gomysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
		again, err := parseHandshakeResponse(handshakeResponse41(caps, hr.username, auth, hr.database, hr.authPlugin, attrs))
		if err != nil {
			t.Fatalf("re-parsing %+v: %v", hr, err)
		}
		if again.username != hr.username || again.database != hr.database || again.authPlugin != hr.authPlugin ||
			again.authResponded != hr.authResponded || len(again.attributes) != len(hr.attributes) {
			t.Fatalf("round trip: %+v != %+v", again, hr)
		}
		for k, v := range hr.attributes {
			if again.attributes[k] != v {
				t.Fatalf("attribute %q: %q != %q", k, again.attributes[k], v)
			}
		}
	})
}

// FuzzReadSessionStart reads arbitrary bytes as a proxy's hand-off: it
// must not panic, and must not read past what it returns.
func FuzzReadSessionStart(f *testing.F) {
	var buf bytes.Buffer
	WriteSessionStart(&buf, &SessionStart{Username: "alice", Capabilities: clientCaps, Attributes: map[string]string{"a": "b"}, Sequence: 3})
	f.Add(append(buf.Bytes(), "rest"...))
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		if _, err := ReadSessionStart(r); err != nil {
			return
		}
		if n := int(binary.BigEndian.Uint32(in)); r.Len() != len(in)-4-n {
			t.Fatalf("read %d bytes of a %d-byte session start", len(in)-r.Len(), 4+n)
		}
	})
}
