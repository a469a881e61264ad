package mysql

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gosql "github.com/go-sql-driver/mysql"

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

// transcript renders events as one line each, for exact comparisons.
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
		case *audit.MySQLStatementPrepare:
			line = "prepare " + e.Query
		case *audit.MySQLStatementExecute:
			line = fmt.Sprintf("execute %d %s %s", e.StatementID, renderParams(e.Parameters), e.Query)
		case *audit.MySQLStatementSendLongData:
			line = fmt.Sprintf("send_long_data %d param=%d size=%d %s", e.StatementID, e.ParameterID, e.DataSize, e.Query)
		case *audit.MySQLStatementClose:
			line = fmt.Sprintf("close %d %s", e.StatementID, e.Query)
		case *audit.MySQLStatementReset:
			line = fmt.Sprintf("reset %d %s", e.StatementID, e.Query)
		case *audit.MySQLStatementFetch:
			line = fmt.Sprintf("fetch %d rows=%d %s", e.StatementID, e.RowsCount, e.Query)
		case *audit.MySQLInitDB:
			line = "init_db " + e.SchemaName
		case *audit.MySQLCreateDB:
			line = "create_db " + e.SchemaName
		case *audit.MySQLDropDB:
			line = "drop_db " + e.SchemaName
		case *audit.MySQLProcessKill:
			line = fmt.Sprintf("process_kill %d->%d", e.ProcessID, e.ServerProcessID)
		default:
			line = fmt.Sprintf("%T", e)
		}
		out = append(out, line)
	}
	return out
}

func renderParams(ps []*string) string {
	if ps == nil {
		return "<nil>"
	}
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

// testAgent is a minimal proxy and database agent in one: it accepts
// MySQL clients on a loopback port, runs the proxy's handshake with a TLS
// certificate from the test's database CA, hands the login over through a
// SessionStart (encoded and decoded, as over a tunnel), logs in to the
// real server as the client asked with that user's client certificate,
// accepts the client's login and relays with audit. Connection IDs it
// gives clients start at 1000000 and are translated for KILL.
type testAgent struct {
	t         *testing.T
	ln        net.Listener
	dbAddr    string
	frontTLS  *tls.Config
	upTLS     map[string]*tls.Config // per database user
	rec       *recorder
	configure func(*Relay)          // adjusts each session's Relay
	upstream  func(*UpstreamParams) // adjusts each session's login

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	nextID   uint32
	ids      map[uint32]uint32 // client-visible -> server connection ID
	sessions []*agentSession
	failures []error // logins that did not reach the relay
}

type agentSession struct {
	hello *ClientHello
	up    *Upstream
	done  chan struct{}
	stats Stats
	err   error
}

// newTestAgent starts a test agent in front of the shared MariaDB.
func newTestAgent(t *testing.T) (*testAgent, *dbtest.MariaDB) {
	t.Helper()
	my := shared.MariaDB(t)
	dbCA := shared.CA(t)
	prefix := dbtest.ServerFiles(t, dbCA)
	pair, err := tls.LoadX509KeyPair(prefix+".crt", prefix+".key")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &testAgent{
		t: t, ln: ln, dbAddr: my.Addr(), rec: &recorder{},
		frontTLS: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert},
		upTLS:    map[string]*tls.Config{},
		ctx:      ctx, cancel: cancel, nextID: 1000000, ids: map[uint32]uint32{},
	}
	for _, u := range shared.Options.Users {
		cert, key := dbtest.ClientFiles(t, dbCA, u)
		a.upTLS[u] = my.TLSConfig(t, cert, key)
	}
	a.wg.Add(1)
	go a.serve()
	t.Cleanup(func() {
		ln.Close()
		cancel()
		a.wg.Wait()
	})
	return a, my
}

func (a *testAgent) addr() string { return a.ln.Addr().String() }

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
			if err := a.handle(c); err != nil {
				a.mu.Lock()
				a.failures = append(a.failures, err)
				a.mu.Unlock()
			}
		}()
	}
}

func (a *testAgent) lookup(id uint32) (uint32, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	real, ok := a.ids[id]
	return real, ok
}

