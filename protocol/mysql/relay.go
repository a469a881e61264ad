package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/protocol/iobuf"
)

// DefaultMaxPacketSize is the largest client command (its payload,
// continuation packets included) a [Relay] passes on when MaxPacketSize is
// 0: MySQL's own default max_allowed_packet.
const DefaultMaxPacketSize = 64 << 20

// bufferSize is the size of the relay's buffers (the client reader, the
// server writer and the server -> client copy buffer) when Relay.Buffers
// does not lend larger ones. A command whose packet fits in one is decoded
// in place. The relay holds them only while bytes flow.
const bufferSize = 64 << 10

// maxDrain bounds what the relay reads and drops of a refused command so
// that the client gets to read the refusal; past it, the connection is
// closed. 1 GiB is the protocol's own limit (max_allowed_packet).
const maxDrain = 1 << 30

// refusedPrefix bounds the SQL text an event records of a refused command.
const refusedPrefix = 4 << 10

// Relay carries one MySQL session between a client and a server once the
// login is done, auditing what the client sends.
//
// Client -> server: Relay reads the client's commands packet by packet
// (3-byte length, sequence ID), reassembling commands continued over
// several packets, and decodes only those audit records: COM_QUERY,
// COM_STMT_PREPARE, COM_STMT_EXECUTE (with its parameters),
// COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE, COM_STMT_RESET,
// COM_STMT_FETCH, COM_INIT_DB, COM_CREATE_DB, COM_DROP_DB and
// COM_PROCESS_KILL. Each event is emitted before the command reaches the
// server: a command that fits in the relay's buffer is held whole and
// decoded in place; a larger one is decoded as it streams through, and
// its last byte is held back until the event is out, so the server cannot
// run it before. Nothing else of a command is held, so the relay's memory
// does not grow with the commands it relays. What it forwards is buffered
// and written when the client has nothing more buffered.
//
// Refused, with an ERR packet to the client and an audited
// db.session.query event with success false, the session going on:
// COM_CHANGE_USER (the user is fixed by the certificate), replication and
// clone commands, COM_SHUTDOWN, COM_REFRESH and COM_DEBUG (their SQL
// statements are audited), and unknown commands. Refused the same way but
// ending the session ([*PacketRefusedError]): a command larger than
// MaxPacketSize (the client is sent ER_NET_PACKET_TOO_LARGE after the relay
// has read and dropped the rest of it), a packet out of sequence, and a
// malformed audited command.
//
// Server -> client: copied as bytes, with one exception. The first packet
// of the answer to COM_STMT_PREPARE (COM_STMT_PREPARE_OK) is read on its
// way through for the statement ID and parameter count, which decoding
// COM_STMT_EXECUTE needs. This relies on the client waiting for each answer
// before its next command, as MySQL clients do; a client that sends a
// COM_STMT_PREPARE while an earlier one is unanswered gets its statements
// audited without their SQL and parameters.
//
// Relay emits no db.session.start or db.session.end: the caller does,
// with the [Stats] that Run returns.
type Relay struct {
	// Client is the connection to the database client (after the login).
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

	// MaxPacketSize bounds a client command's payload, continuation
	// packets included; 0 means DefaultMaxPacketSize.
	MaxPacketSize int
	// QueryLimit bounds the SQL text and schema names recorded per event;
	// 0 means DefaultQueryLimit. Longer text is cut and ends with
	// "...(truncated, N bytes)".
	QueryLimit int
	// ParamLimit bounds each recorded parameter; 0 means
	// DefaultParamLimit.
	ParamLimit int
	// TrackLimit bounds the bytes of prepared statements remembered for
	// naming the SQL in later events; 0 means DefaultTrackLimit.
	TrackLimit int

	// AllowLoadDataLocal lets the file contents that a client sends after
	// LOAD DATA LOCAL INFILE through (unaudited, as data). It must match
	// the upstream session ([UpstreamParams].AllowLoadDataLocal); when
	// false, such packets are refused as out of sequence.
	AllowLoadDataLocal bool
	// ConnIDs translates a connection ID that the client names in
	// COM_PROCESS_KILL or in a "KILL [QUERY|CONNECTION] ID" statement (the
	// ID a proxy's greeting gave one of the user's sessions) into the
	// database's own ID of that session. IDs it does not know (ok false)
	// are passed on unchanged, as the database's own IDs, e.g. from SHOW
	// PROCESSLIST. nil translates nothing.
	ConnIDs func(clientID uint32) (serverID uint32, ok bool)

	// Buffers lends the relay its buffers, which it holds only while bytes
	// flow, so an idle session holds none. Share one pool among sessions;
	// nil, or a pool of buffers smaller than 64 KiB, gives the relay a
	// pool of its own.
	Buffers *iobuf.Pool

	// Logger receives refusals and audit failures; nil means no logging.
	Logger *zap.Logger
}

