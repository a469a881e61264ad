package mysql

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// MaxSessionStartSize bounds the JSON of a [SessionStart]. A login is at
// most MaxHandshakeSize bytes; its JSON, escapes included, fits.
const MaxSessionStartSize = 1 << 20

// SessionStart is what the proxy hands the agent once a client has logged
// in to it ([ClientHello.SessionStart]), written into the agent channel
// before the session's packets: the client's login as far as the upstream
// session must repeat it, and what the agent needs to answer it. Like
// protocol.SessionRequest it holds nothing the agent trusts for
// authorization: the database user and name come from the route in the
// session certificate; Username and Database are what the client typed.
type SessionStart struct {
	Username string `json:"username"`
	Database string `json:"database,omitempty"`
	// Capabilities are the capability flags the client negotiated
	// ([ClientHello].Capabilities); the upstream session repeats them.
	Capabilities uint32 `json:"capabilities"`
	// Charset is the client's collation ID.
	Charset uint8 `json:"charset"`
	// Attributes are the client's connection attributes.
	Attributes map[string]string `json:"attributes,omitempty"`
	// ConnectionID is the connection ID the proxy's greeting gave the
	// client.
	ConnectionID uint32 `json:"connection_id"`
	// AuthPlugin and AuthResponded describe the client's authentication
	// response; see [SessionStart.WriteAuthOK].
	AuthPlugin    string `json:"auth_plugin,omitempty"`
	AuthResponded bool   `json:"auth_responded,omitempty"`
	// Sequence is the sequence ID of the next packet to the client.
	Sequence uint8 `json:"sequence"`
}

// WriteSessionStart writes s to w as a 4-byte big-endian length and JSON,
// in one write.
func WriteSessionStart(w io.Writer, s *SessionStart) error {
	body, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("mysql: encode the session start: %w", err)
	}
	if len(body) > MaxSessionStartSize {
		return fmt.Errorf("mysql: the session start is %d bytes, more than the %d allowed", len(body), MaxSessionStartSize)
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(body)), uint32(len(body)))
	if _, err := w.Write(append(buf, body...)); err != nil {
		return fmt.Errorf("mysql: send the session start: %w", err)
	}
	return nil
}

// ReadSessionStart reads what [WriteSessionStart] wrote, exactly: nothing
// after it is consumed, so the session's packets follow on r. It refuses a
// length over MaxSessionStartSize before reading the body, and a login the
// relay cannot carry (without protocol 4.1, with compression).
func ReadSessionStart(r io.Reader) (*SessionStart, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("mysql: read the session start: %w", err)
	}
	n := binary.BigEndian.Uint32(head[:])
	if n == 0 || n > MaxSessionStartSize {
		return nil, fmt.Errorf("mysql: a session start of %d bytes is outside 1..%d; is the peer a Portcullis proxy?", n, MaxSessionStartSize)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("mysql: read the session start: %w", err)
	}
	var s SessionStart
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("mysql: decode the session start: %w", err)
	}
	if s.Capabilities&gomysql.CLIENT_PROTOCOL_41 == 0 {
		return nil, errors.New("mysql: the session start lacks protocol 4.1; the proxy and agent do not agree on the protocol")
	}
	if s.Capabilities&(gomysql.CLIENT_COMPRESS|gomysql.CLIENT_ZSTD_COMPRESSION_ALGORITHM) != 0 {
		return nil, errors.New("mysql: the session start asks for compression, which Portcullis does not relay")
	}
	return &s, nil
}

// WriteAuthOK accepts the client's login on w (the client connection or
// the channel the proxy relays to it), in one write: an OK packet with the
// server status flags status (the upstream session's,
// [Upstream].Status). A client that answered the caching_sha2_password
// challenge with a password first gets the "fast authentication
// succeeded" packet that a MySQL server sends in that case, without which
// MySQL clients do not accept the OK; every other client, the usual one
// without a password included, gets the OK alone.
func (s *SessionStart) WriteAuthOK(w io.Writer, status uint16) error {
	var buf []byte
	seq := s.Sequence
	if s.AuthResponded && s.AuthPlugin == gomysql.AUTH_CACHING_SHA2_PASSWORD {
		buf = appendPacket(buf, seq, []byte{gomysql.MORE_DATE_HEADER, gomysql.CACHE_SHA2_FAST_AUTH})
		seq++
	}
	buf = appendOK(buf, seq, status)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("mysql: accept the client's login: %w", err)
	}
	return nil
}

// WriteError refuses the client's login with an ERR packet (see
// [WriteError]).
func (s *SessionStart) WriteError(w io.Writer, code uint16, sqlstate, message string) error {
	return WriteError(w, s.Sequence, code, sqlstate, message)
}
