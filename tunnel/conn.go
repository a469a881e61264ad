package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// copyBufSize is the largest buffer a timed Read hands to its helper
// goroutine: one maximum SSH channel packet (32 KiB).
const copyBufSize = 32 << 10

// closeLinger bounds how long Close waits in the background for the peer to
// take a chunk that a timed-out Write still has in flight.
const closeLinger = 10 * time.Second

// bufPool recycles the buffers of timed Reads between channels. It lives in
// the Server or Agent that owns the channels (no package-level state).
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
// Reads and Writes without a deadline go straight to the channel from the
// caller's goroutine: no copy, no goroutine and no buffer of its own, so an
// idle session costs only the channel, and a relayed message crosses no
// extra goroutine. ssh.Channel itself has no deadlines, and a blocked Read
// or Write cannot be woken without closing the channel, so deadlines work
// in two ways:
//
//   - An operation that starts with a deadline set runs on a helper
//     goroutine while the caller waits for it or the deadline. When the
//     deadline passes first, the caller gets a timeout and the connection
//     stays usable, as with TCP: a Read's outcome is kept for the next Read,
//     and a Write's bytes (copied) are still delivered, in order, before any
//     later Write; the timed-out Write reports them as written.
//   - An operation that started without a deadline and is still blocked
//     when a deadline set later passes is ended by closing the channel:
//     it returns a timeout, and so does everything after it.
//
// Close and CloseWrite deliver what Write has accepted before they close or
// half-close the channel.
type chanConn struct {
	ch      ssh.Channel
	laddr   net.Addr
	raddr   net.Addr
	pool    *bufPool
	onClose func()

	rmu      sync.Mutex // serializes Reads
	leftover []byte     // what a timed Read received beyond what it returned
	rbuf     *[]byte    // the pooled buffer leftover points into
	rerr     error      // the error a timed Read ended with, after leftover

	wmu sync.Mutex // serializes Writes

	mu        sync.Mutex
	closed    bool
	expired   bool            // a deadline closed the channel under a blocked operation
	rdl, wdl  time.Time       // deadlines
	rchanged  chan struct{}   // closed and replaced when rdl changes
	wchanged  chan struct{}   // closed and replaced when wdl changes
	rdirect   bool            // a Read is blocked in the channel itself
	wdirect   bool            // a Write is blocked in the channel itself
	rtimer    *time.Timer     // ends a direct Read at rdl
	wtimer    *time.Timer     // ends a direct Write at wdl
	rinflight chan readResult // a timed Read's helper, when it outlived its caller
	winflight chan error      // a timed Write's helper, when it outlived its caller
}

type readResult struct {
	buf *[]byte
	n   int
	err error
}

func newChanConn(ch ssh.Channel, reqs <-chan *ssh.Request, laddr, raddr net.Addr, pool *bufPool, onClose func()) *chanConn {
	// Channel requests are never read: neither end of a tunnel sends
	// any on its channels, and a goroutine per channel to drop them would
	// be most of an idle session's cost. (A peer that sent many anyway
	// would stall only its own tunnel, once the library's queue of 16
	// filled.)
	_ = reqs
	return &chanConn{ch: ch, laddr: laddr, raddr: raddr, pool: pool, onClose: onClose,
		rchanged: make(chan struct{}), wchanged: make(chan struct{})}
}

func (c *chanConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if len(c.leftover) > 0 {
			n := copy(b, c.leftover)
			c.leftover = c.leftover[n:]
			if len(c.leftover) == 0 {
				c.pool.put(c.rbuf)
				c.rbuf = nil
			}
			return n, nil
		}
		if c.rerr != nil {
			return 0, c.rerr
		}
		c.mu.Lock()
		if err := c.endedLocked(); err != nil {
			c.mu.Unlock()
			return 0, err
		}
		dl, changed, inflight := c.rdl, c.rchanged, c.rinflight
		if inflight == nil && dl.IsZero() {
			// The common case: straight from the channel.
			c.rdirect = true
			c.mu.Unlock()
			n, err := c.ch.Read(b)
			c.mu.Lock()
			c.rdirect = false
			if c.rtimer != nil {
				c.rtimer.Stop()
				c.rtimer = nil
			}
			c.mu.Unlock()
			if err != nil && err != io.EOF {
				err = c.mapErr(err)
			} else if err == io.EOF && n == 0 {
				err = c.eofErr()
			}
			return n, err
		}
		if inflight == nil {
			if !time.Now().Before(dl) {
				c.mu.Unlock()
				return 0, os.ErrDeadlineExceeded
			}
			inflight = make(chan readResult, 1)
			c.rinflight = inflight
			buf := c.pool.get()
			want := min(len(b), len(*buf))
			go func() {
				n, err := c.ch.Read((*buf)[:want])
				inflight <- readResult{buf: buf, n: n, err: err}
			}()
		}
		c.mu.Unlock()
		r, err := awaitHelper(inflight, dl, changed)
		if err != nil {
			return 0, err
		}
		if r == nil {
			continue // the deadline changed: look again
		}
		c.mu.Lock()
		c.rinflight = nil
		c.mu.Unlock()
		c.leftover, c.rbuf = (*r.buf)[:r.n], r.buf
		if r.n == 0 {
			c.pool.put(r.buf)
			c.leftover, c.rbuf = nil, nil
		}
		if r.err != nil {
			if r.err == io.EOF {
				c.rerr = io.EOF
			} else {
				c.rerr = c.mapErr(r.err)
			}
		}
		if r.n == 0 && r.err == nil {
			continue
		}
	}
}

