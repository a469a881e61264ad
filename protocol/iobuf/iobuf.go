// Package iobuf holds the buffered reader, writer and copy loop that the
// relays (the wire engines' and the proxy's) move bytes with. They borrow
// their large buffers from a [Pool] only while data flows and give them
// back before they wait for more, so a session that is idle holds no large
// buffer: thousands of idle sessions cost little more than their
// connections.
//
// A [Reader] and a [Writer] have the methods of bufio's that the relays
// use, with the same meaning; [Copy] is io.Copy with a borrowed buffer.
// [OnOwnStack] keeps the relays' goroutine stacks small the same way.
package iobuf

import (
	"bufio"
	"errors"
	"io"
	"sync"
)

// DefaultSize is the size of a [Pool]'s buffers when NewPool is given 0.
const DefaultSize = 32 << 10

// smallSize is the buffer that a Reader or Copy waits with: enough for the
// replies of most statements, small enough to hold for every idle session.
const smallSize = 512

// A Pool lends buffers of one size. Share one among all the sessions of a
// server; it is safe for concurrent use.
type Pool struct {
	size int
	p    sync.Pool
}

// NewPool returns a pool of buffers of size bytes (DefaultSize if 0).
func NewPool(size int) *Pool {
	if size <= 0 {
		size = DefaultSize
	}
	return &Pool{size: size}
}

// Size is the size of the pool's buffers.
func (p *Pool) Size() int { return p.size }

func (p *Pool) get() *[]byte {
	if b, ok := p.p.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, p.size)
	return &b
}

func (p *Pool) put(b *[]byte) { p.p.Put(b) }

// A Reader buffers reads from an io.Reader, like a bufio.Reader of the
// pool's size, but holds a buffer of the pool only while it has bytes in it
// or is filling it for a Peek that asks for more than it has. Slices
// returned by Peek are valid until the next call of a Reader method.
type Reader struct {
	rd    io.Reader
	pool  *Pool
	buf   *[]byte // nil while the Reader holds nothing
	small []byte  // what the Reader waits for input with when it holds nothing
	r, w  int
	err   error
	burst bool // the last read filled more than the small buffer: keep the buffer
}

// NewReader returns a Reader of rd that borrows from pool.
func NewReader(rd io.Reader, pool *Pool) *Reader {
	return &Reader{rd: rd, pool: pool}
}

// Size is the most bytes Peek can return: the pool's buffer size.
func (b *Reader) Size() int { return b.pool.size }

// Buffered is the number of bytes that can be read without waiting.
func (b *Reader) Buffered() int { return b.w - b.r }

// Peek returns the next n bytes without advancing the reader. When fewer
// than n bytes arrive it returns them with the error that stopped it, and
// bufio.ErrBufferFull when n is larger than Size.
func (b *Reader) Peek(n int) ([]byte, error) {
	if n < 0 {
		return nil, bufio.ErrNegativeCount
	}
	if n > b.pool.size {
		b.fill(b.pool.size)
		return b.bytes(), bufio.ErrBufferFull
	}
	b.fill(n)
	if b.w-b.r < n {
		err := b.readErr()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return b.bytes(), err
	}
	if n == 0 {
		return nil, nil
	}
	return (*b.buf)[b.r : b.r+n], nil
}

// Discard skips the next n bytes, waiting for them as needed, and returns
// how many it skipped.
func (b *Reader) Discard(n int) (int, error) {
	if n < 0 {
		return 0, bufio.ErrNegativeCount
	}
	done := 0
	for {
		k := min(n-done, b.w-b.r)
		b.r += k
		done += k
		if done == n {
			return done, nil
		}
		b.release()
		if b.err != nil {
			return done, b.readErr()
		}
		b.fill(1)
	}
}

// Read reads into p: what is buffered, or else straight from the
// underlying reader.
func (b *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		b.burst = false
		b.release()
		if b.err != nil {
			return 0, b.readErr()
		}
		n, err := b.rd.Read(p)
		if n < 0 {
			return 0, errors.New("iobuf: reader returned a negative count")
		}
		return n, err
	}
	n := copy(p, (*b.buf)[b.r:b.w])
	b.r += n
	return n, nil
}

func (b *Reader) bytes() []byte {
	if b.buf == nil {
		return nil
	}
	return (*b.buf)[b.r:b.w]
}

func (b *Reader) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// release gives the buffer back once it holds nothing, unless bytes are
// arriving in bulk.
func (b *Reader) release() {
	if b.buf != nil && b.r == b.w && !b.burst {
		b.pool.put(b.buf)
		b.buf, b.r, b.w = nil, 0, 0
	}
}

