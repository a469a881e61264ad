package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/protocol"
	"github.com/portcullis-db/portcullis/protocol/iobuf"
)

// Frontend is what the proxy's database front ends (PostgresServer,
// MySQLServer) share: how they check a client's certificate and route,
// dispatch its session, and audit what they refuse.
type Frontend struct {
	// Dispatcher opens sessions to agents. Required.
	Dispatcher *Dispatcher
	// UserCAs verify clients' certificates. Required.
	UserCAs func() []*x509.Certificate
	// ClusterName, when set, must be the certificates' cluster.
	ClusterName string
	// Locks, if set, lists the locks in force; a locked user is refused.
	Locks func(ctx context.Context) ([]policy.Lock, error)
	// Emitter receives the sessions the proxy refuses itself (a
	// db.session.start that failed); the agent audits the rest.
	Emitter audit.Emitter
	// HandshakeTimeout bounds TLS and the protocol's login (default 10s).
	HandshakeTimeout time.Duration
	// Clock tells the time (default time.Now).
	Clock func() time.Time
	// Logger logs refusals and failures (default: no-op).
	Logger *zap.Logger

	poolOnce sync.Once
	pool     *iobuf.Pool

	mu     sync.Mutex
	wg     sync.WaitGroup
	closed bool
	lns    map[net.Listener]struct{}
	conns  map[net.Conn]struct{}
}

// refusal is why the proxy turned a client away, in one sentence, and
// whether the fault is the client's access (rather than availability).
type refusal struct {
	msg    string
	access bool
}

// admission is a client the proxy let through: its identity and the
// certificate that carries it.
type admission struct {
	id   *ca.Identity
	cert *x509.Certificate
}

// admit checks a client's certificate chain for a session of protocolName
// as db user user on database db (as the client asked; "" when it did not
// say): the chain must be a user certificate of this cluster with a route
// to a database of that protocol that agrees with what was asked, and the
// user must not be locked. A refusal carries the identity when it is known.
func (f *Frontend) admit(ctx context.Context, chain []*x509.Certificate, protocolName, user, db string) (*admission, *ca.Identity, *refusal) {
	if len(chain) == 0 {
		return nil, nil, &refusal{access: true, msg: "no client certificate was sent: log in with pcl login and connect with pcl db connect NAME"}
	}
	v := &ca.Verifier{Roots: f.UserCAs(), Kinds: []ca.CertKind{ca.KindUser}, Usage: x509.ExtKeyUsageClientAuth,
		ClusterName: f.ClusterName, Clock: f.now}
	id, err := v.Verify(chain)
	if err != nil {
		switch {
		case ca.IsExpired(err):
			// The signature was checked before the expiry, so the identity
			// is this cluster's: record the refusal under the user's name.
			expired, _ := ca.IdentityFromCertificate(chain[0])
			return nil, expired, &refusal{access: true, msg: fmt.Sprintf("your certificate expired at %s; run pcl login, then pcl db login",
				chain[0].NotAfter.UTC().Format(time.RFC3339))}
		case ca.IsUnknownAuthority(err):
			return nil, nil, &refusal{access: true, msg: "the client certificate was not issued by this cluster; run pcl login, then pcl db login"}
		default:
			return nil, nil, &refusal{access: true, msg: "the client certificate is not accepted: " + err.Error()}
		}
	}
	route := id.Route
	switch {
	case route == nil:
		return nil, id, &refusal{access: true, msg: "this certificate has no database route; run pcl db login NAME"}
	case route.Protocol != protocolName:
		return nil, id, &refusal{access: true, msg: fmt.Sprintf("database %q speaks %s, not %s; connect with pcl db connect %s",
			route.ServiceName, route.Protocol, protocolName, route.ServiceName)}
	case user != "" && user != route.DBUser:
		return nil, id, &refusal{access: true, msg: fmt.Sprintf("this certificate is for database user %q, not %q; run pcl db login %s --db-user %s",
			route.DBUser, user, route.ServiceName, user)}
	case db != "" && route.DBName != "" && db != route.DBName:
		return nil, id, &refusal{access: true, msg: fmt.Sprintf("this certificate is for database name %q, not %q; run pcl db login %s --db-name %s",
			route.DBName, db, route.ServiceName, db)}
	}
	if f.Locks != nil {
		locks, err := f.Locks(ctx)
		if err == nil {
			err = policy.CheckLocks(locks, id.Username, id.Roles, f.now())
		}
		if err != nil {
			return nil, id, &refusal{access: true, msg: err.Error()}
		}
	}
	return &admission{id: id, cert: chain[0]}, id, nil
}

