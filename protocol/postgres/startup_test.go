package postgres

import (
	"bytes"
	"encoding/binary"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// rw is an io.ReadWriter reading from a fixed input and recording what is
// written.
type rw struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func newRW(in []byte) *rw                 { return &rw{in: bytes.NewReader(in)} }
func (c *rw) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *rw) Write(p []byte) (int, error) { return c.out.Write(p) }
func encode(t testing.TB, m pgproto3.Message) []byte {
	t.Helper()
	b, err := m.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readBackendMessages decodes what a server side wrote.
func readBackendMessages(t *testing.T, b []byte) []pgproto3.BackendMessage {
	t.Helper()
	fe := pgproto3.NewFrontend(bytes.NewReader(b), io.Discard)
	var out []pgproto3.BackendMessage
	for {
		m, err := fe.Receive()
		if err != nil {
			return out
		}
		// Messages are only valid until the next Receive: keep copies of
		// what the tests look at.
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			c := *m
			out = append(out, &c)
		case *pgproto3.NegotiateProtocolVersion:
			c := *m
			out = append(out, &c)
		default:
			out = append(out, m)
		}
	}
}

func TestReadStartup(t *testing.T) {
	after := []byte("tls client hello")
	for _, tc := range []struct {
		name string
		msg  pgproto3.FrontendMessage
	}{
		{"ssl", &pgproto3.SSLRequest{}},
		{"gssenc", &pgproto3.GSSEncRequest{}},
		{"cancel", &pgproto3.CancelRequest{ProcessID: 7, SecretKey: []byte{1, 2, 3, 4}}},
		{"startup", &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "alice", "database": "app"}}},
		{"startup 3.2", &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion32, Parameters: map[string]string{"user": "alice"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newRW(append(encode(t, tc.msg), after...))
			got, err := ReadStartup(c, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.msg) {
				t.Errorf("got %#v, want %#v", got, tc.msg)
			}
			// Nothing after the message was consumed.
			rest, _ := io.ReadAll(c.in)
			if !bytes.Equal(rest, after) {
				t.Errorf("left %q, want %q", rest, after)
			}
			if c.out.Len() != 0 {
				t.Errorf("wrote %q", c.out.Bytes())
			}
		})
	}
}

func TestReadStartupRefusals(t *testing.T) {
	big := &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "alice", "options": strings.Repeat("x", 200)}}
	for _, tc := range []struct {
		name    string
		in      []byte
		max     int
		code    string
		written bool
	}{
		{"http", []byte("GET / HTTP/1.1\r\n\r\n"), 0, CodeProtocolViolation, true},
		{"too short", []byte{0, 0, 0, 4}, 0, CodeProtocolViolation, true},
		{"over the limit", encode(t, big), 100, CodeProtocolViolation, true},
		{"bad version", func() []byte {
			b := encode(t, big)
			binary.BigEndian.PutUint32(b[4:], 0x00020000)
			return b
		}(), 0, CodeProtocolViolation, true},
		{"no user", encode(t, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"database": "app"}}), 0, CodeInvalidAuthorization, true},
		{"truncated", encode(t, big)[:50], 0, "", false},
		{"empty", nil, 0, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newRW(tc.in)
			if msg, err := ReadStartup(c, tc.max); err == nil {
				t.Fatalf("accepted %#v", msg)
			}
			msgs := readBackendMessages(t, c.out.Bytes())
			if !tc.written {
				if len(msgs) != 0 {
					t.Errorf("wrote %v", msgs)
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("wrote %d messages, want one ErrorResponse", len(msgs))
			}
			e, ok := msgs[0].(*pgproto3.ErrorResponse)
			if !ok || e.Severity != "FATAL" || e.Code != tc.code {
				t.Errorf("wrote %#v, want FATAL %s", msgs[0], tc.code)
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteError(&buf, CodeInvalidAuthorization, "certificate for alice expired at 2026-11-23T20:00:00Z; log in again"); err != nil {
		t.Fatal(err)
	}
	msgs := readBackendMessages(t, buf.Bytes())
	e, ok := msgs[0].(*pgproto3.ErrorResponse)
	if len(msgs) != 1 || !ok {
		t.Fatalf("wrote %v", msgs)
	}
	if e.Severity != "FATAL" || e.SeverityUnlocalized != "FATAL" || e.Code != "28000" || !strings.HasPrefix(e.Message, "certificate for alice expired") {
		t.Errorf("error response %#v", e)
	}
}

func TestEncryptionAnswers(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSSLAccept(&buf); err != nil {
		t.Fatal(err)
	}
	if err := WriteEncryptionRefused(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "SN" {
		t.Errorf("wrote %q", buf.String())
	}
}

func TestNegotiateProtocol(t *testing.T) {
	m := &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "alice"}}
	var buf bytes.Buffer
	if err := NegotiateProtocol(&buf, m); err != nil || buf.Len() != 0 {
		t.Fatalf("3.0 without options: wrote %q, %v", buf.Bytes(), err)
	}

	m = &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion32,
		Parameters: map[string]string{"user": "alice", "_pq_.b": "1", "_pq_.a": "2"}}
	if err := NegotiateProtocol(&buf, m); err != nil {
		t.Fatal(err)
	}
	if m.ProtocolVersion != pgproto3.ProtocolVersion30 || len(m.Parameters) != 1 || m.Parameters["user"] != "alice" {
		t.Errorf("startup after negotiation: %+v", m)
	}
	msgs := readBackendMessages(t, buf.Bytes())
	n, ok := msgs[0].(*pgproto3.NegotiateProtocolVersion)
	if len(msgs) != 1 || !ok || n.NewestMinorProtocol != 0 || strings.Join(n.UnrecognizedOptions, ",") != "_pq_.a,_pq_.b" {
		t.Errorf("wrote %#v", msgs)
	}
}
