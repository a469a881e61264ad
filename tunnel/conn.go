package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// copyBufSize is the size of the buffers that move bytes between an SSH
// channel and its net.Conn: one maximum SSH channel packet (32 KiB), so each
// channel write is one packet.
const copyBufSize = 32 << 10

// closeLinger bounds how long Close waits in the background for the peer to
// take the last chunk written before the channel is closed regardless.
const closeLinger = 10 * time.Second

// bufPool recycles copy buffers between channels. It lives in the Server or
// Agent that owns the channels (no package-level state).
type bufPool struct{ p sync.Pool }

func (bp *bufPool) get() *[]byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, copyBufSize)
	return &b
}

func (bp *bufPool) put(b *[]byte) { bp.p.Put(b) }

// chanConn is a net.Conn over an ssh.Channel.
//
// ssh.Channel has no deadlines and a blocked Read or Write cannot be woken
// without closing the channel. So the application talks to one end of two
// in-memory pipes (net.Pipe, which has exact net.Conn deadline semantics) and
// two pump goroutines move bytes between the other ends and the channel. A
// Read or Write that times out leaves the connection usable, as with TCP.
// Write returns once the pump holds the bytes (at most one 32 KiB chunk is in
// flight); Close and CloseWrite flush that chunk before the channel is closed
// or half-closed.
type chanConn struct {
	ch    ssh.Channel
	rd    net.Conn // application end of the inbound pipe
	wr    net.Conn // application end of the outbound pipe
	laddr net.Addr
	raddr net.Addr
	pool  *bufPool

	mu        sync.Mutex
	closed    bool
	writeDone bool        // the write pump has finished
	linger    *time.Timer // set by Close while the write pump still flushes
	onClose   func()
}

func newChanConn(ch ssh.Channel, reqs <-chan *ssh.Request, laddr, raddr net.Addr, pool *bufPool, onClose func()) *chanConn {
	rdApp, rdPump := net.Pipe()
	wrApp, wrPump := net.Pipe()
	c := &chanConn{ch: ch, rd: rdApp, wr: wrApp, laddr: laddr, raddr: raddr, pool: pool, onClose: onClose}
	go ssh.DiscardRequests(reqs) // ends when the channel closes
	go c.readPump(rdPump)
	go c.writePump(wrPump)
	return c
}

// readPump copies channel -> application until the channel reports EOF or
// the application closes its end.
func (c *chanConn) readPump(p net.Conn) {
	buf := c.pool.get()
	defer c.pool.put(buf)
	for {
		n, err := c.ch.Read(*buf)
		if n > 0 {
			if _, werr := p.Write((*buf)[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	p.Close() // the application reads io.EOF after the last byte
}

// writePump copies application -> channel until the application half-closes
// or closes, then half-closes or closes the channel.
func (c *chanConn) writePump(p net.Conn) {
	buf := c.pool.get()
	for {
		n, err := p.Read(*buf)
		if n > 0 {
			if _, werr := c.ch.Write((*buf)[:n]); werr != nil {
				p.Close() // the application's next Write fails
				break
			}
		}
		if err != nil {
			break
		}
	}
	c.pool.put(buf)
	c.mu.Lock()
	c.writeDone = true
	closed := c.closed
	if c.linger != nil {
		c.linger.Stop()
	}
	c.mu.Unlock()
	if closed {
		c.ch.Close()
	} else {
		c.ch.CloseWrite()
	}
}

func (c *chanConn) Read(b []byte) (int, error) {
	n, err := c.rd.Read(b)
	if err != nil && err != io.EOF {
		err = c.mapErr(err)
	}
	return n, err
}

func (c *chanConn) Write(b []byte) (int, error) {
	n, err := c.wr.Write(b)
	if err != nil {
		err = c.mapErr(err)
	}
	return n, err
}

func (c *chanConn) mapErr(err error) error {
	if errors.Is(err, io.ErrClosedPipe) {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return net.ErrClosed
		}
	}
	return err
}

// CloseWrite half-closes the connection: the peer reads io.EOF after the
// bytes already written, and this end can still read.
func (c *chanConn) CloseWrite() error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return net.ErrClosed
	}
	return c.wr.Close()
}

// Close closes both directions after flushing what Write has accepted.
func (c *chanConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closed = true
	pumpDone := c.writeDone
	if !pumpDone {
		// A peer that neither reads nor closes must not pin the channel.
		c.linger = time.AfterFunc(closeLinger, func() { c.ch.Close() })
	}
	onClose := c.onClose
	c.mu.Unlock()
	c.rd.Close()
	c.wr.Close()
	if pumpDone {
		c.ch.Close()
	}
	if onClose != nil {
		onClose()
	}
	return nil
}

func (c *chanConn) LocalAddr() net.Addr  { return c.laddr }
func (c *chanConn) RemoteAddr() net.Addr { return c.raddr }

func (c *chanConn) SetDeadline(t time.Time) error {
	c.rd.SetReadDeadline(t)
	c.wr.SetWriteDeadline(t)
	return nil
}

func (c *chanConn) SetReadDeadline(t time.Time) error  { return c.rd.SetReadDeadline(t) }
func (c *chanConn) SetWriteDeadline(t time.Time) error { return c.wr.SetWriteDeadline(t) }

// openChannel opens a channel on conn and wraps it as a net.Conn. An SSH
// channel open cannot be cancelled, so when ctx can end first the open runs
// on its own goroutine and a channel that opens after the caller gave up is
// closed at once.
func openChannel(ctx context.Context, conn ssh.Conn, chanType string, extra []byte, pool *bufPool, onClose func()) (net.Conn, error) {
	type result struct {
		ch   ssh.Channel
		reqs <-chan *ssh.Request
		err  error
	}
	wrap := func(r result) (net.Conn, error) {
		if r.err != nil {
			if onClose != nil {
				onClose()
			}
			var oe *ssh.OpenChannelError
			if errors.As(r.err, &oe) {
				return nil, &RejectedError{ChannelType: chanType, Reason: oe.Message, Err: r.err}
			}
			return nil, r.err
		}
		return newChanConn(r.ch, r.reqs, conn.LocalAddr(), conn.RemoteAddr(), pool, onClose), nil
	}
	if err := ctx.Err(); err != nil {
		return wrap(result{err: err})
	}
	if ctx.Done() == nil {
		ch, reqs, err := conn.OpenChannel(chanType, extra)
		return wrap(result{ch, reqs, err})
	}
	const (
		waiting = iota
		delivered
		abandoned
	)
	var state atomic.Int32
	done := make(chan result, 1)
	go func() {
		ch, reqs, err := conn.OpenChannel(chanType, extra)
		if !state.CompareAndSwap(waiting, delivered) {
			if err == nil {
				go ssh.DiscardRequests(reqs)
				ch.Close()
			}
			return
		}
		done <- result{ch, reqs, err}
	}()
	select {
	case r := <-done:
		return wrap(r)
	case <-ctx.Done():
		if state.CompareAndSwap(waiting, abandoned) {
			return wrap(result{err: ctx.Err()})
		}
		return wrap(<-done)
	}
}
