package mysql

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// maxPayload is the largest payload of one packet (0xffffff). A payload of
// exactly this size is continued by the next packet; a command or result
// ends with the first packet that is shorter.
const maxPayload = gomysql.MaxPayloadLen

// errShort is the cause of a payload that ends in the middle of a field.
var errShort = errors.New("the packet ends in the middle of a field")

// readPacket reads one packet from r, exactly (header, then payload), and
// checks its sequence ID. Payloads longer than limit, and continued
// payloads (the connection phase never needs them), are refused before
// anything is allocated for them.
func readPacket(r io.Reader, wantSeq byte, limit int) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := int(head[0]) | int(head[1])<<8 | int(head[2])<<16
	if n > limit {
		return nil, fmt.Errorf("a packet of %d bytes is larger than the %d bytes allowed here", n, limit)
	}
	if head[3] != wantSeq {
		return nil, fmt.Errorf("packet out of order: sequence ID %d where %d was expected", head[3], wantSeq)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return payload, nil
}

// appendPacket appends payload as one packet with sequence ID seq.
// payload must be shorter than maxPayload.
func appendPacket(b []byte, seq byte, payload []byte) []byte {
	n := len(payload)
	b = append(b, byte(n), byte(n>>8), byte(n>>16), seq)
	return append(b, payload...)
}

// Server status flags ([WriteOK]).
const (
	StatusInTransaction = gomysql.SERVER_STATUS_IN_TRANS
	StatusAutocommit    = gomysql.SERVER_STATUS_AUTOCOMMIT
)

// appendOK appends an OK packet with no affected rows, no insert ID and no
// warnings.
func appendOK(b []byte, seq byte, status uint16) []byte {
	payload := [7]byte{gomysql.OK_HEADER, 0, 0, byte(status), byte(status >> 8), 0, 0}
	return appendPacket(b, seq, payload[:])
}

// WriteOK writes an OK packet with sequence ID seq and the server status
// flags status (usually [StatusAutocommit]): what ends a successful login.
// It carries no info text, which a server also leaves out, with or without
// CLIENT_SESSION_TRACK, when it has nothing to say.
func WriteOK(w io.Writer, seq byte, status uint16) error {
	if _, err := w.Write(appendOK(nil, seq, status)); err != nil {
		return fmt.Errorf("mysql: write OK packet: %w", err)
	}
	return nil
}

// appendError appends an ERR packet in the protocol 4.1 form (with a
// SQLSTATE). message is cut, at a character boundary, so that the packet
// fits in one.
func appendError(b []byte, seq byte, code uint16, sqlstate, message string) []byte {
	if len(sqlstate) != 5 {
		sqlstate = "HY000"
	}
	if max := 0xffff; len(message) > max {
		message = truncateText(message, max-markerMax)
	}
	payload := make([]byte, 0, 9+len(message))
	payload = append(payload, gomysql.ERR_HEADER, byte(code), byte(code>>8), '#')
	payload = append(payload, sqlstate...)
	payload = append(payload, message...)
	return appendPacket(b, seq, payload)
}

// WriteError writes an ERR packet with sequence ID seq, the MySQL error
// code, the SQLSTATE (five characters; "HY000" when it is not) and message,
// in one write. The mysql and mariadb clients print it as
//
//	ERROR 3159 (HY000): MESSAGE
//
// so message should be one sentence that says what went wrong and what to
// do. During the login, seq is the sequence ID the client expects next
// ([ClientHello].SequenceID, [SessionStart].Sequence); in the command phase
// it is one more than that of the client's last packet.
func WriteError(w io.Writer, seq byte, code uint16, sqlstate, message string) error {
	if _, err := w.Write(appendError(nil, seq, code, sqlstate, message)); err != nil {
		return fmt.Errorf("mysql: write ERR packet: %w", err)
	}
	return nil
}

// decodeError decodes the payload of an ERR packet (protocol 4.1 form).
func decodeError(p []byte) (code uint16, sqlstate, message string, ok bool) {
	if len(p) < 3 || p[0] != gomysql.ERR_HEADER {
		return 0, "", "", false
	}
	code = binary.LittleEndian.Uint16(p[1:])
	p = p[3:]
	if len(p) >= 6 && p[0] == '#' {
		sqlstate, p = string(p[1:6]), p[6:]
	}
	return code, sqlstate, string(p), true
}

// reader decodes the fields of a payload. Every method fails with errShort
// instead of reading past the end.
type reader struct {
	b []byte
}

func (r *reader) len() int { return len(r.b) }

func (r *reader) byte() (byte, error) {
	if len(r.b) < 1 {
		return 0, errShort
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || len(r.b) < n {
		return nil, errShort
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p, nil
}

func (r *reader) uint16() (uint16, error) {
	p, err := r.bytes(2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(p), nil
}

func (r *reader) uint32() (uint32, error) {
	p, err := r.bytes(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

// lenenc reads a length-encoded integer. 0xfb (NULL) and 0xff are refused:
// where this is used, a length is required.
func (r *reader) lenenc() (uint64, error) {
	c, err := r.byte()
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
		return 0, fmt.Errorf("invalid length-encoded integer 0x%02x", c)
	default:
		return uint64(c), nil
	}
	p, err := r.bytes(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(p[i])
	}
	return v, nil
}

// lenencBytes reads a length-encoded string.
func (r *reader) lenencBytes() ([]byte, error) {
	n, err := r.lenenc()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)) {
		return nil, errShort
	}
	return r.bytes(int(n))
}

// cstring reads a NUL-terminated string; with toEnd, a string that runs
// to the end of the payload without a NUL is accepted too.
func (r *reader) cstring(toEnd bool) ([]byte, error) {
	for i, c := range r.b {
		if c == 0 {
			s := r.b[:i:i]
			r.b = r.b[i+1:]
			return s, nil
		}
	}
	if !toEnd {
		return nil, errShort
	}
	s := r.b
	r.b = nil
	return s, nil
}
