package mysql

import (
	"errors"
	"fmt"
	"io"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// MariaDB's own commands (MariaDB clients send them only to a server that
// presents itself as MariaDB, which the proxy does not).
const (
	comStmtBulkExecute = 0xfa
	comMulti           = 0xfe
)

var commandNames = map[byte]string{
	gomysql.COM_SLEEP: "COM_SLEEP", gomysql.COM_QUIT: "COM_QUIT", gomysql.COM_INIT_DB: "COM_INIT_DB",
	gomysql.COM_QUERY: "COM_QUERY", gomysql.COM_FIELD_LIST: "COM_FIELD_LIST", gomysql.COM_CREATE_DB: "COM_CREATE_DB",
	gomysql.COM_DROP_DB: "COM_DROP_DB", gomysql.COM_REFRESH: "COM_REFRESH", gomysql.COM_SHUTDOWN: "COM_SHUTDOWN",
	gomysql.COM_STATISTICS: "COM_STATISTICS", gomysql.COM_PROCESS_INFO: "COM_PROCESS_INFO", gomysql.COM_CONNECT: "COM_CONNECT",
	gomysql.COM_PROCESS_KILL: "COM_PROCESS_KILL", gomysql.COM_DEBUG: "COM_DEBUG", gomysql.COM_PING: "COM_PING",
	gomysql.COM_TIME: "COM_TIME", gomysql.COM_DELAYED_INSERT: "COM_DELAYED_INSERT", gomysql.COM_CHANGE_USER: "COM_CHANGE_USER",
	gomysql.COM_BINLOG_DUMP: "COM_BINLOG_DUMP", gomysql.COM_TABLE_DUMP: "COM_TABLE_DUMP", gomysql.COM_CONNECT_OUT: "COM_CONNECT_OUT",
	gomysql.COM_REGISTER_SLAVE: "COM_REGISTER_SLAVE", gomysql.COM_STMT_PREPARE: "COM_STMT_PREPARE",
	gomysql.COM_STMT_EXECUTE: "COM_STMT_EXECUTE", gomysql.COM_STMT_SEND_LONG_DATA: "COM_STMT_SEND_LONG_DATA",
	gomysql.COM_STMT_CLOSE: "COM_STMT_CLOSE", gomysql.COM_STMT_RESET: "COM_STMT_RESET", gomysql.COM_SET_OPTION: "COM_SET_OPTION",
	gomysql.COM_STMT_FETCH: "COM_STMT_FETCH", gomysql.COM_DAEMON: "COM_DAEMON", gomysql.COM_BINLOG_DUMP_GTID: "COM_BINLOG_DUMP_GTID",
	gomysql.COM_RESET_CONNECTION: "COM_RESET_CONNECTION", gomysql.COM_CLONE: "COM_CLONE",
	gomysql.COM_SUBSCRIBE_GROUP_REPLICATION_STREAM: "COM_SUBSCRIBE_GROUP_REPLICATION_STREAM",
	comStmtBulkExecute: "COM_STMT_BULK_EXECUTE", comMulti: "COM_MULTI",
}

// commandName names a command byte for logs and messages.
func commandName(cmd byte) string {
	if n, ok := commandNames[cmd]; ok {
		return n
	}
	return fmt.Sprintf("command 0x%02x", cmd)
}

// ChangeUserMessage is what a client that sends COM_CHANGE_USER is told.
const ChangeUserMessage = "changing the user inside a session is not allowed; connect again with pcl db connect --db-user USER"

// refusedReason returns why a command is not passed on, or "" for the
// commands the relay passes on.
func refusedReason(cmd byte) string {
	switch cmd {
	case gomysql.COM_SLEEP, gomysql.COM_QUIT, gomysql.COM_INIT_DB, gomysql.COM_QUERY, gomysql.COM_FIELD_LIST,
		gomysql.COM_CREATE_DB, gomysql.COM_DROP_DB, gomysql.COM_STATISTICS, gomysql.COM_PROCESS_INFO,
		gomysql.COM_CONNECT, gomysql.COM_PROCESS_KILL, gomysql.COM_PING, gomysql.COM_TIME,
		gomysql.COM_DELAYED_INSERT, gomysql.COM_STMT_PREPARE, gomysql.COM_STMT_EXECUTE,
		gomysql.COM_STMT_SEND_LONG_DATA, gomysql.COM_STMT_CLOSE, gomysql.COM_STMT_RESET,
		gomysql.COM_SET_OPTION, gomysql.COM_STMT_FETCH, gomysql.COM_RESET_CONNECTION:
		return ""
	case gomysql.COM_CHANGE_USER:
		return ChangeUserMessage
	case gomysql.COM_SHUTDOWN:
		return "COM_SHUTDOWN is not passed on by Portcullis; run the SQL statement SHUTDOWN instead"
	case gomysql.COM_REFRESH:
		return "COM_REFRESH is not passed on by Portcullis; run the SQL statement FLUSH instead"
	case gomysql.COM_DEBUG:
		return "COM_DEBUG is not passed on by Portcullis"
	case gomysql.COM_BINLOG_DUMP, gomysql.COM_BINLOG_DUMP_GTID, gomysql.COM_TABLE_DUMP, gomysql.COM_CONNECT_OUT,
		gomysql.COM_REGISTER_SLAVE, gomysql.COM_DAEMON, gomysql.COM_CLONE, gomysql.COM_SUBSCRIBE_GROUP_REPLICATION_STREAM:
		return commandName(cmd) + " (replication or cloning) is not supported through Portcullis; connect for queries only"
	}
	return commandName(cmd) + " is not supported through Portcullis"
}

// clientToServer reads the client's commands and forwards them; see
// Relay. It returns endQuit or endEOF when the client ends the session, a
// *refusal for a refusal that ends it, or an I/O error.
func (s *session) clientToServer() error {
	for {
		head, err := s.peek(4)
		if err != nil {
			if errors.Is(err, io.EOF) && s.br.Buffered() == 0 {
				return endEOF
			}
			return s.readError(err)
		}
		n := int(head[0]) | int(head[1])<<8 | int(head[2])<<16
		if seq := head[3]; seq != 0 {
			if s.infile {
				// The file a LOAD DATA LOCAL INFILE asked for: packets
				// that go on the statement's exchange, up to an empty one.
				if err := s.streamInfile(); err != nil {
					return err
				}
				s.infile = false
				continue
			}
			return s.refuseAt(0, seq, 0, fmt.Sprintf("the client sent a packet with sequence ID %d where a command (sequence ID 0) was expected; it does not follow the MySQL protocol", seq), CodeMalformedPacket)
		}
		s.infile = false
		if n == 0 {
			// An empty command: the server answers it with an error.
			if err := s.forwardRaw(4); err != nil {
				return err
			}
			continue
		}
		b, err := s.peek(5)
		if err != nil {
			return s.readError(err)
		}
		cmd := b[4]
		switch {
		case cmd == gomysql.COM_QUIT:
			if err := s.stream(cmd); err != nil {
				return err
			}
			if err := s.bw.Flush(); err != nil {
				return &serverWriteError{err}
			}
			return endQuit
		case refusedReason(cmd) != "":
			if err := s.refuseCommand(cmd, refusedReason(cmd)); err != nil {
				return err
			}
		case audited(cmd):
			if err := s.forwardAudited(cmd, n); err != nil {
				return err
			}
			s.infile = cmd == gomysql.COM_QUERY && s.r.AllowLoadDataLocal
		default:
			if n < maxPayload && int64(n) <= s.maxSize && n+4 <= s.inPlace {
				err = s.forwardRaw(n + 4)
			} else {
				err = s.stream(cmd)
			}
			if err != nil {
				return err
			}
			if cmd == gomysql.COM_RESET_CONNECTION {
				s.dec.forgetStatements()
			}
		}
	}
}

// forwardRaw forwards the next n (<= bufferSize) bytes of the client
// stream.
func (s *session) forwardRaw(n int) error {
	p, err := s.peek(n)
	if err != nil {
		return s.readError(err)
	}
	if _, err := s.bw.Write(p); err != nil {
		return &serverWriteError{err}
	}
	s.br.Discard(n)
	s.fromClient += int64(n)
	return nil
}

// stream forwards the command at the head of the client stream without
// decoding it.
func (s *session) stream(cmd byte) error {
	cr := s.startCommand(cmd, true)
	if err := cr.openPacket(true); err != nil {
		return s.commandError(cr, err)
	}
	for {
		p, err := cr.chunk()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s.commandError(cr, err)
		}
		if err := cr.consume(len(p)); err != nil {
			return err
		}
	}
	return cr.finish()
}

