package mysql

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/portcullis-db/portcullis/audit"
)

// memConn is an in-memory net.Conn for relay unit tests. Read returns the
// chunks sent to in, one per call (so tests control how the stream is
// split); closing in is EOF. Writes are recorded; waitFor blocks until
// enough has been written. With eofOnCloseWrite, CloseWrite ends the
// reads, as a MySQL server hangs up after COM_QUIT.
type memConn struct {
	in              chan []byte
	inOnce          sync.Once
	buf             []byte
	done            chan struct{}
	doneOnce        sync.Once
	eofOnCloseWrite bool

	mu      sync.Mutex
	out     bytes.Buffer
	written chan struct{} // signalled after each write
}

func newMemConn(eofOnCloseWrite bool) *memConn {
	return &memConn{in: make(chan []byte, 64), done: make(chan struct{}), eofOnCloseWrite: eofOnCloseWrite, written: make(chan struct{}, 1)}
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
	n, err := c.out.Write(p)
	c.mu.Unlock()
	select {
	case c.written <- struct{}{}:
	default:
	}
	return n, err
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
func (c *memConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.out.Bytes()...)
}
func (c *memConn) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Len()
}

// waitFor waits until at least n bytes were written.
func (c *memConn) waitFor(t *testing.T, n int) {
	t.Helper()
	ctx := testContext(t)
	for c.size() < n {
		select {
		case <-c.written:
		case <-ctx.Done():
			t.Fatalf("waited for %d bytes, got %d", n, c.size())
		}
	}
}

func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

type relayResult struct {
	stats Stats
	err   error
}

// runRelay starts r.Run in the background.
func runRelay(ctx context.Context, r *Relay) <-chan relayResult {
	ch := make(chan relayResult, 1)
	go func() {
		s, err := r.Run(ctx)
		ch <- relayResult{s, err}
	}()
	return ch
}

// newRelay returns a relay between two memConns; the server side ends
// when the relay half-closes it.
func newRelay(rec audit.Emitter) (*Relay, *memConn, *memConn) {
	client, server := newMemConn(false), newMemConn(true)
	return &Relay{Client: client, Server: server, Emitter: rec, ClusterName: "test"}, client, server
}

// packet encodes one packet.
func packet(seq byte, payload []byte) []byte { return appendPacket(nil, seq, payload) }

// command encodes a command as the client sends it: split into packets
// of at most 0xffffff bytes, sequence IDs from 0.
func command(cmd byte, body ...[]byte) []byte {
	payload := append([]byte{cmd}, bytes.Join(body, nil)...)
	var out []byte
	seq := byte(0)
	for {
		n := min(len(payload), maxPayload)
		out = appendPacket(out, seq, payload[:n])
		payload = payload[n:]
		seq++
		if n < maxPayload {
			return out
		}
	}
}

var comQuit = command(gomysql.COM_QUIT)

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// prepareOK is the first packet of a server's answer to COM_STMT_PREPARE.
func prepareOK(id uint32, cols, params uint16) []byte {
	p := []byte{0}
	p = binary.LittleEndian.AppendUint32(p, id)
	p = binary.LittleEndian.AppendUint16(p, cols)
	p = binary.LittleEndian.AppendUint16(p, params)
	p = append(p, 0, 0, 0)
	return packet(1, p)
}

// readPackets splits a byte stream into packet payloads with their
// sequence IDs.
func readPackets(t *testing.T, b []byte) (payloads [][]byte, seqs []byte) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("%d trailing bytes", len(b))
		}
		n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
		if len(b) < 4+n {
			t.Fatalf("packet of %d bytes, %d left", n, len(b)-4)
		}
		payloads = append(payloads, b[4:4+n])
		seqs = append(seqs, b[3])
		b = b[4+n:]
	}
	return payloads, seqs
}

