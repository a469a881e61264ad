package mysql

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/portcullis-db/portcullis/audit"
)

// BenchmarkDecode measures the audit decoder per command held in place:
// ns/op and B/op are per command decoded into its event.
func BenchmarkDecode(b *testing.B) {
	execute := append(u32(1), 0, 1, 0, 0, 0, 0, 1,
		gomysql.MYSQL_TYPE_LONGLONG, 0, gomysql.MYSQL_TYPE_VAR_STRING, 0, gomysql.MYSQL_TYPE_DOUBLE, 0)
	execute = binary.LittleEndian.AppendUint64(execute, 42)
	execute = append(execute, 5, 'a', 'l', 'i', 'c', 'e')
	execute = binary.LittleEndian.AppendUint64(execute, 0x4059000000000000)
	for _, bc := range []struct {
		name string
		cmd  byte
		body []byte
	}{
		{"COM_QUERY", gomysql.COM_QUERY, []byte("select id, name, balance from accounts where owner = 'alice' and balance > 100")},
		{"COM_STMT_PREPARE", gomysql.COM_STMT_PREPARE, []byte("select id, name, balance from accounts where id = ? and owner = ? and balance > ?")},
		{"COM_STMT_EXECUTE", gomysql.COM_STMT_EXECUTE, execute},
		{"COM_STMT_CLOSE", gomysql.COM_STMT_CLOSE, u32(1)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var w prepWatch
			d := newDecoder(&Relay{Clock: func() time.Time { return time.Time{} }}, &w)
			var src source
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				d.stmts.put(1, &stmtInfo{query: "select id, name, balance from accounts where id = ? and owner = ? and balance > ?", numParams: 3})
				w.armed.Store(false)
				src.reset(bc.body, nil)
				if _, _, err := d.decode(bc.cmd, &src, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// readerConn is a net.Conn that reads a fixed stream (then EOF) and
// discards writes.
type readerConn struct {
	r *bytes.Reader
	nopConn
}

func (c *readerConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *readerConn) Write(p []byte) (int, error) { return len(p), nil }

// sinkConn discards writes; its reads block until it is closed, or, after
// CloseWrite, return EOF (a server that hangs up after COM_QUIT).
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

// BenchmarkRelayClientToServer relays 16 MiB of client commands per op:
// unaudited (COM_PING), audited queries and executions, or one large
// command that streams (a 16 MiB INSERT over two packets).
func BenchmarkRelayClientToServer(b *testing.B) {
	execute := append(u32(1), 0, 1, 0, 0, 0, 0, 1, gomysql.MYSQL_TYPE_LONGLONG, 0)
	execute = binary.LittleEndian.AppendUint64(execute, 42)
	for _, bc := range []struct {
		name string
		unit []byte
	}{
		{"Ping", command(gomysql.COM_PING)},
		{"Statements", bytes.Join([][]byte{
			command(gomysql.COM_QUERY, []byte("select id, name from accounts where id = 42")),
			command(gomysql.COM_STMT_EXECUTE, execute),
		}, nil)},
		{"LargeInsert", command(gomysql.COM_QUERY, []byte("insert into blobs values ('"), bytes.Repeat([]byte("x"), 16<<20), []byte("')"))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var stream []byte
			for len(stream) < 16<<20 {
				stream = append(stream, bc.unit...)
			}
			stream = append(stream, comQuit...)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			reportPerByte(b, int64(len(stream)), func() {
				r := &Relay{Client: &readerConn{r: bytes.NewReader(stream)}, Server: newSinkConn(), Emitter: audit.DiscardEmitter{}}
				s := r.newSession(context.Background())
				s.dec.stmts.put(1, &stmtInfo{query: "update accounts set balance = balance + 1 where id = ?", numParams: 1})
				if _, err := s.run(context.Background()); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkRelayServerToClient relays 16 MiB of result rows per op from
// the server to the client.
func BenchmarkRelayServerToClient(b *testing.B) {
	unit := packet(3, append([]byte{2, '4', '2', 200}, bytes.Repeat([]byte("x"), 200)...))
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
