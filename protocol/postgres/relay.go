package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/protocol/iobuf"
)

// DefaultMaxMessageSize is the largest client message a [Relay] passes on
// when MaxMessageSize is 0. PostgreSQL's own limit is 1 GiB; clients send
// bulk data as many small CopyData messages, so a statement or Bind this
// large is almost always a mistake or an attack.
const DefaultMaxMessageSize = 64 << 20

// bufferSize is the size of the relay's buffers (the client reader, the
// server writer and the server -> client copy buffer) when Relay.Buffers
// does not lend larger ones. The relay holds them only while bytes flow.
const bufferSize = 32 << 10

// scratchKeep is the largest scratch buffer (for audited messages that do
// not fit the reader's buffer) a session keeps between messages.
const scratchKeep = 1 << 20

// refusedPrefix bounds the SQL text an event records of a refused message.
const refusedPrefix = 4 << 10

// Relay carries one PostgreSQL session between a client and a server once
// startup is done (after [Upstream.ReplayStartup]), auditing what the
// client sends.
//
// Client -> server: Relay reads the client's messages through a bounded
// buffer and decodes only Query, Parse, Bind, Execute, Close and
// FunctionCall, emitting one event for each before passing it on. It
// remembers prepared statements and portals (bounded by TrackLimit) so
// that Bind and Execute events name the SQL they run. Every other message
// (CopyData, Sync, Describe, ...) streams through without being held
// whole. What it forwards is buffered and written when the client has
// nothing more buffered, so a pipeline (Parse, Bind, Execute, Sync) goes
// out in one write. A message larger than MaxMessageSize, or a malformed
// audited message, is not forwarded: the client gets a FATAL
// ErrorResponse, the refusal is audited (a db.session.query event with
// success false) and the session ends.
//
// Server -> client: copied as bytes, without parsing.
//
// Relay emits no db.session.start or db.session.end: the caller does,
// with the [Stats] that Run returns.
type Relay struct {
	// Client is the connection to the database client (after startup).
	// Required.
	Client net.Conn
	// Server is the connection to the database, usually [Upstream].Conn.
	// Required.
	Server net.Conn

	// Emitter receives the session's events. It is called synchronously
	// from the relay, so it should be fast (asynchronous); an error is
	// logged and never stops the session. nil discards events.
	Emitter audit.Emitter
	// ClusterName is written into every event.
	ClusterName string
	// Session is copied into every event: session ID, user, roles, route
	// and client address.
	Session audit.DatabaseSessionMetadata
	// Clock stamps events; nil means time.Now.
	Clock func() time.Time

	// MaxMessageSize bounds a client message (type byte, length word and
	// body); 0 means DefaultMaxMessageSize. Audited messages up to this
	// size are held whole while they are decoded.
	MaxMessageSize int
	// QueryLimit bounds the SQL text recorded per event; 0 means
	// DefaultQueryLimit. Longer text is cut and ends with
	// "...(truncated, N bytes)".
	QueryLimit int
	// ParamLimit bounds each recorded parameter and function argument;
	// 0 means DefaultParamLimit.
	ParamLimit int
	// TrackLimit bounds the bytes of prepared statements and portals
	// remembered for naming the SQL in Bind and Execute events; 0 means
	// DefaultTrackLimit. Past it, arbitrary entries are forgotten.
	TrackLimit int

	// Buffers lends the relay its buffers, which it holds only while bytes
	// flow, so an idle session holds none. Share one pool among sessions;
	// nil, or a pool of buffers smaller than 32 KiB, gives the relay a
	// pool of its own.
	Buffers *iobuf.Pool

	// Logger receives refusals and audit failures; nil means no logging.
	Logger *zap.Logger
}

// Stats counts a session's traffic.
type Stats struct {
	// BytesFromClient counts the bytes read from the client (including
	// refused messages).
	BytesFromClient int64
	// BytesToClient counts the bytes written to the client.
	BytesToClient int64
}

// Ends of the client -> server direction that are not errors.
var (
	endTerminate = errors.New("client sent Terminate")
	endEOF       = errors.New("client closed the connection")
)

// serverWriteError marks a failure to write to the server, which usually
// means that the server ended the session.
type serverWriteError struct{ err error }

func (e *serverWriteError) Error() string { return "postgres: write to the database: " + e.err.Error() }
func (e *serverWriteError) Unwrap() error { return e.err }