// checkERR checks that b is exactly one ERR packet.
func checkERR(t *testing.T, b []byte, seq byte, code uint16, msgPart string) {
	t.Helper()
	ps, seqs := readPackets(t, b)
	if len(ps) != 1 {
		t.Fatalf("the client got %d packets, want one ERR: %q", len(ps), b)
	}
	gotCode, _, msg, ok := decodeError(ps[0])
	if !ok || gotCode != code || seqs[0] != seq || !strings.Contains(msg, msgPart) {
		t.Errorf("the client got %q (seq %d), want ERR %d seq %d containing %q", ps[0], seqs[0], code, seq, msgPart)
	}
}

func TestRelayForwardsAndAudits(t *testing.T) {
	rec := &recorder{}
	r, client, server := newRelay(rec)
	done := runRelay(context.Background(), r)
	stream := append(command(gomysql.COM_QUERY, []byte("select 1")), command(gomysql.COM_PING)...)
	client.send(stream)
	server.waitFor(t, len(stream))
	server.send(packet(1, []byte{0, 0, 0, 2, 0, 0, 0}))
	client.waitFor(t, 11)
	client.send(comQuit)
	client.endInput()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := server.bytes(); !bytes.Equal(got, append(stream, comQuit...)) {
		t.Errorf("server got %q", got)
	}
	if res.stats.BytesFromClient != int64(len(stream)+len(comQuit)) || res.stats.BytesToClient != 11 {
		t.Errorf("stats %+v", res.stats)
	}
	checkTranscript(t, rec, []string{"query select 1"})
	if !client.isClosed() || !server.isClosed() {
		t.Error("connections left open")
	}
}

// A client that hangs up without COM_QUIT: the relay says goodbye to the
// server for it.
func TestRelayClientEOF(t *testing.T) {
	r, client, server := newRelay(nil)
	done := runRelay(context.Background(), r)
	client.send(command(gomysql.COM_QUERY, []byte("select 1")))
	client.endInput()
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
	want := append(command(gomysql.COM_QUERY, []byte("select 1")), comQuit...)
	if got := server.bytes(); !bytes.Equal(got, want) {
		t.Errorf("server got %q, want %q", got, want)
	}
}

func TestRelayServerClosesFirst(t *testing.T) {
	r, client, server := newRelay(nil)
	done := runRelay(context.Background(), r)
	server.send(packet(0, []byte{0xff, 0x35, 0x07, '#', '7', '0', '1', '0', '0', 'k', 'i', 'l', 'l', 'e', 'd'}))
	server.endInput()
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
	if !client.isClosed() {
		t.Error("client left open")
	}
}

