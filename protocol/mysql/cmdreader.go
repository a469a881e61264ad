package mysql

import (
	"errors"
	"io"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// Errors that end a command's reading and the session with it.
var (
	errTooLarge   = errors.New("command too large")
	errOutOfOrder = errors.New("packet out of sequence")
	errMalformed  = errors.New("malformed command")
)

// cmdReader reads one command from the client stream, packet by packet,
// and forwards what it consumes to the server, except the command's last
// byte (or, when the last packet is empty, its header): finish forwards
// that once the command's event is out, so the server cannot run the
// command before it is audited. It holds nothing of the command beyond the
// client reader's buffer.
type cmdReader struct {
	s       *session
	cmd     byte
	forward bool // pass consumed bytes on (false: drop them)

	left    int   // unconsumed payload bytes of the current packet
	final   bool  // the current packet is the command's last
	seq     byte  // sequence ID of the current packet
	total   int64 // payload bytes the headers so far declared
	partial bool  // bytes of the command reached the server writer
	held    [4]byte
	nheld   int
	prefix  string // the start of the SQL text of COM_QUERY and COM_STMT_PREPARE, for a refusal
}

// startCommand starts reading the command at the head of the client
// stream; its header has been peeked.
func (s *session) startCommand(cmd byte, forward bool) *cmdReader {
	cr := &s.cr
	*cr = cmdReader{s: s, cmd: cmd, forward: forward}
	if cmd == gomysql.COM_QUERY || cmd == gomysql.COM_STMT_PREPARE {
		// Already buffered: does not block.
		if k := min(s.br.Buffered(), 5+refusedPrefix); k > 5 {
			p, _ := s.br.Peek(k)
			n := int(p[0]) | int(p[1])<<8 | int(p[2])<<16
			body := p[5:min(k, 4+n)]
			cr.prefix = string(body[:runeCut(body, len(body))])
		}
	}
	return cr
}

// openPacket consumes the header of the next packet of the command. It
// returns errTooLarge, without forwarding the header, when the command
// grows past the relay's limit.
func (c *cmdReader) openPacket(first bool) error {
	head, err := c.s.peek(4)
	if err != nil {
		return c.s.readError(err)
	}
	n := int(head[0]) | int(head[1])<<8 | int(head[2])<<16
	seq := head[3]
	if !first && seq != c.seq+1 {
		c.seq = seq
		return errOutOfOrder
	}
	c.seq = seq
	c.total += int64(n)
	c.left = n
	c.final = n < maxPayload
	c.s.fromClient += 4
	if c.total > c.s.maxSize {
		c.s.br.Discard(4)
		return errTooLarge
	}
	if c.forward {
		if c.final && n == 0 {
			c.nheld = copy(c.held[:], head)
		} else {
			if _, err := c.s.bw.Write(head); err != nil {
				return &serverWriteError{err}
			}
			c.partial = true
		}
	}
	c.s.br.Discard(4)
	return nil
}

// chunk returns buffered bytes of the command's payload, at least one,
// opening the next packet when the current one is used up; io.EOF at the
// end of the command. The bytes are valid until consume.
func (c *cmdReader) chunk() ([]byte, error) {
	for c.left == 0 {
		if c.final {
			return nil, io.EOF
		}
		if err := c.openPacket(false); err != nil {
			return nil, err
		}
	}
	if c.s.br.Buffered() == 0 {
		if _, err := c.s.peek(1); err != nil {
			return nil, c.s.readError(err)
		}
	}
	p, _ := c.s.br.Peek(min(c.s.br.Buffered(), c.left))
	return p, nil
}

// consume drops the first k bytes of what chunk returned, forwarding them
// (all but the command's last byte).
func (c *cmdReader) consume(k int) error {
	p, _ := c.s.br.Peek(k)
	if c.forward {
		if c.final && k == c.left {
			c.held[0], c.nheld = p[k-1], 1
			p = p[:k-1]
		}
		if len(p) > 0 {
			if _, err := c.s.bw.Write(p); err != nil {
				return &serverWriteError{err}
			}
			c.partial = true
		}
	}
	c.s.br.Discard(k)
	c.left -= k
	c.s.fromClient += int64(k)
	return nil
}

// skip consumes n bytes of the payload; io.ErrUnexpectedEOF if the
// command ends first.
func (c *cmdReader) skip(n int64) error {
	for n > 0 {
		p, err := c.chunk()
		if err == io.EOF {
			return errShort
		}
		if err != nil {
			return err
		}
		k := int(min(int64(len(p)), n))
		if err := c.consume(k); err != nil {
			return err
		}
		n -= int64(k)
	}
	return nil
}

// finish consumes what is left of the command and forwards what was held
// back.
func (c *cmdReader) finish() error {
	for {
		p, err := c.chunk()
		if err == io.EOF {
			break
		}
		if err != nil {
			return c.s.commandError(c, err)
		}
		if err := c.consume(len(p)); err != nil {
			return err
		}
	}
	if c.nheld > 0 {
		if _, err := c.s.bw.Write(c.held[:c.nheld]); err != nil {
			return &serverWriteError{err}
		}
		c.nheld = 0
	}
	return nil
}

// drain reads and drops the rest of the command (nothing more is
// forwarded), so that the client, which writes a command whole before it
// reads, gets to read the answer. It gives up after maxDrain bytes.
func (c *cmdReader) drain() error {
	c.forward = false
	c.nheld = 0
	var dropped int64
	for {
		if c.left > 0 {
			if c.s.br.Buffered() == 0 {
				if _, err := c.s.peek(1); err != nil {
					return c.s.readError(err)
				}
			}
			k := min(c.s.br.Buffered(), c.left)
			c.s.br.Discard(k)
			c.left -= k
			c.s.fromClient += int64(k)
			dropped += int64(k)
			continue
		}
		if c.final {
			return nil
		}
		if dropped > maxDrain {
			return errTooLarge
		}
		head, err := c.s.peek(4)
		if err != nil {
			return c.s.readError(err)
		}
		n := int(head[0]) | int(head[1])<<8 | int(head[2])<<16
		if head[3] != c.seq+1 {
			c.seq = head[3]
			return errOutOfOrder
		}
		c.seq = head[3]
		c.total += int64(n)
		c.left, c.final = n, n < maxPayload
		c.s.br.Discard(4)
		c.s.fromClient += 4
	}
}

// source hands a command's payload, after the command byte, to the
// decoder: a slice when the command was held whole, a cmdReader when it
// streams. Slices it returns are valid until the next call.
type source struct {
	buf     []byte
	cr      *cmdReader
	scratch []byte
}

func (s *source) reset(buf []byte, cr *cmdReader) {
	s.buf, s.cr = buf, cr
	if cap(s.scratch) > scratchKeep {
		s.scratch = nil
	}
}

// scratchKeep is the largest scratch buffer a session keeps between
// commands.
const scratchKeep = 1 << 20

// read returns the next n bytes (n is small: a header, a bitmap, the
// parameter types).
func (s *source) read(n int) ([]byte, error) {
	if s.cr == nil {
		if n < 0 || len(s.buf) < n {
			return nil, errShort
		}
		p := s.buf[:n:n]
		s.buf = s.buf[n:]
		return p, nil
	}
	s.scratch = s.scratch[:0]
	for len(s.scratch) < n {
		p, err := s.cr.chunk()
		if err == io.EOF {
			return nil, errShort
		}
		if err != nil {
			return nil, err
		}
		k := min(len(p), n-len(s.scratch))
		s.scratch = append(s.scratch, p[:k]...)
		if err := s.cr.consume(k); err != nil {
			return nil, err
		}
	}
	return s.scratch, nil
}

func (s *source) byte() (byte, error) {
	p, err := s.read(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

func (s *source) uint16() (uint16, error) {
	p, err := s.read(2)
	if err != nil {
		return 0, err
	}
	return uint16(p[0]) | uint16(p[1])<<8, nil
}

func (s *source) uint32() (uint32, error) {
	p, err := s.read(4)
	if err != nil {
		return 0, err
	}
	return uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16 | uint32(p[3])<<24, nil
}

// lenenc reads a length-encoded integer.
func (s *source) lenenc() (uint64, error) {
	c, err := s.byte()
	if err != nil {
		return 0, err
	}
	var n int
	switch c {
	case 0xfc:
		n = 2
	case 0xfd:
		n = 3
	case 0xfe:
		n = 8
	case 0xfb, 0xff:
		return 0, errMalformed
	default:
		return uint64(c), nil
	}
	p, err := s.read(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(p[i])
	}
	return v, nil
}

// value reads an n-byte value and returns its first min(n, keep) bytes.
func (s *source) value(n uint64, keep int) ([]byte, error) {
	if s.cr == nil {
		if n > uint64(len(s.buf)) {
			return nil, errShort
		}
		p := s.buf[:min(int(n), keep)]
		s.buf = s.buf[n:]
		return p, nil
	}
	if n > uint64(s.cr.s.maxSize) {
		return nil, errShort // longer than any command the relay passes on
	}
	p, err := s.read(min(int(n), keep))
	if err != nil {
		return nil, err
	}
	if err := s.cr.skip(int64(n) - int64(len(p))); err != nil {
		return nil, err
	}
	return p, nil
}

// rest reads the rest of the payload and returns its first keep bytes and
// its size.
func (s *source) rest(keep int) ([]byte, int64, error) {
	if s.cr == nil {
		p := s.buf
		s.buf = nil
		return p[:min(len(p), keep)], int64(len(p)), nil
	}
	s.scratch = s.scratch[:0]
	var size int64
	for {
		p, err := s.cr.chunk()
		if err == io.EOF {
			return s.scratch, size, nil
		}
		if err != nil {
			return nil, 0, err
		}
		if room := keep - len(s.scratch); room > 0 {
			s.scratch = append(s.scratch, p[:min(room, len(p))]...)
		}
		size += int64(len(p))
		if err := s.cr.consume(len(p)); err != nil {
			return nil, 0, err
		}
	}
}

// skipRest consumes the rest of the payload.
func (s *source) skipRest() error {
	if s.cr == nil {
		s.buf = nil
		return nil
	}
	_, _, err := s.rest(0)
	return err
}