// Stats counts a session's traffic.
type Stats struct {
	// BytesFromClient counts the bytes read from the client (including
	// refused commands).
	BytesFromClient int64
	// BytesToClient counts the bytes written to the client.
	BytesToClient int64
}

// Ends of the client -> server direction that are not errors.
var (
	endQuit = errors.New("client sent COM_QUIT")
	endEOF  = errors.New("client closed the connection")
)

// serverWriteError marks a failure to write to the server, which usually
// means that the server ended the session.
type serverWriteError struct{ err error }

func (e *serverWriteError) Error() string { return "mysql: write to the database: " + e.err.Error() }
func (e *serverWriteError) Unwrap() error { return e.err }

// refusal is a refused command that ends the session.
type refusal struct {
	PacketRefusedError
	seq     byte // of the ERR packet to the client
	partial bool // part of the command reached the server
	drained bool // the rest of the command was read, so the client reads the ERR
}

// Run relays until the session ends: the client sends COM_QUIT or
// disconnects, the server disconnects, a command is refused in a way that
// ends the session, or ctx is done. It closes Client and Server before it
// returns. The error is nil for a session that ended normally (either side
// hung up), ctx.Err() when ctx ended it, a [*PacketRefusedError] for a
// refusal, and an I/O error otherwise. Stats are valid in every case. Run
// may be called once.
func (r *Relay) Run(ctx context.Context) (Stats, error) {
	if r.Client == nil {
		return Stats{}, errors.New("mysql: Relay.Client is nil; set it to the client's connection")
	}
	if r.Server == nil {
		return Stats{}, errors.New("mysql: Relay.Server is nil; set it to the database connection (Upstream.Conn)")
	}
	return r.newSession(ctx).run(ctx)
}

// newSession sets up the state of one Run.
func (r *Relay) newSession(ctx context.Context) *session {
	s := &session{
		r:       r,
		log:     r.Logger,
		emitter: r.Emitter,
		emitCtx: context.WithoutCancel(ctx),
		maxSize: int64(r.MaxPacketSize),
	}
	s.pool = r.Buffers
	if s.pool == nil || s.pool.Size() < bufferSize {
		s.pool = iobuf.NewPool(bufferSize)
	}
	s.br = iobuf.NewReader(r.Client, s.pool)
	s.bw = iobuf.NewWriter(r.Server, s.pool)
	s.inPlace = s.pool.Size()
	s.dec = newDecoder(r, &s.watch)
	if s.log == nil {
		s.log = zap.NewNop()
	} else if r.Session.SessionID != "" {
		s.log = s.log.WithLazy(zap.String("sid", r.Session.SessionID))
	}
	if s.emitter == nil {
		s.emitter = audit.DiscardEmitter{}
	}
	if s.maxSize <= 0 {
		s.maxSize = DefaultMaxPacketSize
	}
	return s
}