func TestRelayContextCancel(t *testing.T) {
	r, _, _ := newRelay(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := runRelay(ctx, r)
	cancel()
	if res := <-done; !errors.Is(res.err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", res.err)
	}
}

func TestRelayRequiresConnections(t *testing.T) {
	if _, err := (&Relay{}).Run(context.Background()); err == nil {
		t.Error("a relay without connections ran")
	}
}

// A command larger than the buffer streams through, decoded on the way,
// and its last byte reaches the server only after its event.
func TestRelayStreamsLargeCommands(t *testing.T) {
	query := strings.Repeat("x", maxPayload+100) // two packets
	stream := command(gomysql.COM_QUERY, []byte("select '"+query+"'"))
	server := newMemConn(true)
	var atEmit int
	em := emitterFunc(func(e audit.Event) { atEmit = server.size() })
	client := newMemConn(false)
	r := &Relay{Client: client, Server: server, Emitter: em, QueryLimit: 16}
	done := runRelay(context.Background(), r)
	for b := stream; len(b) > 0; b = b[min(len(b), 1<<20):] {
		client.send(b[:min(len(b), 1<<20)])
	}
	client.send(comQuit)
	client.endInput()
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
	if got := server.bytes(); !bytes.Equal(got, append(stream, comQuit...)) {
		t.Errorf("the server got %d bytes, want the %d of the command and COM_QUIT", len(got), len(stream)+len(comQuit))
	}
	if atEmit >= len(stream) {
		t.Errorf("the server had %d bytes of the %d-byte command when it was audited", atEmit, len(stream))
	}
}

type emitterFunc func(audit.Event)

func (f emitterFunc) EmitAuditEvent(_ context.Context, e audit.Event) error { f(e); return nil }

// The text recorded of a large command is cut with a marker.
func TestRelayTruncatesText(t *testing.T) {
	for _, size := range []int{100, 70 << 10, maxPayload + 5} {
		rec := &recorder{}
		r, client, _ := newRelay(rec)
		r.QueryLimit = 10
		done := runRelay(context.Background(), r)
		client.send(command(gomysql.COM_QUERY, []byte("select '"+strings.Repeat("é", size/2)+"'")))
		client.send(comQuit)
		client.endInput()
		if res := <-done; res.err != nil {
			t.Fatal(res.err)
		}
		checkTranscript(t, rec, []string{"query select 'é" + marker(int64(8+size/2*2+1))})
	}
}

func TestRelayRefusesOversizedCommands(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limit   int
		payload int
		seq     byte // of the ERR
		partial bool // part of the command reached the server
	}{
		{"one packet", 1000, 2000, 1, false},
		{"first of two packets", 1000, maxPayload + 10, 2, false},
		{"third of three packets", maxPayload + 10, 2*maxPayload + 10, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			r, client, server := newRelay(rec)
			r.MaxPacketSize = tc.limit
			done := runRelay(context.Background(), r)
			client.send(command(gomysql.COM_QUERY, []byte("select 1")))
			stream := command(gomysql.COM_QUERY, []byte("insert into t values ('"), bytes.Repeat([]byte("y"), tc.payload))
			for b := stream; len(b) > 0; b = b[min(len(b), 1<<20):] {
				client.send(b[:min(len(b), 1<<20)])
			}
			client.send(command(gomysql.COM_QUERY, []byte("select 2")))
			res := <-done
			var pre *PacketRefusedError
			if !errors.As(res.err, &pre) || pre.Code != CodePacketTooLarge {
				t.Fatalf("got %v, want a refusal", res.err)
			}
			checkERR(t, client.bytes(), tc.seq, CodePacketTooLarge, "exceeds the limit")
			got := server.bytes()
			first := command(gomysql.COM_QUERY, []byte("select 1"))
			if tc.partial {
				if !bytes.HasPrefix(got, first) || len(got) >= len(first)+len(stream) || !bytes.HasPrefix(stream, got[len(first):]) {
					t.Errorf("the server got %d bytes", len(got))
				}
				if bytes.HasSuffix(got, comQuit) {
					t.Error("the server got COM_QUIT after part of a command")
				}
			} else if want := append(first, comQuit...); !bytes.Equal(got, want) {
				t.Errorf("the server got %q, want %q", got, want)
			}
			if res.stats.BytesFromClient != int64(len(first)+len(stream)) {
				t.Errorf("read %d bytes from the client, want %d", res.stats.BytesFromClient, len(first)+len(stream))
			}
			evs := transcript(rec.all())
			if len(evs) != 2 || !strings.HasPrefix(evs[1], "query insert into t values ('yyy") || !strings.Contains(evs[1], "...(truncated, ") ||
				!strings.Contains(evs[1], "REFUSED a command of") {
				t.Errorf("events %q", evs)
			}
		})
	}
}

func TestRelayRefusesCommands(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  []byte
		msg  string
	}{
		{"change user", command(gomysql.COM_CHANGE_USER, []byte("bob\x00\x00app\x00")), ChangeUserMessage},
		{"binlog dump", command(gomysql.COM_BINLOG_DUMP, u32(4), []byte{0, 0}, u32(1)), "replication"},
		{"shutdown", command(gomysql.COM_SHUTDOWN), "SHUTDOWN"},
		{"unknown", command(0x7f), "command 0x7f is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			r, client, server := newRelay(rec)
			done := runRelay(context.Background(), r)
			client.send(tc.cmd)
			client.waitFor(t, 1)
			checkERR(t, client.bytes(), 1, CodeNotSupported, tc.msg)
			// The session goes on.
			client.send(command(gomysql.COM_QUERY, []byte("select 1")))
			client.send(comQuit)
			client.endInput()
			if res := <-done; res.err != nil {
				t.Fatal(res.err)
			}
			want := append(command(gomysql.COM_QUERY, []byte("select 1")), comQuit...)
			if got := server.bytes(); !bytes.Equal(got, want) {
				t.Errorf("the server got %q, want %q", got, want)
			}
			checkTranscript(t, rec, []string{"query  REFUSED " + refusedReason(tc.cmd[4]), "query select 1"})
		})
	}
}

