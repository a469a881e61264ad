package mysql

import (
	"fmt"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/portcullis-db/portcullis/audit"
)

// DefaultTrackLimit bounds, per session, the bytes of prepared statements
// (SQL text and parameter types) remembered so that later events can name
// the query they run.
const DefaultTrackLimit = 8 << 20

// maxTracked bounds the number of remembered statements per session.
const maxTracked = 10000

// trackOverhead is what one remembered statement costs besides its text
// and types.
const trackOverhead = 96

// maxLongDataParams bounds the parameters per statement whose long data
// sizes are remembered.
const maxLongDataParams = 1024

// lastStatement is the statement ID that names the statement prepared
// last (MariaDB's direct execution).
const lastStatement = 0xffffffff

// audited reports whether commands cmd are decoded for audit.
func audited(cmd byte) bool {
	switch cmd {
	case gomysql.COM_QUERY, gomysql.COM_STMT_PREPARE, gomysql.COM_STMT_EXECUTE, gomysql.COM_STMT_SEND_LONG_DATA,
		gomysql.COM_STMT_CLOSE, gomysql.COM_STMT_RESET, gomysql.COM_STMT_FETCH, gomysql.COM_INIT_DB,
		gomysql.COM_CREATE_DB, gomysql.COM_DROP_DB, gomysql.COM_PROCESS_KILL:
		return true
	}
	return false
}

// decoder turns the client commands that audit records into events,
// remembering prepared statements. It is used by the client -> server
// goroutine; what it learns from the server's answers comes through the
// prepWatch.
type decoder struct {
	cluster    string
	session    audit.DatabaseSessionMetadata
	clock      func() time.Time
	queryLimit int
	paramLimit int
	connIDs    func(uint32) (uint32, bool)

	watch *prepWatch
	stmts stmtTracker
	last  uint32 // the statement prepared last
	nulls []byte // copy of an EXECUTE's NULL bitmap
}

func newDecoder(r *Relay, w *prepWatch) *decoder {
	d := &decoder{
		cluster:    r.ClusterName,
		session:    r.Session,
		clock:      r.Clock,
		queryLimit: r.QueryLimit,
		paramLimit: r.ParamLimit,
		connIDs:    r.ConnIDs,
		watch:      w,
		last:       lastStatement,
	}
	if d.clock == nil {
		d.clock = time.Now
	}
	if d.queryLimit <= 0 {
		d.queryLimit = DefaultQueryLimit
	}
	if d.paramLimit <= 0 {
		d.paramLimit = DefaultParamLimit
	}
	limit := r.TrackLimit
	if limit <= 0 {
		limit = DefaultTrackLimit
	}
	d.stmts = stmtTracker{maxBytes: limit, maxEntries: maxTracked}
	return d
}

func (d *decoder) meta(typ string) audit.Metadata {
	return audit.Metadata{Type: typ, Time: d.clock(), ClusterName: d.cluster}
}

// text renders the SQL text or name that is a command's payload (prefix
// kept of size bytes).
func (d *decoder) text(prefix []byte, size int64) string {
	if int64(len(prefix)) == size && len(prefix) <= d.queryLimit {
		return string(prefix)
	}
	cut := runeCut(prefix, min(len(prefix), d.queryLimit))
	var b strings.Builder
	b.Grow(cut + markerMax)
	b.Write(prefix[:cut])
	writeMarker(&b, size)
	return b.String()
}

// marker is the end of a cut value of size bytes.
func marker(size int64) string {
	var b strings.Builder
	writeMarker(&b, size)
	return b.String()
}