// session is the state of one Run.
type session struct {
	r       *Relay
	log     *zap.Logger
	emitter audit.Emitter
	emitCtx context.Context
	dec     *decoder
	maxSize int64
	inPlace int // commands whose first packet (header included) fits are decoded in place
	watch   prepWatch
	pool    *iobuf.Pool

	// Owned by the client -> server side until it ends.
	br           *iobuf.Reader
	bw           *iobuf.Writer
	src          source
	cr           cmdReader
	fromClient   int64
	emitFailures int
	infile       bool // the last command was COM_QUERY and LOAD DATA LOCAL is allowed

	clientMu sync.Mutex   // serializes writes to the client
	injected atomic.Int64 // bytes the relay itself wrote to the client

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
		n, err := s.serverToClient()
		if s.first.CompareAndSwap(firstNone, firstServer) {
			s.closeBoth()
		}
		toClient <- copyResult{n, err}
	}()
	aErr := s.clientToServer()
	serverEnd := !s.first.CompareAndSwap(firstNone, firstClient) // the server side ended first

	var b copyResult
	var ref *refusal
	switch {
	case serverEnd:
		b = <-toClient
	case errors.As(aErr, &ref):
		// The server must not run a command it got part of: close
		// the connection in that case, let it go with COM_QUIT
		// otherwise. Then tell the client why the session ends.
		if ref.partial {
			s.r.Server.Close()
		} else {
			s.endServer(true)
		}
		b = <-toClient
		if ref.drained && !s.closing.Load() {
			s.writeClient(appendError(nil, ref.seq, ref.Code, stateFor(ref.Code), ref.Reason))
		}
		aErr = &ref.PacketRefusedError
	case aErr == endQuit:
		s.endServer(false)
		b = <-toClient
	case aErr == endEOF:
		s.endServer(true)
		b = <-toClient
	default:
		s.closeBoth()
		b = <-toClient
	}
	cancelled := s.closing.Load() && ctx.Err() != nil
	s.closeBoth()

	stats := Stats{BytesFromClient: s.fromClient, BytesToClient: b.n + s.injected.Load()}
	var swe *serverWriteError
	switch {
	case cancelled:
		return stats, ctx.Err()
	case IsPacketRefused(aErr):
		return stats, aErr
	case serverEnd:
		if b.err != nil {
			return stats, fmt.Errorf("mysql: relay from the database to the client: %w", b.err)
		}
		return stats, nil
	case aErr == endQuit || aErr == endEOF:
		return stats, nil
	case errors.As(aErr, &swe) && b.err == nil:
		return stats, nil // the server hung up while the client was talking
	}
	return stats, aErr
}

func stateFor(code uint16) string {
	switch code {
	case CodePacketTooLarge:
		return StateConnection
	case CodeNotSupported:
		return StateSyntax
	}
	return StateGeneral
}

// serverToClient copies the server's bytes to the client, looking at the
// start of the answer to COM_STMT_PREPARE on its way (prepWatch). A server
// that hangs up, with or without a TLS close_notify, ends it without error.
func (s *session) serverToClient() (int64, error) {
	n, err := iobuf.Copy(clientWriter{s}, s.r.Server, s.pool)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	return n, err
}

// clientWriter writes the server's bytes to the client, between the
// relay's own writes, showing them to the prepared statement watch.
type clientWriter struct{ s *session }

func (w clientWriter) Write(p []byte) (int, error) {
	s := w.s
	if s.watch.armed.Load() {
		s.watch.inspect(p)
	}
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	return s.r.Client.Write(p)
}

// writeClient writes packets of the relay's own to the client, between
// the server's writes.
func (s *session) writeClient(b []byte) error {
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	n, err := s.r.Client.Write(b)
	s.injected.Add(int64(n))
	return err
}

// endServer ends the server's side after the client's: with quit, it
// first sends COM_QUIT on the client's behalf (the server then closes the
// connection). It then half-closes the server connection when it can, so
// that the server -> client copy ends when the server hangs up.
func (s *session) endServer(quit bool) {
	if quit {
		if _, err := s.r.Server.Write([]byte{1, 0, 0, 0, gomysql.COM_QUIT}); err != nil {
			s.closeBoth()
			return
		}
	}
	if cw, ok := s.r.Server.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

func (s *session) closeBoth() {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.r.Client.Close()
		s.r.Server.Close()
	})
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
		return fmt.Errorf("mysql: the client closed the connection in the middle of a packet: %w", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("mysql: read from the client: %w", err)
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

// auditRefusal records a refused command as a failed db.session.query.
func (s *session) auditRefusal(cmd byte, size int64, query, reason string) {
	s.log.Warn("refused a client command",
		zap.String("command", commandName(cmd)), zap.Int64("size", size), zap.String("reason", reason))
	s.emit(&audit.DatabaseSessionQuery{
		Metadata:                s.dec.meta(audit.TypeDatabaseSessionQuery),
		DatabaseSessionMetadata: s.dec.session,
		Query:                   query,
		Status:                  audit.Status{Success: false, Error: reason},
	})
}