// streamInfile forwards LOAD DATA LOCAL INFILE packets up to and including
// the empty one that ends the file.
func (s *session) streamInfile() error {
	for {
		head, err := s.peek(4)
		if err != nil {
			return s.readError(err)
		}
		n := int(head[0]) | int(head[1])<<8 | int(head[2])<<16
		if err := s.forwardRaw(4); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		for n > 0 {
			if s.br.Buffered() == 0 {
				if _, err := s.peek(1); err != nil {
					return s.readError(err)
				}
			}
			k := min(s.br.Buffered(), n)
			if err := s.forwardRaw(k); err != nil {
				return err
			}
			n -= k
		}
	}
}

// forwardAudited decodes and audits the command at the head of the client
// stream, whose first packet has an n-byte payload, and forwards it.
func (s *session) forwardAudited(cmd byte, n int) error {
	if n < maxPayload && int64(n) <= s.maxSize && n+4 <= s.inPlace {
		frame, err := s.peek(n + 4)
		if err != nil {
			return s.readError(err)
		}
		s.src.reset(frame[5:], nil)
		ev, rewritten, err := s.dec.decode(cmd, &s.src, true)
		if err != nil {
			seq := frame[3]
			s.br.Discard(n + 4)
			s.fromClient += int64(n + 4)
			return s.refuseAt(cmd, seq, int64(n), malformedReason(cmd, err), CodeMalformedPacket)
		}
		s.emit(ev)
		out := frame
		if rewritten != nil {
			out = appendPacket(nil, frame[3], rewritten)
		}
		if _, err := s.bw.Write(out); err != nil {
			return &serverWriteError{err}
		}
		s.br.Discard(n + 4)
		s.fromClient += int64(n + 4)
		return nil
	}

	// Larger than the buffer: decode while streaming.
	cr := s.startCommand(cmd, true)
	if err := cr.openPacket(true); err != nil {
		return s.commandError(cr, err)
	}
	if _, err := cr.chunk(); err != nil { // the command byte
		return s.commandError(cr, err)
	}
	if err := cr.consume(1); err != nil {
		return err
	}
	s.src.reset(nil, cr)
	ev, _, err := s.dec.decode(cmd, &s.src, false)
	if err != nil {
		return s.commandError(cr, err)
	}
	s.emit(ev)
	return cr.finish()
}

