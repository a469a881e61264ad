package postgres

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis-db/portcullis/audit"
)

// memConn is an in-memory net.Conn for relay unit tests. Read returns the
// chunks sent to in, one per call (so tests control how the stream is
// split); closing in is EOF. Writes are recorded with their count.
// With eofOnCloseWrite, CloseWrite ends the reads, as a PostgreSQL server
// hangs up when its client does.
type memConn struct {
	in              chan []byte
	inOnce          sync.Once
	buf             []byte
	done            chan struct{}
	doneOnce        sync.Once
	eofOnCloseWrite bool

	mu     sync.Mutex
	out    bytes.Buffer
	writes int
}

func newMemConn(eofOnCloseWrite bool) *memConn {
	return &memConn{in: make(chan []byte, 64), done: make(chan struct{}), eofOnCloseWrite: eofOnCloseWrite}
}

func (c *memConn) Read(p []byte) (int, error) {
	if len(c.buf) == 0 {
		select {
		case b, ok := <-c.in:
			if !ok {
				return 0, io.EOF
			}
			c.buf = b
		case <-c.done:
			return 0, net.ErrClosed
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.out.Write(p)
}

func (c *memConn) endInput()     { c.inOnce.Do(func() { close(c.in) }) }
func (c *memConn) send(b []byte) { c.in <- b }
func (c *memConn) Close() error {
	c.doneOnce.Do(func() { close(c.done) })
	return nil
}
func (c *memConn) CloseWrite() error {
	if c.eofOnCloseWrite {
		c.endInput()
	}
	return nil
}
func (c *memConn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
func (c *memConn) written() ([]byte, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.out.Bytes()...), c.writes
}
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// runRelay starts r.Run in the background.
func runRelay(ctx context.Context, r *Relay) <-chan relayResult {
	ch := make(chan relayResult, 1)
	go func() {
		s, err := r.Run(ctx)
		ch <- relayResult{s, err}
	}()
	return ch
}

type relayResult struct {
	stats Stats
	err   error
}

func concat(t testing.TB, msgs ...pgproto3.Message) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, encode(t, m)...)
	}
	return b
}