// decode consumes the payload of a command of an audited type from src
// and returns its event, which references nothing in src. With inPlace
// (the command is held whole), it may also return the payload to forward
// instead (command byte included): a KILL with a translated connection ID.
// A malformed payload yields an error wrapping errShort or errMalformed.
func (d *decoder) decode(cmd byte, src *source, inPlace bool) (ev audit.Event, rewritten []byte, err error) {
	switch cmd {
	case gomysql.COM_QUERY:
		q, size, err := src.rest(d.queryLimit)
		if err != nil {
			return nil, nil, err
		}
		if inPlace {
			rewritten = d.translateKill(q)
		}
		return &audit.DatabaseSessionQuery{
			Metadata:                d.meta(audit.TypeDatabaseSessionQuery),
			DatabaseSessionMetadata: d.session,
			Query:                   d.text(q, size),
			Status:                  audit.Status{Success: true},
		}, rewritten, nil

	case gomysql.COM_STMT_PREPARE:
		q, size, err := src.rest(d.queryLimit)
		if err != nil {
			return nil, nil, err
		}
		query := d.text(q, size)
		d.watch.arm(query)
		return &audit.MySQLStatementPrepare{
			Metadata:                d.meta(audit.TypeMySQLStatementPrepare),
			DatabaseSessionMetadata: d.session,
			Query:                   query,
		}, nil, nil

	case gomysql.COM_STMT_EXECUTE:
		return d.execute(src)

	case gomysql.COM_STMT_SEND_LONG_DATA:
		id, err := d.statementID(src)
		if err != nil {
			return nil, nil, err
		}
		param, err := src.uint16()
		if err != nil {
			return nil, nil, err
		}
		_, size, err := src.rest(0)
		if err != nil {
			return nil, nil, err
		}
		st := d.stmts.get(id)
		if st != nil {
			st.addLongData(param, size)
		}
		return &audit.MySQLStatementSendLongData{
			Metadata:                d.meta(audit.TypeMySQLStatementSendLongData),
			DatabaseSessionMetadata: d.session,
			StatementID:             id,
			ParameterID:             param,
			DataSize:                size,
			Query:                   st.sql(),
		}, nil, nil

	case gomysql.COM_STMT_CLOSE, gomysql.COM_STMT_RESET:
		id, err := d.statementID(src)
		if err != nil {
			return nil, nil, err
		}
		if err := src.skipRest(); err != nil {
			return nil, nil, err
		}
		st := d.stmts.get(id)
		if cmd == gomysql.COM_STMT_CLOSE {
			d.stmts.remove(id)
			if id == d.last {
				d.last = lastStatement
			}
			return &audit.MySQLStatementClose{
				Metadata:                d.meta(audit.TypeMySQLStatementClose),
				DatabaseSessionMetadata: d.session,
				StatementID:             id,
				Query:                   st.sql(),
			}, nil, nil
		}
		if st != nil {
			st.longData = nil
		}
		return &audit.MySQLStatementReset{
			Metadata:                d.meta(audit.TypeMySQLStatementReset),
			DatabaseSessionMetadata: d.session,
			StatementID:             id,
			Query:                   st.sql(),
		}, nil, nil

	case gomysql.COM_STMT_FETCH:
		id, err := d.statementID(src)
		if err != nil {
			return nil, nil, err
		}
		rows, err := src.uint32()
		if err != nil {
			return nil, nil, err
		}
		if err := src.skipRest(); err != nil {
			return nil, nil, err
		}
		return &audit.MySQLStatementFetch{
			Metadata:                d.meta(audit.TypeMySQLStatementFetch),
			DatabaseSessionMetadata: d.session,
			StatementID:             id,
			RowsCount:               rows,
			Query:                   d.stmts.get(id).sql(),
		}, nil, nil

	case gomysql.COM_INIT_DB, gomysql.COM_CREATE_DB, gomysql.COM_DROP_DB:
		name, size, err := src.rest(d.queryLimit)
		if err != nil {
			return nil, nil, err
		}
		schema := d.text(name, size)
		md := d.meta(audit.TypeMySQLInitDB)
		switch cmd {
		case gomysql.COM_CREATE_DB:
			md.Type = audit.TypeMySQLCreateDB
			return &audit.MySQLCreateDB{Metadata: md, DatabaseSessionMetadata: d.session, SchemaName: schema}, nil, nil
		case gomysql.COM_DROP_DB:
			md.Type = audit.TypeMySQLDropDB
			return &audit.MySQLDropDB{Metadata: md, DatabaseSessionMetadata: d.session, SchemaName: schema}, nil, nil
		}
		return &audit.MySQLInitDB{Metadata: md, DatabaseSessionMetadata: d.session, SchemaName: schema}, nil, nil

	case gomysql.COM_PROCESS_KILL:
		id, err := src.uint32()
		if err != nil {
			return nil, nil, err
		}
		if err := src.skipRest(); err != nil {
			return nil, nil, err
		}
		e := &audit.MySQLProcessKill{
			Metadata:                d.meta(audit.TypeMySQLProcessKill),
			DatabaseSessionMetadata: d.session,
			ProcessID:               id,
		}
		if d.connIDs != nil && inPlace {
			if real, ok := d.connIDs(id); ok {
				e.ServerProcessID = real
				rewritten = []byte{cmd, byte(real), byte(real >> 8), byte(real >> 16), byte(real >> 24)}
			}
		}
		return e, rewritten, nil
	}
	return nil, nil, fmt.Errorf("%w: %s is not audited", errMalformed, commandName(cmd))
}

