package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/portcullis-db/portcullis/audit"
)

// DefaultTrackLimit bounds, per session, the bytes of statement and
// portal names and SQL text remembered so that Bind and Execute events can
// name the query they run.
const DefaultTrackLimit = 8 << 20

// maxTracked bounds the number of remembered statements (and, separately,
// portals) per session.
const maxTracked = 10000

// trackOverhead is what one remembered entry costs besides its strings.
const trackOverhead = 64

// errMalformed is the cause of a refusal of a malformed audited message.
var errMalformed = errors.New("malformed message")

// decoder turns the client messages that audit records (Query, Parse,
// Bind, Execute, Close, FunctionCall) into events, remembering prepared
// statements and portals. It is used by one goroutine.
type decoder struct {
	cluster    string
	session    audit.DatabaseSessionMetadata
	clock      func() time.Time
	queryLimit int
	paramLimit int

	statements tracker // statement name -> query
	portals    tracker // portal name -> statement name and query

	// Flyweights reused for every message.
	query pgproto3.Query
	parse pgproto3.Parse
	bind  pgproto3.Bind
	exec  pgproto3.Execute
	close pgproto3.Close
	fn    pgproto3.FunctionCall
}

func newDecoder(r *Relay) *decoder {
	d := &decoder{
		cluster:    r.ClusterName,
		session:    r.Session,
		clock:      r.Clock,
		queryLimit: r.QueryLimit,
		paramLimit: r.ParamLimit,
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
	d.statements = tracker{maxBytes: limit, maxEntries: maxTracked}
	d.portals = tracker{maxBytes: limit, maxEntries: maxTracked}
	return d
}

// audited reports whether messages of type typ are decoded for audit.
func audited(typ byte) bool {
	switch typ {
	case 'Q', 'P', 'B', 'E', 'C', 'F':
		return true
	}
	return false
}

func (d *decoder) meta(typ string) audit.Metadata {
	return audit.Metadata{Type: typ, Time: d.clock(), ClusterName: d.cluster}
}

// decode returns the audit event for a message of an audited type, given
// its body (without type byte and length). The event references nothing
// in body. A malformed body yields an error wrapping errMalformed.
func (d *decoder) decode(typ byte, body []byte) (audit.Event, error) {
	switch typ {
	case 'Q':
		if err := d.query.Decode(body); err != nil {
			return nil, malformed("Query", err)
		}
		return &audit.DatabaseSessionQuery{
			Metadata:                d.meta(audit.TypeDatabaseSessionQuery),
			DatabaseSessionMetadata: d.session,
			Query:                   truncateText(d.query.String, d.queryLimit),
			Status:                  audit.Status{Success: true},
		}, nil

	case 'P':
		if err := d.parse.Decode(body); err != nil {
			return nil, malformed("Parse", err)
		}
		q := truncateText(d.parse.Query, d.queryLimit)
		d.statements.put(d.parse.Name, tracked{query: q})
		return &audit.PostgresParse{
			Metadata:                d.meta(audit.TypePostgresParse),
			DatabaseSessionMetadata: d.session,
			StatementName:           d.parse.Name,
			Query:                   q,
		}, nil

	case 'B':
		if err := checkBind(body); err != nil {
			return nil, malformed("Bind", err)
		}
		if err := d.bind.Decode(body); err != nil {
			return nil, malformed("Bind", err)
		}
		stmt := d.statements.get(d.bind.PreparedStatement)
		d.portals.put(d.bind.DestinationPortal, tracked{statement: d.bind.PreparedStatement, query: stmt.query})
		return &audit.PostgresBind{
			Metadata:                d.meta(audit.TypePostgresBind),
			DatabaseSessionMetadata: d.session,
			StatementName:           d.bind.PreparedStatement,
			PortalName:              d.bind.DestinationPortal,
			Query:                   stmt.query,
			Parameters:              renderValues(d.bind.Parameters, d.bind.ParameterFormatCodes, d.paramLimit),
		}, nil

	case 'E':
		if err := d.exec.Decode(body); err != nil {
			return nil, malformed("Execute", err)
		}
		if len(body) != len(d.exec.Portal)+5 {
			return nil, malformed("Execute", errors.New("trailing bytes"))
		}
		p := d.portals.get(d.exec.Portal)
		return &audit.PostgresExecute{
			Metadata:                d.meta(audit.TypePostgresExecute),
			DatabaseSessionMetadata: d.session,
			PortalName:              d.exec.Portal,
			MaxRows:                 d.exec.MaxRows,
			StatementName:           p.statement,
			Query:                   p.query,
		}, nil

	case 'C':
		if err := d.close.Decode(body); err != nil {
			return nil, malformed("Close", err)
		}
		e := &audit.PostgresClose{
			Metadata:                d.meta(audit.TypePostgresClose),
			DatabaseSessionMetadata: d.session,
		}
		switch d.close.ObjectType {
		case 'S':
			d.statements.remove(d.close.Name)
			e.Object, e.StatementName = audit.CloseStatement, d.close.Name
		case 'P':
			d.portals.remove(d.close.Name)
			e.Object, e.PortalName = audit.ClosePortal, d.close.Name
		default:
			return nil, malformed("Close", fmt.Errorf("object type %q", d.close.ObjectType))
		}
		return e, nil

	case 'F':
		if err := checkFunctionCall(body); err != nil {
			return nil, malformed("FunctionCall", err)
		}
		if err := d.fn.Decode(body); err != nil {
			return nil, malformed("FunctionCall", err)
		}
		return &audit.PostgresFunctionCall{
			Metadata:                d.meta(audit.TypePostgresFunction),
			DatabaseSessionMetadata: d.session,
			FunctionOID:             d.fn.Function,
			FunctionArgs:            renderValues(d.fn.Arguments, d.fn.ArgFormatCodes, d.paramLimit),
		}, nil
	}
	return nil, fmt.Errorf("postgres: message type %q is not audited", typ)
}

func malformed(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", errMalformed, what, err)
}

// checkBind verifies that the counts in a Bind body fit its length, so
// that decoding it allocates no more than the body's size warrants.
func checkBind(b []byte) error {
	for range 2 { // portal and statement names
		i := indexZero(b)
		if i < 0 {
			return errors.New("unterminated name")
		}
		b = b[i+1:]
	}
	n, b, ok := count16(b, 2)
	if !ok {
		return errors.New("parameter format codes overrun the message")
	}
	b = b[2*n:]
	n, b, ok = count16(b, 4)
	if !ok {
		return errors.New("parameters overrun the message")
	}
	for range n {
		if len(b) < 4 {
			return errors.New("value overruns the message")
		}
		size := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if size == -1 {
			continue
		}
		if size < 0 || int(size) > len(b) {
			return errors.New("parameter overruns the message")
		}
		b = b[size:]
	}
	n, b, ok = count16(b, 2)
	if !ok || len(b) != 2*n {
		return errors.New("result format codes do not match the message length")
	}
	return nil
}

// checkFunctionCall is checkBind for FunctionCall.
func checkFunctionCall(b []byte) error {
	if len(b) < 4 {
		return errors.New("too short")
	}
	n, b, ok := count16(b[4:], 2)
	if !ok {
		return errors.New("argument format codes overrun the message")
	}
	b = b[2*n:]
	n, b, ok = count16(b, 4)
	if !ok {
		return errors.New("arguments overrun the message")
	}
	for range n {
		if len(b) < 4 {
			return errors.New("value overruns the message")
		}
		size := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if size == -1 {
			continue
		}
		if size < 0 || int(size) > len(b) {
			return errors.New("argument overruns the message")
		}
		b = b[size:]
	}
	if len(b) != 2 {
		return errors.New("result format code does not match the message length")
	}
	return nil
}

// count16 reads a 16-bit count at the start of b and checks that count
// items of at least min bytes each can follow it.
func count16(b []byte, min int) (n int, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, false
	}
	n = int(binary.BigEndian.Uint16(b))
	rest = b[2:]
	return n, rest, n*min <= len(rest)
}

func indexZero(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// tracked is what is remembered of a prepared statement or portal.
type tracked struct {
	statement string // for a portal: the statement it was bound from
	query     string
}

// tracker is a map bounded in entries and bytes. When full, it forgets
// arbitrary entries: events for statements it forgot carry their names
// but not their SQL.
type tracker struct {
	m          map[string]tracked
	bytes      int
	maxBytes   int
	maxEntries int
}

func cost(name string, t tracked) int {
	return trackOverhead + len(name) + len(t.statement) + len(t.query)
}

func (t *tracker) get(name string) tracked { return t.m[name] }

func (t *tracker) put(name string, v tracked) {
	t.remove(name)
	c := cost(name, v)
	if c > t.maxBytes {
		return
	}
	if t.m == nil {
		t.m = make(map[string]tracked)
	}
	for k, old := range t.m {
		if t.bytes+c <= t.maxBytes && len(t.m) < t.maxEntries {
			break
		}
		t.bytes -= cost(k, old)
		delete(t.m, k)
	}
	t.m[name] = v
	t.bytes += c
}

func (t *tracker) remove(name string) {
	if old, ok := t.m[name]; ok {
		t.bytes -= cost(name, old)
		delete(t.m, name)
	}
}