func TestRelayRefusesBrokenProtocol(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream []byte
		seq    byte
		msg    string
	}{
		{"command out of sequence", packet(3, []byte{gomysql.COM_QUERY, 'x'}), 4, "sequence ID 3"},
		{"continuation out of sequence", append(packet(0, append([]byte{gomysql.COM_QUERY}, make([]byte, maxPayload-1)...)), packet(5, []byte("x"))...), 6, "out of sequence"},
		{"short execute", command(gomysql.COM_STMT_EXECUTE, []byte{1, 0}), 1, "malformed COM_STMT_EXECUTE"},
		{"short kill", command(gomysql.COM_PROCESS_KILL, []byte{1}), 1, "malformed COM_PROCESS_KILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			r, client, server := newRelay(rec)
			done := runRelay(context.Background(), r)
			client.send(tc.stream)
			res := <-done
			if !IsPacketRefused(res.err) {
				t.Fatalf("got %v, want a refusal", res.err)
			}
			checkERR(t, client.bytes(), tc.seq, CodeMalformedPacket, tc.msg)
			if got := server.bytes(); len(got) > 0 && !bytes.Equal(got, comQuit) && !bytes.HasPrefix(tc.stream, got) {
				t.Errorf("the server got %q", got)
			}
			if evs := transcript(rec.all()); len(evs) != 1 || !strings.Contains(evs[0], "REFUSED") {
				t.Errorf("events %q", evs)
			}
		})
	}
}