// statementID reads a statement ID, resolving the "last prepared" ID and
// taking in what the prepWatch learned.
func (d *decoder) statementID(src *source) (uint32, error) {
	id, err := src.uint32()
	if err != nil {
		return 0, err
	}
	d.learn()
	if id == lastStatement {
		id = d.last
	}
	return id, nil
}

// learn takes in the statements the prepWatch saw prepared.
func (d *decoder) learn() {
	for _, p := range d.watch.take() {
		d.stmts.put(p.id, &stmtInfo{query: p.query, numParams: p.numParams})
		d.last = p.id
	}
}

// forgetStatements forgets every statement (COM_RESET_CONNECTION
// deallocates them).
func (d *decoder) forgetStatements() {
	d.learn()
	d.stmts.clear()
	d.last = lastStatement
}

// execute decodes COM_STMT_EXECUTE: statement ID, flags, iteration count,
// then, for a statement with parameters, the NULL bitmap, the
// new-params-bound flag, the types (when bound) and the values.
func (d *decoder) execute(src *source) (audit.Event, []byte, error) {
	id, err := d.statementID(src)
	if err != nil {
		return nil, nil, err
	}
	if _, err := src.read(5); err != nil { // flags, iteration count
		return nil, nil, err
	}
	st := d.stmts.get(id)
	e := &audit.MySQLStatementExecute{
		Metadata:                d.meta(audit.TypeMySQLStatementExecute),
		DatabaseSessionMetadata: d.session,
		StatementID:             id,
		Query:                   st.sql(),
	}
	if st == nil {
		return e, nil, src.skipRest()
	}
	defer func() { st.longData = nil }()
	n := st.numParams
	if n == 0 {
		e.Parameters = []*string{}
		return e, nil, src.skipRest()
	}
	bitmap, err := src.read((n + 7) / 8)
	if err != nil {
		return nil, nil, err
	}
	d.nulls = append(d.nulls[:0], bitmap...)
	bound, err := src.byte()
	if err != nil {
		return nil, nil, err
	}
	switch bound {
	case 0:
	case 1:
		types, err := src.read(2 * n)
		if err != nil {
			return nil, nil, err
		}
		d.stmts.setTypes(st, types)
	default:
		return nil, nil, fmt.Errorf("%w: new-params-bound flag %d", errMalformed, bound)
	}
	strs := make([]string, n)
	params := make([]*string, n)
	for i := range n {
		if d.nulls[i/8]&(byte(1)<<(i%8)) != 0 {
			continue
		}
		if size, ok := st.longData[uint16(i)]; ok {
			strs[i] = longDataMarker(size)
			params[i] = &strs[i]
			continue
		}
		if len(st.types) != 2*n {
			// Values without types (not bound in this or an earlier
			// execution the relay saw): they cannot be decoded.
			return e, nil, src.skipRest()
		}
		typ, unsigned := st.types[2*i], st.types[2*i+1]&paramUnsigned != 0
		switch size := fixedSize(typ); {
		case typ == gomysql.MYSQL_TYPE_NULL:
			continue
		case size > 0:
			v, err := src.read(size)
			if err != nil {
				return nil, nil, err
			}
			strs[i] = renderFixed(typ, unsigned, v)
		case isTemporal(typ):
			l, err := src.byte()
			if err != nil {
				return nil, nil, err
			}
			v, err := src.read(int(l))
			if err != nil {
				return nil, nil, err
			}
			strs[i] = renderTemporal(typ, v)
		default:
			l, err := src.lenenc()
			if err != nil {
				return nil, nil, err
			}
			v, err := src.value(l, d.paramLimit)
			if err != nil {
				return nil, nil, err
			}
			strs[i] = renderText(v, int64(l), d.paramLimit)
		}
		params[i] = &strs[i]
	}
	e.Parameters = params
	return e, nil, src.skipRest()
}