// Run relays until the session ends: the client sends Terminate or
// disconnects, the server disconnects, a client message is refused, or
// ctx is done. It closes Client and Server before it returns. The error is
// nil for a session that ended normally (either side hung up), ctx.Err()
// when ctx ended it, a [*MessageRefusedError] for a refusal, and an I/O
// error otherwise. Stats are valid in every case. Run may be called once.
func (r *Relay) Run(ctx context.Context) (Stats, error) {
	if r.Client == nil {
		return Stats{}, errors.New("postgres: Relay.Client is nil; set it to the client's connection")
	}
	if r.Server == nil {
		return Stats{}, errors.New("postgres: Relay.Server is nil; set it to the database connection (Upstream.Conn)")
	}
	s := &session{
		r:       r,
		log:     r.Logger,
		emitter: r.Emitter,
		emitCtx: context.WithoutCancel(ctx),
		dec:     newDecoder(r),
		maxSize: int64(r.MaxMessageSize),
	}
	s.pool = r.Buffers
	if s.pool == nil || s.pool.Size() < bufferSize {
		s.pool = iobuf.NewPool(bufferSize)
	}
	s.br = iobuf.NewReader(r.Client, s.pool)
	s.bw = iobuf.NewWriter(r.Server, s.pool)
	if s.log == nil {
		s.log = zap.NewNop()
	} else if r.Session.SessionID != "" {
		s.log = s.log.WithLazy(zap.String("sid", r.Session.SessionID))
	}
	if s.emitter == nil {
		s.emitter = audit.DiscardEmitter{}
	}
	if s.maxSize <= 0 {
		s.maxSize = DefaultMaxMessageSize
	}
	return s.run(ctx)
}

// session is the state of one Run.
type session struct {
	r       *Relay
	log     *zap.Logger
	emitter audit.Emitter
	emitCtx context.Context
	dec     *decoder
	maxSize int64
	pool    *iobuf.Pool

	// Owned by the client -> server side until it ends.
	br           *iobuf.Reader
	bw           *iobuf.Writer
	scratch      []byte
	fromClient   int64
	emitFailures int

	closeOnce sync.Once
	closing   atomic.Bool
	first     atomic.Int32 // which side ended first: firstClient or firstServer
}

type copyResult struct {
	n   int64
	err error
}

// Who ended the session first (session.first).
const (
	firstNone int32 = iota
	firstClient
	firstServer
)

func (s *session) run(ctx context.Context) (Stats, error) {
	stopWatch := context.AfterFunc(ctx, s.closeBoth)
	defer stopWatch()

	// The server -> client copy runs on its own goroutine, the client ->
	// server side on this one. Whichever side ends first decides how the
	// session ends; when it is the server's, the copy wakes this side by
	// closing both connections.
	toClient := make(chan copyResult, 1)
	go func() {
		n, err := iobuf.Copy(s.r.Client, s.r.Server, s.pool)
		if s.first.CompareAndSwap(firstNone, firstServer) {
			s.closeBoth()
		}
		toClient <- copyResult{n, err}
	}()
	aErr := s.clientToServer()
	s.bw.Flush()
	serverEnd := !s.first.CompareAndSwap(firstNone, firstClient) // the server side ended first

	var (
		b     copyResult
		extra int64
	)
	var refusedErr *MessageRefusedError
	switch {
	case serverEnd:
		b = <-toClient
	case errors.As(aErr, &refusedErr):
		// Let the server finish what it was sent, then tell the
		// client why the session ends.
		s.endServer(true, true)
		b = <-toClient
		if !s.closing.Load() {
			if buf, err := encodeError(CodeProtocolViolation, refusedErr.Reason); err == nil {
				n, _ := s.r.Client.Write(buf)
				extra = int64(n)
			}
		}
	case aErr == endTerminate:
		s.endServer(false, true)
		b = <-toClient
	case aErr == endEOF:
		s.endServer(false, false)
		b = <-toClient
	default:
		s.closeBoth()
		b = <-toClient
	}
	cancelled := s.closing.Load() && ctx.Err() != nil
	s.closeBoth()

	stats := Stats{BytesFromClient: s.fromClient, BytesToClient: b.n + extra}
	var refused *MessageRefusedError
	var swe *serverWriteError
	switch {
	case cancelled:
		return stats, ctx.Err()
	case errors.As(aErr, &refused):
		return stats, aErr
	case serverEnd:
		if b.err != nil {
			return stats, fmt.Errorf("postgres: relay from the database to the client: %w", b.err)
		}
		return stats, nil
	case aErr == endTerminate || aErr == endEOF:
		return stats, nil
	case errors.As(aErr, &swe) && b.err == nil:
		return stats, nil // the server hung up while the client was talking
	}
	return stats, aErr
}

