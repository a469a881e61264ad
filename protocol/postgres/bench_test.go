package postgres

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/portcullis-db/portcullis/audit"
)

// BenchmarkDecode measures the audit decoder per message: ns/op and B/op
// are per message decoded into its event.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name string
		msg  pgproto3.FrontendMessage
	}{
		{"Query", &pgproto3.Query{String: "select id, name, balance from accounts where owner = 'alice' and balance > 100"}},
		{"Parse", &pgproto3.Parse{Name: "stmtcache_0123456789abcdef", Query: "select id, name, balance from accounts where owner = $1 and balance > $2", ParameterOIDs: []uint32{25, 23}}},
		{"Bind", &pgproto3.Bind{PreparedStatement: "stmtcache_0123456789abcdef", ParameterFormatCodes: []int16{0, 1, 0},
			Parameters: [][]byte{[]byte("alice"), {0, 0, 0, 100}, nil}, ResultFormatCodes: []int16{1}}},
		{"Execute", &pgproto3.Execute{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := newDecoder(&Relay{Clock: func() time.Time { return time.Time{} }})
			prep := encode(b, &pgproto3.Parse{Name: "stmtcache_0123456789abcdef", Query: "select 1"})
			if _, err := d.decode('P', prep[5:]); err != nil {
				b.Fatal(err)
			}
			frame := encode(b, bc.msg)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := d.decode(frame[0], frame[5:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// readerConn is a net.Conn that reads a fixed stream (then EOF) and
// discards writes. It implements neither io.WriterTo nor io.ReaderFrom,
// so the relay's own buffers do the copying.
type readerConn struct {
	r *bytes.Reader
	nopConn
}

func (c *readerConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *readerConn) Write(p []byte) (int, error) { return len(p), nil }

// sinkConn discards writes; its reads block until it is closed, or, after
// CloseWrite, return EOF (a server that hangs up after its client).
type sinkConn struct {
	done chan struct{}
	once sync.Once
	nopConn
}

func newSinkConn() *sinkConn                    { return &sinkConn{done: make(chan struct{})} }
func (c *sinkConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *sinkConn) Read([]byte) (int, error)    { <-c.done; return 0, io.EOF }
func (c *sinkConn) Close() error                { c.once.Do(func() { close(c.done) }); return nil }
func (c *sinkConn) CloseWrite() error           { return c.Close() }

type nopConn struct{}

func (nopConn) Close() error                     { return nil }
func (nopConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (nopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (nopConn) SetDeadline(time.Time) error      { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }

// reportPerByte reports the bytes allocated per byte relayed over the
// benchmark loop.
func reportPerByte(b *testing.B, relayed int64, run func()) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		run()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(relayed*int64(b.N)), "alloc-B/relayed-B")
}

// BenchmarkRelayClientToServer relays 16 MiB of client messages per op:
// CopyData (streamed), or a mix of simple queries and prepared-statement
// pipelines (decoded and audited).
func BenchmarkRelayClientToServer(b *testing.B) {
	row := bytes.Repeat([]byte("42\tsome text value\t2026-11-23\n"), 2000)
	pipeline := concat(b,
		&pgproto3.Query{String: "select id, name from accounts where id = 42"},
		&pgproto3.Parse{Name: "s", Query: "update accounts set balance = balance + $1 where id = $2"},
		&pgproto3.Bind{PreparedStatement: "s", ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 5}, {0, 0, 0, 42}}},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	)
	for _, bc := range []struct {
		name string
		unit []byte
	}{
		{"CopyData", concat(b, &pgproto3.CopyData{Data: row})},
		{"Statements", pipeline},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var stream []byte
			for len(stream) < 16<<20 {
				stream = append(stream, bc.unit...)
			}
			stream = append(stream, 'X', 0, 0, 0, 4)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			reportPerByte(b, int64(len(stream)), func() {
				r := &Relay{Client: &readerConn{r: bytes.NewReader(stream)}, Server: newSinkConn(), Emitter: audit.DiscardEmitter{}}
				if _, err := r.Run(context.Background()); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkRelayServerToClient relays 16 MiB of DataRow messages per op
// from the server to the client.
func BenchmarkRelayServerToClient(b *testing.B) {
	unit := concat(b, &pgproto3.DataRow{Values: [][]byte{[]byte("42"), bytes.Repeat([]byte("x"), 200)}})
	var stream []byte
	for len(stream) < 16<<20 {
		stream = append(stream, unit...)
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	reportPerByte(b, int64(len(stream)), func() {
		r := &Relay{Client: newSinkConn(), Server: &readerConn{r: bytes.NewReader(stream)}}
		if _, err := r.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	})
}