// The relay learns statement IDs and parameter counts from the server's
// COM_STMT_PREPARE_OK, however the server's bytes are split.
func TestRelayPreparedStatements(t *testing.T) {
	rec := &recorder{}
	r, client, server := newRelay(rec)
	done := runRelay(context.Background(), r)
	sent := 0
	sendAndWait := func(cmd []byte) {
		t.Helper()
		client.send(cmd)
		sent += len(cmd)
		server.waitFor(t, sent)
	}
	answered := 0
	answer := func(chunks ...[]byte) {
		t.Helper()
		for _, c := range chunks {
			server.send(c)
			answered += len(c)
		}
		client.waitFor(t, answered)
	}

	sendAndWait(command(gomysql.COM_STMT_PREPARE, []byte("select ?, ?, ?, ?, ?, ?")))
	ok := prepareOK(7, 1, 6)
	answer(ok[:3], ok[3:6], append(ok[6:], packet(2, []byte("def...param"))...))

	types := []byte{gomysql.MYSQL_TYPE_LONGLONG, 0, gomysql.MYSQL_TYPE_LONGLONG, paramUnsigned, gomysql.MYSQL_TYPE_VAR_STRING, 0,
		gomysql.MYSQL_TYPE_DOUBLE, 0, gomysql.MYSQL_TYPE_DATETIME, 0, gomysql.MYSQL_TYPE_BLOB, 0}
	values := binary.LittleEndian.AppendUint64(nil, uint64(0xffffffffffffffd6)) // -42
	values = binary.LittleEndian.AppendUint64(values, 1<<63)
	values = append(values, 3, 'h', 'i', '!')
	// the DOUBLE is NULL
	values = append(values, 7, 0xea, 0x07, 11, 23, 20, 30, 0)
	values = append(values, 2, 0xff, 0x00)
	sendAndWait(command(gomysql.COM_STMT_EXECUTE, u32(7), []byte{0}, u32(1), []byte{0x08}, []byte{1}, types, values))
	// Again with the types of the last execution, and long data.
	sendAndWait(command(gomysql.COM_STMT_SEND_LONG_DATA, u32(7), []byte{5, 0}, []byte("0123456789")))
	values2 := binary.LittleEndian.AppendUint64(nil, 1)
	values2 = binary.LittleEndian.AppendUint64(values2, 2)
	values2 = append(values2, 0)
	values2 = binary.LittleEndian.AppendUint64(values2, 0x400921fb54442d18) // pi
	values2 = append(values2, 4, 0xea, 0x07, 1, 2)
	sendAndWait(command(gomysql.COM_STMT_EXECUTE, u32(7), []byte{0}, u32(1), []byte{0}, []byte{0}, values2))
	sendAndWait(command(gomysql.COM_STMT_RESET, u32(7)))
	sendAndWait(command(gomysql.COM_STMT_FETCH, u32(7), u32(100)))
	sendAndWait(command(gomysql.COM_STMT_CLOSE, u32(7)))
	// A statement the relay did not see prepared, and a failed prepare.
	sendAndWait(command(gomysql.COM_STMT_EXECUTE, u32(9), []byte{0}, u32(1), []byte{1, 2, 3}))
	sendAndWait(command(gomysql.COM_STMT_PREPARE, []byte("selec ?")))
	answer(packet(1, []byte{0xff, 0x28, 0x04, '#', '4', '2', '0', '0', '0', 'x'}))
	sendAndWait(command(gomysql.COM_STMT_EXECUTE, u32(lastStatement), []byte{0}, u32(1)))
	// MariaDB's "last prepared statement" ID.
	sendAndWait(command(gomysql.COM_STMT_PREPARE, []byte("select 1")))
	answer(prepareOK(8, 1, 0))
	sendAndWait(command(gomysql.COM_STMT_EXECUTE, u32(lastStatement), []byte{0}, u32(1)))

	client.send(comQuit)
	client.endInput()
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
	const q = "select ?, ?, ?, ?, ?, ?"
	checkTranscript(t, rec, []string{
		"prepare " + q,
		`execute 7 ["-42" "9223372036854775808" "hi!" NULL "2026-11-23 20:30:00" "\\xff00"] ` + q,
		"send_long_data 7 param=5 size=10 " + q,
		`execute 7 ["1" "2" "" "3.141592653589793" "2026-01-02 00:00:00" "(long data, 10 bytes)"] ` + q,
		"reset 7 " + q,
		"fetch 7 rows=100 " + q,
		"close 7 " + q,
		"execute 9 <nil> ",
		"prepare selec ?",
		"execute 4294967295 <nil> ",
		"prepare select 1",
		"execute 8 [] select 1",
	})
}

// Two COM_STMT_PREPAREs sent before an answer: neither is learned, as the
// relay cannot tell which answer is which.
func TestRelayPipelinedPrepares(t *testing.T) {
	rec := &recorder{}
	r, client, server := newRelay(rec)
	done := runRelay(context.Background(), r)
	stream := append(command(gomysql.COM_STMT_PREPARE, []byte("select ?")), command(gomysql.COM_STMT_PREPARE, []byte("drop table t"))...)
	client.send(stream)
	server.waitFor(t, len(stream))
	server.send(append(prepareOK(1, 1, 1), prepareOK(2, 0, 0)...))
	client.waitFor(t, 32)
	client.send(command(gomysql.COM_STMT_EXECUTE, u32(2), []byte{0}, u32(1)))
	client.send(comQuit)
	client.endInput()
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
	checkTranscript(t, rec, []string{"prepare select ?", "prepare drop table t", "execute 2 <nil> "})
}