// endServer ends the server's side after the client's: with terminate,
// it first sends Terminate on the client's behalf. It then half-closes the
// server connection, when it can, so that the server -> client copy ends
// when the server hangs up. informed says that the server was sent
// Terminate; if not and the connection cannot be half-closed, both
// connections are closed, as that is the only way to tell the server.
func (s *session) endServer(terminate, informed bool) {
	if terminate {
		if _, err := s.r.Server.Write([]byte{'X', 0, 0, 0, 4}); err != nil {
			s.closeBoth()
			return
		}
	}
	if cw, ok := s.r.Server.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err == nil {
			return
		}
	}
	if !informed {
		s.closeBoth()
	}
}

func (s *session) closeBoth() {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.r.Client.Close()
		s.r.Server.Close()
	})
}

// clientToServer reads the client's messages and forwards them; see
// Relay. It returns endTerminate or endEOF when the client ends the
// session, a *MessageRefusedError for a refusal, or an I/O error.
func (s *session) clientToServer() error {
	for {
		head, err := s.peek(5)
		if err != nil {
			if errors.Is(err, io.EOF) && s.br.Buffered() == 0 {
				return endEOF
			}
			return s.readError(err)
		}
		typ := head[0]
		size := int64(int32(binary.BigEndian.Uint32(head[1:]))) + 1
		switch {
		case size < 5:
			if err := s.bw.Flush(); err != nil {
				return &serverWriteError{err}
			}
			return s.refuse(typ, size, "", fmt.Sprintf("invalid length in a client message of type %q; the client does not follow the PostgreSQL protocol", typ))
		case size > s.maxSize:
			return s.refuseLarge(typ, size)
		case audited(typ):
			if err := s.forwardAudited(typ, size); err != nil {
				return err
			}
		case typ == 'X':
			if err := s.stream(size); err != nil {
				return err
			}
			if err := s.bw.Flush(); err != nil {
				return &serverWriteError{err}
			}
			return endTerminate
		default:
			if err := s.stream(size); err != nil {
				return err
			}
		}
	}
}

// peek returns the next n (<= bufferSize) bytes from the client, flushing
// what is pending for the server first if it has to wait for them.
func (s *session) peek(n int) ([]byte, error) {
	if s.br.Buffered() < n {
		if err := s.bw.Flush(); err != nil {
			return nil, &serverWriteError{err}
		}
	}
	return s.br.Peek(n)
}