// malformedReason is the sentence for a malformed audited command.
func malformedReason(cmd byte, err error) string {
	return fmt.Sprintf("the client sent a malformed %s (%v); it does not follow the MySQL protocol", commandName(cmd), err)
}

// refuseCommand refuses a command the relay does not pass on: it reads and
// drops it, audits the refusal and answers an ERR packet. The session goes
// on.
func (s *session) refuseCommand(cmd byte, reason string) error {
	cr := s.startCommand(cmd, false)
	if err := cr.openPacket(true); err != nil {
		return s.commandError(cr, err)
	}
	if err := cr.drain(); err != nil {
		return err
	}
	if err := s.bw.Flush(); err != nil {
		return &serverWriteError{err}
	}
	s.auditRefusal(cmd, cr.total, "", reason)
	if err := s.writeClient(appendError(nil, cr.seq+1, CodeNotSupported, StateSyntax, reason)); err != nil {
		return fmt.Errorf("mysql: write to the client: %w", err)
	}
	return nil
}

// commandError turns an error met while reading a command into what ends
// the session: a refusal for a command that is too large, malformed or out
// of sequence (audited, with the rest of the command read so that the
// client reads the ERR packet), the error itself otherwise.
func (s *session) commandError(cr *cmdReader, err error) error {
	if !errors.Is(err, errTooLarge) && !errors.Is(err, errOutOfOrder) && !errors.Is(err, errShort) && !errors.Is(err, errMalformed) {
		return err
	}
	ref := &refusal{partial: cr.partial}
	cr.forward = false
	if errors.Is(err, errOutOfOrder) {
		// Where the command ends is unknown: answer the packet that broke
		// the sequence.
		ref.drained = true
	} else {
		derr := cr.drain()
		ref.drained = derr == nil || errors.Is(derr, errOutOfOrder)
	}
	ref.seq = cr.seq + 1
	var reason string
	var code uint16 = CodeMalformedPacket
	switch {
	case errors.Is(err, errTooLarge):
		code = CodePacketTooLarge
		size := fmt.Sprintf("of %d bytes", cr.total)
		if !cr.final {
			size = fmt.Sprintf("of more than %d bytes", cr.total)
		}
		reason = fmt.Sprintf("a command %s exceeds the limit of %d bytes; send large data in smaller statements", size, s.maxSize)
	case errors.Is(err, errOutOfOrder):
		reason = fmt.Sprintf("the client sent packet %d of a command out of sequence; it does not follow the MySQL protocol", cr.seq)
	default:
		reason = malformedReason(cr.cmd, err)
	}
	ref.PacketRefusedError = PacketRefusedError{Command: cr.cmd, Size: cr.total, Code: code, Reason: reason}
	if !cr.partial {
		if ferr := s.bw.Flush(); ferr != nil {
			return &serverWriteError{ferr}
		}
	}
	query := ""
	if cr.prefix != "" {
		query = cr.prefix + marker(cr.total-1)
	}
	s.auditRefusal(cr.cmd, cr.total, query, reason)
	return ref
}

// refuseAt refuses, ending the session, at a point where nothing of the
// current command reached the server and nothing more is to be read of it.
func (s *session) refuseAt(cmd, seq byte, size int64, reason string, code uint16) error {
	if err := s.bw.Flush(); err != nil {
		return &serverWriteError{err}
	}
	s.auditRefusal(cmd, size, "", reason)
	return &refusal{
		PacketRefusedError: PacketRefusedError{Command: cmd, Size: size, Code: code, Reason: reason},
		seq:                seq + 1,
		drained:            true,
	}
}
