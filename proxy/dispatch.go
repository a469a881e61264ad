package proxy

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/protocol"
	"github.com/portcullis-db/portcullis/tunnel"
)

// sessionCertMargin is how long before its expiry a cached session
// certificate is replaced.
const sessionCertMargin = time.Minute

// Tunnels is the part of a tunnel.Server the dispatcher uses.
type Tunnels interface {
	Dial(ctx context.Context, agentID string, extra []byte) (net.Conn, error)
}

// SessionSigner obtains the certificate the proxy presents to an agent on a
// user's behalf: a session certificate from the host CA for pub, carrying
// the identity and route of userCert (see authclient.Client.SignSession).
type SessionSigner func(ctx context.Context, userCert *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error)

// A Dispatcher opens sessions to database agents: it picks an agent that
// serves the route's database, opens a channel to it over the reverse
// tunnel and speaks mutual TLS inside with a session certificate, cached
// per user certificate (that is, per identity and route) until near its
// expiry, so a new connection costs no signing round trip.
type Dispatcher struct {
	// Tunnels opens channels to agents. Required.
	Tunnels Tunnels
	// SignSession signs session certificates. Required.
	SignSession SessionSigner
	// HostCAs verify the agents' certificates. Required.
	HostCAs func() []*x509.Certificate
	// Clock tells the time (default time.Now).
	Clock func() time.Time
	// Logger logs dispatch failures (default: no-op).
	Logger *zap.Logger

	keyOnce sync.Once
	key     crypto.Signer
	keyErr  error

	mu    sync.Mutex
	conns map[uint64]agentConn // tunnel connection ID -> what it serves
	certs map[[32]byte]*sessionCert
}

type sessionCert struct {
	mu      sync.Mutex // held while signing, so one signature serves all waiters
	cert    *tls.Certificate
	expires time.Time
	// sessions holds TLS sessions to resume with agents, per agent. It
	// belongs to one certificate (one identity and route): a resumed
	// session carries the identity of the handshake that made it, so
	// sessions must never be shared between users or routes.
	sessions tls.ClientSessionCache
}

// sessionsPerCert bounds the TLS sessions kept per session certificate:
// the agents one route is served by.
const sessionsPerCert = 8

// agentConn is one agent tunnel connection and the databases it serves.
type agentConn struct {
	agentID   string
	databases map[string]bool
}

// agentMetadata is what agents advertise in their tunnel metadata.
type agentMetadata struct {
	Databases []string `json:"databases"`
}