// stmtInfo is what is remembered of a prepared statement.
type stmtInfo struct {
	query     string
	numParams int
	types     []byte           // the parameter types last bound
	longData  map[uint16]int64 // parameter -> bytes sent since the last execution
}

// sql returns the statement's SQL, "" for an unknown statement.
func (st *stmtInfo) sql() string {
	if st == nil {
		return ""
	}
	return st.query
}

func (st *stmtInfo) addLongData(param uint16, size int64) {
	if st.longData == nil {
		st.longData = map[uint16]int64{}
	}
	if _, ok := st.longData[param]; ok || len(st.longData) < maxLongDataParams {
		st.longData[param] += size
	}
}

// stmtTracker is a map of statements bounded in entries and bytes. When
// full, it forgets arbitrary entries: events for statements it forgot
// carry their IDs but not their SQL.
type stmtTracker struct {
	m          map[uint32]*stmtInfo
	bytes      int
	maxBytes   int
	maxEntries int
}

func (st *stmtInfo) cost() int { return trackOverhead + len(st.query) + len(st.types) }

func (t *stmtTracker) get(id uint32) *stmtInfo { return t.m[id] }

func (t *stmtTracker) put(id uint32, v *stmtInfo) {
	t.remove(id)
	c := v.cost()
	if c > t.maxBytes {
		return
	}
	if t.m == nil {
		t.m = make(map[uint32]*stmtInfo)
	}
	t.makeRoom(c, 1)
	t.m[id] = v
	t.bytes += c
}

// setTypes remembers the parameter types of a tracked statement.
func (t *stmtTracker) setTypes(st *stmtInfo, types []byte) {
	if string(st.types) == string(types) {
		return
	}
	grow := len(types) - len(st.types)
	st.types = append(st.types[:0], types...)
	t.bytes += grow
	if t.bytes > t.maxBytes {
		for id, v := range t.m {
			if v == st {
				continue
			}
			t.bytes -= v.cost()
			delete(t.m, id)
			if t.bytes <= t.maxBytes {
				break
			}
		}
	}
}

// makeRoom forgets entries until c more bytes and n more entries fit.
func (t *stmtTracker) makeRoom(c, n int) {
	for id, old := range t.m {
		if t.bytes+c <= t.maxBytes && len(t.m)+n <= t.maxEntries {
			return
		}
		t.bytes -= old.cost()
		delete(t.m, id)
	}
}

func (t *stmtTracker) remove(id uint32) {
	if old, ok := t.m[id]; ok {
		t.bytes -= old.cost()
		delete(t.m, id)
	}
}

func (t *stmtTracker) clear() {
	t.m = nil
	t.bytes = 0
}