func (a *testAgent) handle(c net.Conn) error {
	c.SetDeadline(time.Now().Add(time.Minute))
	a.mu.Lock()
	a.nextID++
	id := a.nextID
	a.mu.Unlock()
	hello, err := ServerHandshake(c, FrontendConfig{ConnectionID: id, TLSConfig: a.frontTLS})
	if err != nil {
		return err
	}
	if len(hello.Conn.ConnectionState().PeerCertificates) == 0 {
		hello.WriteError(CodeAccessDenied, StateAccessDenied, "no client certificate was sent: log in with pcl login and connect with pcl db connect NAME")
		return errors.New("no client certificate")
	}
	// Over the tunnel.
	var wire bytes.Buffer
	if err := WriteSessionStart(&wire, hello.SessionStart()); err != nil {
		return err
	}
	start, err := ReadSessionStart(&wire)
	if err != nil {
		return err
	}
	upTLS, ok := a.upTLS[start.Username]
	if !ok {
		start.WriteError(hello.Conn, CodeAccessDenied, StateAccessDenied, "unknown user")
		return fmt.Errorf("unknown user %q", start.Username)
	}
	var d net.Dialer
	raw, err := d.DialContext(a.ctx, "tcp", a.dbAddr)
	if err != nil {
		start.WriteError(hello.Conn, CodeConnectionFailure, StateGeneral, "database is down")
		return err
	}
	p := UpstreamParams{
		User: start.Username, Database: start.Database, Capabilities: start.Capabilities,
		Charset: start.Charset, Attributes: start.Attributes,
	}
	if a.upstream != nil {
		a.upstream(&p)
	}
	up, err := ConnectUpstream(a.ctx, raw, upTLS, p)
	if err != nil {
		var se *ServerError
		switch {
		case IsPasswordRequired(err):
			start.WriteError(hello.Conn, CodeAccessDenied, StateAccessDenied, err.Error())
		case errors.As(err, &se):
			se.Forward(hello.Conn, start.Sequence)
		default:
			start.WriteError(hello.Conn, CodeConnectionFailure, StateGeneral, err.Error())
		}
		return err
	}
	s := &agentSession{hello: hello, up: up, done: make(chan struct{})}
	defer close(s.done)
	a.mu.Lock()
	a.ids[id] = up.ConnectionID
	a.sessions = append(a.sessions, s)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.ids, id)
		a.mu.Unlock()
	}()
	if err := start.WriteAuthOK(hello.Conn, up.Status); err != nil {
		up.Conn.Close()
		return err
	}
	hello.Conn.SetDeadline(time.Time{})
	r := &Relay{
		Client:      hello.Conn,
		Server:      up.Conn,
		Emitter:     a.rec,
		ClusterName: "test",
		Session: audit.DatabaseSessionMetadata{
			SessionMetadata:  audit.SessionMetadata{SessionID: "sid-" + strconv.Itoa(int(id))},
			UserMetadata:     audit.UserMetadata{User: "alice"},
			DatabaseMetadata: audit.DatabaseMetadata{DatabaseService: "my1", DatabaseProtocol: "mysql", DatabaseUser: p.User, DatabaseName: p.Database},
		},
		ConnIDs:            a.lookup,
		AllowLoadDataLocal: p.AllowLoadDataLocal,
	}
	if a.configure != nil {
		a.configure(r)
	}
	s.stats, s.err = r.Run(a.ctx)
	return nil
}

// lastSession returns the most recent session, waiting for it to end when
// wait is set.
func (a *testAgent) lastSession(t *testing.T, wait bool) *agentSession {
	t.Helper()
	a.mu.Lock()
	if len(a.sessions) == 0 {
		a.mu.Unlock()
		t.Fatalf("no session reached the relay; failures: %v", a.failures)
	}
	s := a.sessions[len(a.sessions)-1]
	a.mu.Unlock()
	if wait {
		<-s.done
	}
	return s
}

// clientTLS is what a client trusts and presents: the test's database CA
// (which signed the agent's certificate) and a certificate for user.
func (a *testAgent) clientTLS(t *testing.T, user string) *tls.Config {
	t.Helper()
	my := shared.MariaDB(t)
	cert, key := dbtest.ClientFiles(t, shared.CA(t), user)
	return dbtest.ClientTLS(t, my.CAFile, cert, key)
}

// driverConfig is a go-sql-driver/mysql configuration that connects
// through the agent.
func (a *testAgent) driverConfig(t *testing.T, user, database string) *gosql.Config {
	cfg := gosql.NewConfig()
	cfg.User = user
	cfg.Net = "tcp"
	cfg.Addr = a.addr()
	cfg.DBName = database
	cfg.TLS = a.clientTLS(t, user)
	cfg.Timeout = 30 * time.Second
	return cfg
}

// open opens a database/sql handle with one connection through the agent.
func (a *testAgent) open(t *testing.T, cfg *gosql.Config) *sql.DB {
	t.Helper()
	conn, err := gosql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(testContext(t)); err != nil {
		t.Fatalf("connect through the agent: %v", err)
	}
	return db
}

// rawClient logs in through the agent with go-mysql's client.
func (a *testAgent) rawClient(t *testing.T, user, database string, options ...client.Option) *client.Conn {
	t.Helper()
	tlsCfg := a.clientTLS(t, user)
	opts := append([]client.Option{func(c *client.Conn) error { c.SetTLSConfig(tlsCfg); return nil }}, options...)
	c, err := client.Connect(a.addr(), user, "", database, opts...)
	if err != nil {
		t.Fatalf("connect through the agent with go-mysql: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serverFiles makes a certificate for 127.0.0.1 signed by the shared
// database CA, which the test clients trust.
func serverFiles(t *testing.T) string {
	t.Helper()
	return dbtest.ServerFiles(t, shared.CA(t))
}

// clientTLSFor trusts the shared database CA and presents a certificate
// for user.
func clientTLSFor(t *testing.T, user string) *tls.Config {
	t.Helper()
	dbCA := shared.CA(t)
	cert, key := dbtest.ClientFiles(t, dbCA, user)
	cfg := dbtest.ClientTLS(t, serverFiles(t)+".cas", cert, key)
	return cfg
}