// OnAgentEvent keeps the index of which agent serves which database; set
// it as (or call it from) tunnel.Server.OnAgentEvent.
func (d *Dispatcher) OnAgentEvent(ev tunnel.AgentEvent) {
	var md agentMetadata
	if ev.Type != tunnel.AgentDisconnected && len(ev.Agent.Metadata) > 0 {
		if err := json.Unmarshal(ev.Agent.Metadata, &md); err != nil {
			d.log().Warn("an agent advertised metadata that does not parse", zap.String("agent", ev.Agent.ID), zap.Error(err))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns == nil {
		d.conns = map[uint64]agentConn{}
	}
	if ev.Type == tunnel.AgentDisconnected {
		delete(d.conns, ev.Agent.ConnID)
		return
	}
	c := agentConn{agentID: ev.Agent.ID, databases: make(map[string]bool, len(md.Databases))}
	for _, db := range md.Databases {
		c.databases[db] = true
	}
	d.conns[ev.Agent.ConnID] = c
}

// agentsFor lists the agents serving a database, each once, in random
// order.
func (d *Dispatcher) agentsFor(db string) []string {
	seen := map[string]bool{}
	var out []string
	d.mu.Lock()
	for _, c := range d.conns {
		if c.databases[db] && !seen[c.agentID] {
			seen[c.agentID] = true
			out = append(out, c.agentID)
		}
	}
	d.mu.Unlock()
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// DispatchError is a session the proxy could not open; its message is
// one sentence for the person connecting.
type DispatchError struct {
	Msg string
	Err error
}

func (e *DispatchError) Error() string { return e.Msg }
func (e *DispatchError) Unwrap() error { return e.Err }

// Dial opens a session for the user certificate's route: a mutual TLS
// connection to an agent serving its database. It returns the agent's ID
// too, for DialAgent to reach the same agent again (query cancellation).
func (d *Dispatcher) Dial(ctx context.Context, userCert *x509.Certificate, id *ca.Identity, req protocol.SessionRequest) (*tls.Conn, string, error) {
	if id.Route == nil {
		return nil, "", &DispatchError{Msg: "this certificate has no database route; run pcl db login NAME"}
	}
	agents := d.agentsFor(id.Route.ServiceName)
	if len(agents) == 0 {
		return nil, "", &DispatchError{Msg: fmt.Sprintf("database %q is not available: no agent serving it is connected to this proxy; pcl db ls lists the databases you can reach", id.Route.ServiceName)}
	}
	var lastErr error
	for _, agentID := range agents {
		conn, err := d.DialAgent(ctx, agentID, userCert, req)
		if err == nil {
			return conn, agentID, nil
		}
		var de *DispatchError
		if errors.As(err, &de) {
			return nil, "", err
		}
		lastErr = err
		d.log().Warn("dialing an agent failed", zap.String("agent", agentID), zap.String("db", id.Route.ServiceName), zap.Error(err))
	}
	return nil, "", &DispatchError{Msg: fmt.Sprintf("database %q is not available: its agent did not answer; try again shortly", id.Route.ServiceName), Err: lastErr}
}

// DialAgent opens a session with one agent for userCert's route.
func (d *Dispatcher) DialAgent(ctx context.Context, agentID string, userCert *x509.Certificate, req protocol.SessionRequest) (*tls.Conn, error) {
	cert, sessions, err := d.sessionCert(ctx, userCert)
	if err != nil {
		return nil, &DispatchError{Msg: "the proxy could not get a session certificate from the auth service; try again shortly", Err: err}
	}
	extra, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	return d.dialAgent(ctx, agentID, extra, cert, sessions)
}

func (d *Dispatcher) dialAgent(ctx context.Context, agentID string, extra []byte, cert *tls.Certificate, sessions tls.ClientSessionCache) (*tls.Conn, error) {
	ch, err := d.Tunnels.Dial(ctx, agentID, extra)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range d.HostCAs() {
		pool.AddCert(c)
	}
	conn := tls.Client(ch, &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*cert},
		RootCAs:      pool,
		ServerName:   agentID, // agents' host certificates name their host ID
		// Resuming a session skips the certificates' signatures, the
		// costliest part of a new session; see sessionCert.sessions.
		ClientSessionCache: sessions,
		// This hop runs inside the tunnel, whose TLS key exchange is
		// already hybrid post-quantum (Go's default X25519MLKEM768); a
		// second ML-KEM exchange per session would cost a quarter of a
		// resumed handshake and protect nothing more.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
		// Records sized for TCP segments help nothing inside the tunnel
		// and cost bulk transfers more records and SSH packets.
		DynamicRecordSizingDisabled: true,
	})
	if err := conn.HandshakeContext(ctx); err != nil {
		ch.Close()
		return nil, err
	}
	return conn, nil
}

// sessionCert returns the cached session certificate for userCert, signing
// a new one when there is none or it nears expiry, and the TLS sessions to
// resume with it.
func (d *Dispatcher) sessionCert(ctx context.Context, userCert *x509.Certificate) (*tls.Certificate, tls.ClientSessionCache, error) {
	d.keyOnce.Do(func() { d.key, d.keyErr = ca.GenerateKey() })
	if d.keyErr != nil {
		return nil, nil, d.keyErr
	}
	k := sha256.Sum256(userCert.Raw)
	d.mu.Lock()
	if d.certs == nil {
		d.certs = map[[32]byte]*sessionCert{}
	}
	now := d.now()
	e := d.certs[k]
	if e == nil {
		e = &sessionCert{}
		d.certs[k] = e
		d.pruneLocked(now)
	}
	d.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cert != nil && now.Before(e.expires) {
		return e.cert, e.sessions, nil
	}
	leaf, err := d.SignSession(ctx, userCert, d.key.Public())
	if err != nil {
		return nil, nil, err
	}
	e.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: d.key, Leaf: leaf}
	e.expires = leaf.NotAfter.Add(-sessionCertMargin)
	// Sessions made with the old certificate end with it.
	e.sessions = tls.NewLRUClientSessionCache(sessionsPerCert)
	return e.cert, e.sessions, nil
}

// pruneLocked drops expired cache entries once the cache grows.
func (d *Dispatcher) pruneLocked(now time.Time) {
	if len(d.certs) < 1024 {
		return
	}
	for k, e := range d.certs {
		if e.mu.TryLock() {
			if e.cert != nil && !now.Before(e.expires) {
				delete(d.certs, k)
			}
			e.mu.Unlock()
		}
	}
}

func (d *Dispatcher) now() time.Time {
	if d.Clock != nil {
		return d.Clock()
	}
	return time.Now()
}

func (d *Dispatcher) log() *zap.Logger {
	if d.Logger == nil {
		return zap.NewNop()
	}
	return d.Logger
}