func (s *session) readError(err error) error {
	var swe *serverWriteError
	switch {
	case errors.As(err, &swe):
		return err
	case errors.Is(err, io.EOF):
		return fmt.Errorf("postgres: the client closed the connection in the middle of a message: %w", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("postgres: read from the client: %w", err)
}

// forwardAudited decodes and audits the message of type typ and size
// bytes at the head of the client stream, then forwards it.
func (s *session) forwardAudited(typ byte, size int64) error {
	var frame []byte
	peeked := size <= int64(s.br.Size())
	if peeked {
		f, err := s.peek(int(size))
		if err != nil {
			return s.readError(err)
		}
		frame = f
	} else {
		// Grow with what arrives, not with what the header claims, so a
		// client cannot make the relay allocate without sending the bytes.
		buf := s.scratch[:0]
		if cap(buf) == 0 {
			buf = make([]byte, 0, 2*s.br.Size())
		}
		for int64(len(buf)) < size {
			if _, err := s.peek(1); err != nil {
				s.fromClient += int64(len(buf))
				return s.readError(err)
			}
			k := int(min(int64(s.br.Buffered()), size-int64(len(buf))))
			p, _ := s.br.Peek(k)
			buf = append(buf, p...)
			s.br.Discard(k)
		}
		s.scratch = buf
		frame = buf
	}
	s.fromClient += size
	defer func() {
		if peeked {
			s.br.Discard(int(size))
		}
		if cap(s.scratch) > scratchKeep {
			s.scratch = nil
		}
	}()

	ev, err := s.dec.decode(typ, frame[5:])
	if err != nil {
		if ferr := s.bw.Flush(); ferr != nil {
			return &serverWriteError{ferr}
		}
		return s.refuse(typ, size, sqlPrefix(typ, frame[5:]), fmt.Sprintf("the client sent a %s; it does not follow the PostgreSQL protocol", err))
	}
	s.emit(ev)
	if _, err := s.bw.Write(frame); err != nil {
		return &serverWriteError{err}
	}
	return nil
}

// stream forwards the message of size bytes at the head of the client
// stream without holding it whole.
func (s *session) stream(size int64) error {
	for size > 0 {
		if s.br.Buffered() == 0 {
			if _, err := s.peek(1); err != nil {
				return s.readError(err)
			}
		}
		k := int(min(int64(s.br.Buffered()), size))
		buf, _ := s.br.Peek(k)
		if _, err := s.bw.Write(buf); err != nil {
			return &serverWriteError{err}
		}
		s.br.Discard(k)
		s.fromClient += int64(k)
		size -= int64(k)
	}
	return nil
}

// refuseLarge refuses a message larger than MaxMessageSize: it forwards
// what came before it, records the refusal, and reads the message's body
// (without keeping it) so that the client, which writes it whole before it
// reads, gets to see the error.
func (s *session) refuseLarge(typ byte, size int64) error {
	if err := s.bw.Flush(); err != nil {
		return &serverWriteError{err}
	}
	var prefix string
	if n := int(min(int64(s.br.Buffered()), 5+refusedPrefix, size)); n > 5 {
		buf, _ := s.br.Peek(n) // already buffered: does not block
		if prefix = sqlPrefix(typ, buf[5:]); prefix != "" {
			var b strings.Builder
			b.WriteString(prefix)
			writeMarker(&b, int(size-5))
			prefix = b.String()
		}
	}
	err := s.refuse(typ, size, prefix, fmt.Sprintf("a client message of %d bytes exceeds the limit of %d bytes; send large data with COPY or in smaller statements", size, s.maxSize))
	for left := size; left > 0; {
		n, derr := s.br.Discard(int(min(left, 1<<30)))
		s.fromClient += int64(n)
		left -= int64(n)
		if derr != nil {
			break // the client left; the session ends anyway
		}
	}
	return err
}

// refuse audits and logs a refused message and returns the error that
// ends the session. sql is what is known of the message's SQL text.
func (s *session) refuse(typ byte, size int64, sql, reason string) error {
	s.log.Warn("refused a client message; ending the session",
		zap.String("type", string(rune(typ))), zap.Int64("size", size), zap.String("reason", reason))
	s.emit(&audit.DatabaseSessionQuery{
		Metadata:                s.dec.meta(audit.TypeDatabaseSessionQuery),
		DatabaseSessionMetadata: s.dec.session,
		Query:                   sql,
		Status:                  audit.Status{Success: false, Error: reason},
	})
	return &MessageRefusedError{Type: typ, Size: size, Reason: reason}
}

// sqlPrefix returns the start of the SQL text in the (possibly partial)
// body of a Query or Parse message, for auditing a refusal.
func sqlPrefix(typ byte, body []byte) string {
	switch typ {
	case 'Q':
	case 'P':
		i := indexZero(body)
		if i < 0 {
			return ""
		}
		body = body[i+1:]
	default:
		return ""
	}
	if i := indexZero(body); i >= 0 {
		body = body[:i]
	}
	cut := len(body)
	if cut > refusedPrefix {
		cut = runeCut(body, refusedPrefix)
	}
	return string(body[:cut])
}

// emit hands e to the emitter; failures are logged (the first and every
// thousandth), never returned.
func (s *session) emit(e audit.Event) {
	if err := s.emitter.EmitAuditEvent(s.emitCtx, e); err != nil {
		s.emitFailures++
		if s.emitFailures == 1 || s.emitFailures%1000 == 0 {
			s.log.Error("cannot record an audit event",
				zap.String("event", e.GetMetadata().Type), zap.Int("failures", s.emitFailures), zap.Error(err))
		}
	}
}