// A pipeline that arrives in one read leaves in one write, audited.
func TestRelayPipelineOneWrite(t *testing.T) {
	client, server := newMemConn(false), newMemConn(true)
	rec := &recorder{}
	done := runRelay(context.Background(), &Relay{Client: client, Server: server, Emitter: rec, ClusterName: "test"})

	pipeline := concat(t,
		&pgproto3.Parse{Name: "s", Query: "select $1"},
		&pgproto3.Describe{ObjectType: 'S', Name: "s"},
		&pgproto3.Bind{PreparedStatement: "s", Parameters: [][]byte{[]byte("7")}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	)
	client.send(pipeline)
	client.send(concat(t, &pgproto3.Terminate{}))
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	out, writes := server.written()
	want := append(append([]byte(nil), pipeline...), 'X', 0, 0, 0, 4)
	if !bytes.Equal(out, want) {
		t.Errorf("server got %q, want %q", out, want)
	}
	if writes != 2 {
		t.Errorf("server got %d writes, want 2 (the pipeline, then Terminate)", writes)
	}
	if res.stats.BytesFromClient != int64(len(want)) {
		t.Errorf("BytesFromClient = %d, want %d", res.stats.BytesFromClient, len(want))
	}
	if got := transcript(rec.all()); strings.Join(got, "|") != `parse "s" select $1|bind "s"->"" ["7"] select $1|execute "" max=0 "s" select $1` {
		t.Errorf("events %q", got)
	}
	if !client.isClosed() || !server.isClosed() {
		t.Error("Run left a connection open")
	}
}

// A message split across many reads is reassembled before it is audited,
// and a large CopyData streams through in pieces.
func TestRelaySplitAndStreamedMessages(t *testing.T) {
	client, server := newMemConn(false), newMemConn(true)
	rec := &recorder{}
	done := runRelay(context.Background(), &Relay{Client: client, Server: server, Emitter: rec})

	query := "select '" + strings.Repeat("q", 100<<10) + "'" // larger than the read buffer
	copyData := bytes.Repeat([]byte("row\n"), 1<<20)         // 4 MiB
	stream := concat(t, &pgproto3.Query{String: query}, &pgproto3.CopyData{Data: copyData}, &pgproto3.CopyDone{}, &pgproto3.Terminate{})
	go func() {
		for i := 0; i < len(stream); i += 1000 {
			client.send(stream[i:min(i+1000, len(stream))])
		}
	}()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	out, _ := server.written()
	if !bytes.Equal(out, stream) {
		t.Errorf("server got %d bytes, want the %d sent", len(out), len(stream))
	}
	if got := transcript(rec.all()); len(got) != 1 || got[0] != "query "+query {
		t.Errorf("events: %d", len(got))
	}
}

// When the server hangs up first, the client gets everything it sent and
// Run returns nil.
func TestRelayServerClosesFirst(t *testing.T) {
	client, server := newMemConn(false), newMemConn(true)
	done := runRelay(context.Background(), &Relay{Client: client, Server: server})
	fatal := concat(t, &pgproto3.ErrorResponse{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"})
	server.send(fatal)
	server.endInput()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	out, _ := client.written()
	if !bytes.Equal(out, fatal) || res.stats.BytesToClient != int64(len(fatal)) {
		t.Errorf("client got %q (%d counted)", out, res.stats.BytesToClient)
	}
}

// The client leaving without Terminate half-closes the server side.
func TestRelayClientEOF(t *testing.T) {
	client, server := newMemConn(false), newMemConn(true)
	done := runRelay(context.Background(), &Relay{Client: client, Server: server})
	client.send(concat(t, &pgproto3.Sync{}))
	client.endInput()
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
	if out, _ := server.written(); !bytes.Equal(out, concat(t, &pgproto3.Sync{})) {
		t.Errorf("server got %q", out)
	}
}

func TestRelayContextCancel(t *testing.T) {
	client, server := newMemConn(false), newMemConn(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := runRelay(ctx, &Relay{Client: client, Server: server})
	cancel()
	res := <-done
	if !errors.Is(res.err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", res.err)
	}
	if !client.isClosed() || !server.isClosed() {
		t.Error("connections left open")
	}
}

// Refusals: the client gets a FATAL ErrorResponse after the server's
// replies to what came before, the server never sees the message, and the
// refusal is audited.
func TestRelayRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		msg     []byte
		reason  string
		typ     byte
		refused string // SQL recorded
	}{
		{"too large", func() []byte {
			b := encode(t, &pgproto3.Query{String: "select '" + strings.Repeat("x", 2000) + "'"})
			return b
		}(), "exceeds the limit of 1024 bytes", 'Q', "select 'xxx"},
		{"invalid length", []byte{'Q', 0, 0, 0, 2}, "invalid length in a client message", 'Q', ""},
		{"malformed bind", concat(t, &pgproto3.Bind{}), "", 'B', ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "malformed bind" {
				tc.msg = append(tc.msg[:len(tc.msg)-2:len(tc.msg)-2], 0, 9) // nine result codes that are not there
				tc.reason = "malformed message: Bind"
			}
			client, server := newMemConn(false), newMemConn(true)
			rec := &recorder{}
			done := runRelay(context.Background(), &Relay{Client: client, Server: server, Emitter: rec, MaxMessageSize: 1024})
			reply := concat(t, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
			server.send(reply)
			before := concat(t, &pgproto3.Query{String: "select 1"})
			client.send(before)
			client.send(tc.msg)
			res := <-done
			var me *MessageRefusedError
			if !errors.As(res.err, &me) || me.Type != tc.typ || !strings.Contains(me.Reason, tc.reason) {
				t.Fatalf("got %v, want a refusal containing %q", res.err, tc.reason)
			}
			out, _ := server.written()
			if want := append(append([]byte(nil), before...), 'X', 0, 0, 0, 4); !bytes.Equal(out, want) {
				t.Errorf("server got %q, want %q", out, want)
			}
			got, _ := client.written()
			if !bytes.HasPrefix(got, reply) {
				t.Fatalf("client got %q, want the server's reply first", got)
			}
			msgs := readBackendMessages(t, got[len(reply):])
			if e, ok := msgs[0].(*pgproto3.ErrorResponse); len(msgs) != 1 || !ok || e.Severity != "FATAL" || e.Code != CodeProtocolViolation || e.Message != me.Reason {
				t.Errorf("client got %#v, want the FATAL refusal", msgs)
			}
			events := rec.all()
			if len(events) != 2 {
				t.Fatalf("events: %q", transcript(events))
			}
			q := events[1].(*audit.DatabaseSessionQuery)
			if q.Success || q.Error != me.Reason || !strings.HasPrefix(q.Query, tc.refused) {
				t.Errorf("refusal event %+v", q)
			}
		})
	}
}

// An emitter that fails never stops the session; the failure is logged
// once, not per event.
func TestRelayEmitFailure(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	client, server := newMemConn(false), newMemConn(true)
	done := runRelay(context.Background(), &Relay{Client: client, Server: server, Emitter: failingEmitter{}, Logger: zap.New(core)})
	var stream []byte
	for range 10 {
		stream = append(stream, concat(t, &pgproto3.Query{String: "select 1"})...)
	}
	client.send(stream)
	client.send(concat(t, &pgproto3.Terminate{}))
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
	if out, _ := server.written(); len(out) != len(stream)+5 {
		t.Errorf("server got %d bytes, want %d", len(out), len(stream)+5)
	}
	if n := logs.FilterMessage("cannot record an audit event").Len(); n != 1 {
		t.Errorf("logged %d audit failures, want 1", n)
	}
}

type failingEmitter struct{}

func (failingEmitter) EmitAuditEvent(context.Context, audit.Event) error {
	return errors.New("sink is full")
}

func TestRelayRequiresConnections(t *testing.T) {
	if _, err := (&Relay{Server: newMemConn(false)}).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Relay.Client") {
		t.Errorf("no client: %v", err)
	}
	if _, err := (&Relay{Client: newMemConn(false)}).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Relay.Server") {
		t.Errorf("no server: %v", err)
	}
}