// awaitHelper waits for a helper's outcome until deadline dl or until changed is
// closed (the deadline was changed: nil, nil).
func awaitHelper[T any](done chan T, dl time.Time, changed chan struct{}) (*T, error) {
	var timeout <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			select {
			case v := <-done:
				return &v, nil
			default:
				return nil, os.ErrDeadlineExceeded
			}
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case v := <-done:
		return &v, nil
	case <-timeout:
		return nil, os.ErrDeadlineExceeded
	case <-changed:
		return nil, nil
	}
}

func (c *chanConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for {
		c.mu.Lock()
		if err := c.endedLocked(); err != nil {
			c.mu.Unlock()
			return 0, err
		}
		dl, changed, inflight := c.wdl, c.wchanged, c.winflight
		if inflight != nil {
			// A timed-out Write's bytes go first.
			c.mu.Unlock()
			r, err := awaitHelper(inflight, dl, changed)
			if err != nil {
				return 0, err
			}
			if r == nil {
				continue
			}
			c.mu.Lock()
			c.winflight = nil
			c.mu.Unlock()
			if *r != nil {
				return 0, c.mapErr(*r)
			}
			continue
		}
		if dl.IsZero() {
			c.wdirect = true
			c.mu.Unlock()
			n, err := c.ch.Write(b)
			c.mu.Lock()
			c.wdirect = false
			if c.wtimer != nil {
				c.wtimer.Stop()
				c.wtimer = nil
			}
			c.mu.Unlock()
			if err != nil {
				err = c.mapErr(err)
			}
			return n, err
		}
		if !time.Now().Before(dl) {
			c.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		done := make(chan error, 1)
		c.winflight = done
		c.mu.Unlock()
		data := bytes.Clone(b)
		go func() {
			_, err := c.ch.Write(data)
			done <- err
		}()
		r, err := awaitHelper(done, dl, nil)
		if err != nil {
			// The bytes are on their way; the next Write waits for them.
			return len(b), err
		}
		c.mu.Lock()
		c.winflight = nil
		c.mu.Unlock()
		if *r != nil {
			return 0, c.mapErr(*r)
		}
		return len(b), nil
	}
}

// endedLocked is the error of every operation once the connection was
// closed here (net.ErrClosed) or a deadline ended it (a timeout); nil
// before.
func (c *chanConn) endedLocked() error {
	switch {
	case c.expired:
		return os.ErrDeadlineExceeded
	case c.closed:
		return net.ErrClosed
	}
	return nil
}

// mapErr turns the channel's errors after a local Close into net.ErrClosed
// and after a deadline closed the channel into a timeout.
func (c *chanConn) mapErr(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ended := c.endedLocked(); ended != nil {
		return ended
	}
	return err
}

// eofErr is what a Read that reached the channel's end returns: io.EOF,
// unless the channel ended because it was closed here.
func (c *chanConn) eofErr() error { return c.mapErr(io.EOF) }

// CloseWrite half-closes the connection: the peer reads io.EOF after the
// bytes already written, and this end can still read.
func (c *chanConn) CloseWrite() error {
	c.mu.Lock()
	closed, inflight := c.closed, c.winflight
	c.mu.Unlock()
	if closed {
		return net.ErrClosed
	}
	if inflight != nil {
		// Deliver the bytes of a timed-out Write first, for a while.
		c.wmu.Lock()
		c.mu.Lock()
		inflight = c.winflight
		c.mu.Unlock()
		if inflight != nil {
			t := time.NewTimer(closeLinger)
			select {
			case <-inflight:
				c.mu.Lock()
				c.winflight = nil
				c.mu.Unlock()
			case <-t.C:
				c.wmu.Unlock()
				return c.Close()
			}
			t.Stop()
		}
		c.wmu.Unlock()
	}
	return c.ch.CloseWrite()
}

// Close closes both directions after delivering what Write has accepted.
func (c *chanConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closed = true
	for _, t := range []*time.Timer{c.rtimer, c.wtimer} {
		if t != nil {
			t.Stop()
		}
	}
	inflight := c.winflight
	onClose := c.onClose
	c.mu.Unlock()
	if inflight == nil {
		c.ch.Close()
	} else {
		// A peer that neither reads nor closes must not pin the channel.
		go func() {
			t := time.NewTimer(closeLinger)
			defer t.Stop()
			select {
			case <-inflight:
			case <-t.C:
			}
			c.ch.Close()
		}()
	}
	if onClose != nil {
		onClose()
	}
	return nil
}

func (c *chanConn) LocalAddr() net.Addr  { return c.laddr }
func (c *chanConn) RemoteAddr() net.Addr { return c.raddr }

func (c *chanConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *chanConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl = t
	close(c.rchanged)
	c.rchanged = make(chan struct{})
	c.rtimer = c.armLocked(c.rtimer, c.rdirect, t)
	return nil
}

func (c *chanConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wdl = t
	close(c.wchanged)
	c.wchanged = make(chan struct{})
	c.wtimer = c.armLocked(c.wtimer, c.wdirect, t)
	return nil
}

// armLocked (re)arms the timer that ends an operation blocked in the
// channel (direct) when deadline t passes, by closing the channel.
func (c *chanConn) armLocked(old *time.Timer, direct bool, t time.Time) *time.Timer {
	if old != nil {
		old.Stop()
	}
	if !direct || t.IsZero() || c.closed {
		return nil
	}
	return time.AfterFunc(time.Until(t), func() {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		c.expired = true
		c.mu.Unlock()
		c.ch.Close()
	})
}

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