// dial opens the admitted client's session with an agent.
func (f *Frontend) dial(ctx context.Context, a *admission, clientAddr string) (*tls.Conn, string, *refusal) {
	conn, agentID, err := f.Dispatcher.Dial(ctx, a.cert, a.id, protocol.SessionRequest{
		Type: protocol.SessionConnect, ClientAddr: clientAddr,
	})
	if err != nil {
		msg := "the proxy could not reach the database's agent; try again shortly"
		var de *DispatchError
		if errors.As(err, &de) {
			msg = de.Msg
		}
		f.log().Warn("dispatch failed", zap.String("user", a.id.Username), zap.String("db", a.id.Route.ServiceName), zap.Error(err))
		return nil, "", &refusal{msg: msg}
	}
	return conn, agentID, nil
}

// auditRefusal records a session the proxy refused, before the client is
// told, so that the event is never later than what the client saw.
func (f *Frontend) auditRefusal(id *ca.Identity, protocolName, user, db, clientAddr, msg string) {
	if f.Emitter == nil {
		return
	}
	e := &audit.DatabaseSessionStart{
		Metadata: audit.Metadata{Type: audit.TypeDatabaseSessionStart, ClusterName: f.ClusterName},
		Status:   audit.Status{Success: false, Error: msg},
	}
	e.SessionID = audit.NewSessionID()
	e.DatabaseProtocol = protocolName
	e.DatabaseUser, e.DatabaseName = user, db
	e.ClientAddr = clientAddr
	if id != nil {
		e.User, e.Roles = id.Username, id.Roles
		if id.Route != nil {
			e.DatabaseService = id.Route.ServiceName
			if e.DatabaseUser == "" {
				e.DatabaseUser = id.Route.DBUser
			}
			if e.DatabaseName == "" {
				e.DatabaseName = id.Route.DBName
			}
		}
	}
	if err := f.Emitter.EmitAuditEvent(context.Background(), e); err != nil {
		f.log().Error("cannot audit a refused session", zap.Error(err))
	}
}

// serve accepts connections on l and hands each to handle on its own
// goroutine, until l fails or the front end is closed. handle sets the
// session up (TLS, the protocol's start, certificate checks, the session
// with the agent) and returns what relays it, or nil when it is done.
func (f *Frontend) serve(l net.Listener, handle func(context.Context, net.Conn) (relay func())) error {
	if f.Dispatcher == nil || f.UserCAs == nil {
		return errors.New("proxy: Frontend.Dispatcher and Frontend.UserCAs are required")
	}
	if !f.track(l, nil, true) {
		return ErrRouterClosed
	}
	defer f.track(l, nil, false)
	for {
		c, err := l.Accept()
		if err != nil {
			f.mu.Lock()
			closed := f.closed
			f.mu.Unlock()
			if closed {
				return ErrRouterClosed
			}
			return err
		}
		if !f.track(nil, c, true) {
			c.Close()
			return ErrRouterClosed
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.track(nil, c, false)
			defer c.Close()
			if relay := iobuf.OnOwnStack(func() func() { return handle(context.Background(), c) }); relay != nil {
				relay()
			}
		}()
	}
}

// track registers (add) or forgets a listener or connection; it reports
// false once the front end is closed.
func (f *Frontend) track(l net.Listener, c net.Conn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lns == nil {
		f.lns, f.conns = map[net.Listener]struct{}{}, map[net.Conn]struct{}{}
	}
	if add && f.closed {
		return false
	}
	switch {
	case l != nil && add:
		f.lns[l] = struct{}{}
	case l != nil:
		delete(f.lns, l)
	case add:
		f.conns[c] = struct{}{}
	default:
		delete(f.conns, c)
	}
	return true
}

// Close stops the listeners, ends every session and waits for them.
func (f *Frontend) Close() error {
	f.mu.Lock()
	f.closed = true
	for l := range f.lns {
		l.Close()
	}
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return nil
}

// buffers is the pool the front end's sessions borrow relay buffers from.
func (f *Frontend) buffers() *iobuf.Pool {
	f.poolOnce.Do(func() { f.pool = iobuf.NewPool(0) })
	return f.pool
}

func (f *Frontend) now() time.Time {
	if f.Clock != nil {
		return f.Clock()
	}
	return time.Now()
}

func (f *Frontend) log() *zap.Logger {
	if f.Logger == nil {
		return zap.NewNop()
	}
	return f.Logger
}

func (f *Frontend) handshakeTimeout() time.Duration {
	if f.HandshakeTimeout > 0 {
		return f.HandshakeTimeout
	}
	return DefaultHandshakeTimeout
}