// fill reads until at least n (<= Size) bytes are buffered or a read fails.
func (b *Reader) fill(n int) {
	for b.w-b.r < n && b.err == nil {
		b.release() // never wait for input holding an empty buffer
		if b.buf == nil {
			// Wait with the small buffer; borrow once bytes arrived.
			if b.small == nil {
				b.small = make([]byte, min(smallSize, b.pool.size))
			}
			k, err := b.rd.Read(b.small)
			if k < 0 {
				k, err = 0, errors.New("iobuf: reader returned a negative count")
			}
			b.err = err
			b.burst = k == len(b.small)
			if k > 0 {
				b.buf = b.pool.get()
				b.r, b.w = 0, copy(*b.buf, b.small[:k])
			}
			continue
		}
		if b.r > 0 && len(*b.buf)-b.w < n-(b.w-b.r) {
			copy(*b.buf, (*b.buf)[b.r:b.w])
			b.w -= b.r
			b.r = 0
		}
		k, err := b.rd.Read((*b.buf)[b.w:])
		if k < 0 {
			k, err = 0, errors.New("iobuf: reader returned a negative count")
		}
		b.w += k
		b.err = err
		b.burst = k > smallSize
	}
}

// A Writer buffers writes to an io.Writer, like a bufio.Writer of the
// pool's size, but holds a buffer of the pool only between the first Write
// and the next Flush. After an error every Write and Flush returns it.
type Writer struct {
	wr   io.Writer
	pool *Pool
	buf  *[]byte
	n    int
	err  error
}

// NewWriter returns a Writer to wr that borrows from pool.
func NewWriter(wr io.Writer, pool *Pool) *Writer {
	return &Writer{wr: wr, pool: pool}
}

// Buffered is the number of bytes written but not yet flushed.
func (b *Writer) Buffered() int { return b.n }

// Write buffers p, writing the buffer out whenever it fills. Writes at
// least as large as the buffer go straight through when nothing is
// buffered.
func (b *Writer) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		if b.err != nil {
			return done, b.err
		}
		if b.n == 0 && len(p) >= b.pool.size {
			n, err := b.wr.Write(p)
			if err == nil && n < len(p) {
				err = io.ErrShortWrite
			}
			b.err = err
			return done + n, err
		}
		if b.buf == nil {
			b.buf = b.pool.get()
		}
		k := copy((*b.buf)[b.n:], p)
		b.n += k
		done += k
		p = p[k:]
		if b.n == len(*b.buf) {
			b.Flush()
		}
	}
	return done, b.err
}

// Flush writes out what is buffered and gives the buffer back.
func (b *Writer) Flush() error {
	if b.err != nil {
		return b.err
	}
	if b.n > 0 {
		n, err := b.wr.Write((*b.buf)[:b.n])
		if err == nil && n < b.n {
			err = io.ErrShortWrite
		}
		if err != nil {
			b.err = err
			return err
		}
		b.n = 0
	}
	if b.buf != nil {
		b.pool.put(b.buf)
		b.buf = nil
	}
	return nil
}

// Copy copies from src to dst until src ends (io.EOF, which is not an
// error) or either fails, like io.Copy. It waits for input with a small
// buffer of its own and borrows one of the pool's while reads keep coming
// back larger than that, so a quiet source costs no large buffer. It
// returns the bytes written.
func Copy(dst io.Writer, src io.Reader, pool *Pool) (int64, error) {
	small := make([]byte, smallSize)
	var big *[]byte
	defer func() {
		if big != nil {
			pool.put(big)
		}
	}()
	var written int64
	for {
		buf := small
		if big != nil {
			buf = *big
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			written += int64(w)
			if werr == nil && w < n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return written, werr
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return written, nil
			}
			return written, rerr
		}
		switch {
		case big == nil && n == len(small):
			big = pool.get() // a burst: read it in large pieces
		case big != nil && n <= len(small):
			pool.put(big) // the burst is over: wait small again
			big = nil
		}
	}
}

// OnOwnStack runs setup on a goroutine of its own and returns its result.
// TLS handshakes and signature checks grow a goroutine's stack to tens of
// KiB, which the goroutine keeps for as long as it lives (until the
// garbage collector shrinks it); run there, that stack is freed when setup
// ends, and the relay that follows on the caller's goroutine, which mostly
// waits for bytes, keeps a small one for the whole session.
func OnOwnStack[T any](setup func() T) T {
	done := make(chan T, 1)
	go func() { done <- setup() }()
	return <-done
}
