package postgres

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// recorder is an Emitter that keeps the events it is given.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) EmitAuditEvent(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) all() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Event(nil), r.events...)
}

// reset forgets the events recorded so far.
func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = nil
}

var stmtCacheName = regexp.MustCompile(`stmtcache_[0-9a-f]+`)

// transcript renders events as one line each, with pgx's generated
// statement names replaced by "stmtcache_*", for exact comparisons.
func transcript(events []audit.Event) []string {
	var out []string
	for _, e := range events {
		var line string
		switch e := e.(type) {
		case *audit.DatabaseSessionQuery:
			line = "query " + e.Query
			if !e.Success {
				line += " REFUSED " + e.Error
			}
		case *audit.PostgresParse:
			line = fmt.Sprintf("parse %q %s", e.StatementName, e.Query)
		case *audit.PostgresBind:
			line = fmt.Sprintf("bind %q->%q %s %s", e.StatementName, e.PortalName, renderParams(e.Parameters), e.Query)
		case *audit.PostgresExecute:
			line = fmt.Sprintf("execute %q max=%d %q %s", e.PortalName, e.MaxRows, e.StatementName, e.Query)
		case *audit.PostgresClose:
			line = fmt.Sprintf("close %s %q%q", e.Object, e.StatementName, e.PortalName)
		case *audit.PostgresFunctionCall:
			line = fmt.Sprintf("function %d %s", e.FunctionOID, renderParams(e.FunctionArgs))
		default:
			line = fmt.Sprintf("%T", e)
		}
		out = append(out, stmtCacheName.ReplaceAllString(line, "stmtcache_*"))
	}
	return out
}

func renderParams(ps []*string) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		if p == nil {
			parts[i] = "NULL"
		} else {
			parts[i] = strconv.Quote(*p)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// testAgent is a minimal database agent: it accepts plaintext PostgreSQL
// clients on a loopback port, connects each to the real server as the
// client asked (user and database) with the database CA's client
// certificate, replays the startup with a substitute cancel key, relays
// with audit, and routes CancelRequests to the real server.
type testAgent struct {
	t         *testing.T
	ln        net.Listener
	pgAddr    string
	upTLS     *tls.Config
	rec       *recorder
	configure func(*Relay) // adjusts each session's Relay

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	keys     map[string]BackendKey // substitute -> real
	sessions []*agentSession
	cancels  []error
}

type agentSession struct {
	key, real BackendKey
	done      chan struct{}
	stats     Stats
	err       error
}

// startAgent starts a test agent in front of pg that logs in to it with
// upTLS (which presents the database user's client certificate).
func startAgent(t *testing.T, pg *dbtest.Postgres, upTLS *tls.Config) *testAgent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &testAgent{
		t: t, ln: ln, pgAddr: pg.Addr(), upTLS: upTLS, rec: &recorder{},
		ctx: ctx, cancel: cancel, keys: map[string]BackendKey{},
	}
	a.wg.Add(1)
	go a.serve()
	t.Cleanup(func() {
		ln.Close()
		cancel()
		a.wg.Wait()
	})
	return a
}

// dsn is a pgx connection string to the agent.
func (a *testAgent) dsn(user, database string) string {
	host, port, _ := net.SplitHostPort(a.ln.Addr().String())
	return fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable connect_timeout=30", host, port, user, database)
}

func (a *testAgent) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(a.ctx, a.dsn("alice", "app"))
	if err != nil {
		t.Fatalf("connect through the agent: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func keyString(k BackendKey) string { return fmt.Sprintf("%d/%x", k.ProcessID, k.Secret) }

func (a *testAgent) serve() {
	defer a.wg.Done()
	for {
		c, err := a.ln.Accept()
		if err != nil {
			return
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer c.Close()
			a.handle(c)
		}()
	}
}

func (a *testAgent) handle(c net.Conn) {
	msg, err := ReadStartup(c, 0)
	if err != nil {
		return
	}
	if _, ok := msg.(*pgproto3.SSLRequest); ok {
		if WriteEncryptionRefused(c) != nil {
			return
		}
		if msg, err = ReadStartup(c, 0); err != nil {
			return
		}
	}
	switch m := msg.(type) {
	case *pgproto3.CancelRequest:
		a.mu.Lock()
		real, ok := a.keys[keyString(BackendKey{ProcessID: m.ProcessID, Secret: m.SecretKey})]
		a.mu.Unlock()
		if !ok {
			a.recordCancel(errors.New("unknown cancel key"))
			return
		}
		a.recordCancel(SendCancel(a.ctx, a.dialDB, a.upTLS, real))
	case *pgproto3.StartupMessage:
		a.session(c, m)
	default:
		WriteError(c, CodeProtocolViolation, "unsupported request")
	}
}

func (a *testAgent) recordCancel(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cancels = append(a.cancels, err)
}

func (a *testAgent) dialDB(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", a.pgAddr)
}

func (a *testAgent) session(c net.Conn, m *pgproto3.StartupMessage) {
	if err := NegotiateProtocol(c, m); err != nil {
		return
	}
	raw, err := a.dialDB(a.ctx)
	if err != nil {
		WriteError(c, CodeConnectionFailure, "database is down")
		return
	}
	up, err := ConnectUpstream(a.ctx, raw, a.upTLS, m.Parameters)
	if err != nil {
		var se *ServerError
		if errors.As(err, &se) {
			se.Forward(c)
		} else {
			WriteError(c, CodeConnectionFailure, err.Error())
		}
		return
	}
	key, err := NewBackendKey(rand.Reader)
	if err != nil {
		up.Conn.Close()
		return
	}
	s := &agentSession{key: key, real: up.Key, done: make(chan struct{})}
	a.mu.Lock()
	a.keys[keyString(key)] = up.Key
	a.sessions = append(a.sessions, s)
	a.mu.Unlock()
	if err := up.ReplayStartup(c, key); err != nil {
		up.Conn.Close()
		close(s.done)
		return
	}
	r := &Relay{
		Client:      c,
		Server:      up.Conn,
		Emitter:     a.rec,
		ClusterName: "test",
		Session: audit.DatabaseSessionMetadata{
			SessionMetadata:  audit.SessionMetadata{SessionID: "sid-" + strconv.Itoa(int(key.ProcessID))},
			UserMetadata:     audit.UserMetadata{User: "alice"},
			DatabaseMetadata: audit.DatabaseMetadata{DatabaseService: "pg1", DatabaseProtocol: "postgres", DatabaseUser: m.Parameters["user"], DatabaseName: m.Parameters["database"]},
		},
	}
	if a.configure != nil {
		a.configure(r)
	}
	s.stats, s.err = r.Run(a.ctx)
	close(s.done)
}

// lastSession returns the most recent session, waiting for it to end when
// wait is set.
func (a *testAgent) lastSession(t *testing.T, wait bool) *agentSession {
	t.Helper()
	a.mu.Lock()
	if len(a.sessions) == 0 {
		a.mu.Unlock()
		t.Fatal("no session reached the relay")
	}
	s := a.sessions[len(a.sessions)-1]
	a.mu.Unlock()
	if wait {
		<-s.done
	}
	return s
}