// COM_RESET_CONNECTION deallocates the statements.
func TestRelayResetConnection(t *testing.T) {
	rec := &recorder{}
	r, client, server := newRelay(rec)
	done := runRelay(context.Background(), r)
	prep := command(gomysql.COM_STMT_PREPARE, []byte("select 1"))
	client.send(prep)
	server.waitFor(t, len(prep))
	server.send(prepareOK(1, 1, 0))
	client.waitFor(t, 16)
	client.send(command(gomysql.COM_RESET_CONNECTION))
	client.send(command(gomysql.COM_STMT_EXECUTE, u32(1), []byte{0}, u32(1)))
	client.send(comQuit)
	client.endInput()
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
	checkTranscript(t, rec, []string{"prepare select 1", "execute 1 <nil> "})
}

func TestRelayTranslatesKill(t *testing.T) {
	rec := &recorder{}
	r, client, server := newRelay(rec)
	r.ConnIDs = func(id uint32) (uint32, bool) {
		if id == 1000001 {
			return 31, true
		}
		return 0, false
	}
	done := runRelay(context.Background(), r)
	for _, q := range []string{"KILL QUERY 1000001", " kill 1000001;", "kill hard connection 1000001", "KILL QUERY 77", "KILL QUERY ID 1000001", "select 1000001"} {
		client.send(command(gomysql.COM_QUERY, []byte(q)))
	}
	client.send(command(gomysql.COM_PROCESS_KILL, u32(1000001)))
	client.send(command(gomysql.COM_PROCESS_KILL, u32(77)))
	client.send(comQuit)
	client.endInput()
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
	var want []byte
	for _, q := range []string{"KILL QUERY 31", " kill 31;", "kill hard connection 31", "KILL QUERY 77", "KILL QUERY ID 1000001", "select 1000001"} {
		want = append(want, command(gomysql.COM_QUERY, []byte(q))...)
	}
	want = append(want, command(gomysql.COM_PROCESS_KILL, u32(31))...)
	want = append(want, command(gomysql.COM_PROCESS_KILL, u32(77))...)
	want = append(want, comQuit...)
	if got := server.bytes(); !bytes.Equal(got, want) {
		t.Errorf("the server got %q,\nwant %q", got, want)
	}
	checkTranscript(t, rec, []string{
		"query KILL QUERY 1000001", "query  kill 1000001;", "query kill hard connection 1000001", "query KILL QUERY 77",
		"query KILL QUERY ID 1000001", "query select 1000001", "process_kill 1000001->31", "process_kill 77->0",
	})
}

// With AllowLoadDataLocal, the file a LOAD DATA LOCAL INFILE sends goes
// through unaudited; without it, the relay refuses it.
func TestRelayLoadDataLocal(t *testing.T) {
	load := command(gomysql.COM_QUERY, []byte("load data local infile 'f' into table t"))
	file := append(append(packet(2, []byte("1,a\n")), packet(3, bytes.Repeat([]byte("2,b\n"), 30000))...), packet(4, nil)...)
	t.Run("allowed", func(t *testing.T) {
		rec := &recorder{}
		r, client, server := newRelay(rec)
		r.AllowLoadDataLocal = true
		done := runRelay(context.Background(), r)
		client.send(load)
		server.waitFor(t, len(load))
		server.send(packet(1, []byte("\xfbf")))
		client.waitFor(t, 6)
		client.send(file)
		client.send(comQuit)
		client.endInput()
		if res := <-done; res.err != nil {
			t.Fatal(res.err)
		}
		if got, want := server.bytes(), append(append(load, file...), comQuit...); !bytes.Equal(got, want) {
			t.Errorf("the server got %d bytes, want %d", len(got), len(want))
		}
		checkTranscript(t, rec, []string{"query load data local infile 'f' into table t"})
	})
	t.Run("refused", func(t *testing.T) {
		rec := &recorder{}
		r, client, _ := newRelay(rec)
		done := runRelay(context.Background(), r)
		client.send(load)
		client.send(file)
		if res := <-done; !IsPacketRefused(res.err) {
			t.Fatalf("got %v, want a refusal", res.err)
		}
	})
}
