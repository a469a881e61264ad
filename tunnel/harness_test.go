package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/ssh"
)

// testPKI is a host CA issuing the tunnel's SSH certificates via package ca.
type testPKI struct {
	auth  *ca.Authority
	caKey ssh.PublicKey
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	a, err := ca.NewAuthority(ca.HostCA, "test.cluster", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := a.SSHPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{auth: a, caKey: pub}
}

func newSSHKey(t testing.TB) ssh.Signer {
	t.Helper()
	k, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func certSigner(t testing.TB, cert *ssh.Certificate, key ssh.Signer) ssh.Signer {
	t.Helper()
	s, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hostSigner issues a proxy host certificate; principals default to
// 127.0.0.1 (the host the tests dial).
func (p *testPKI) hostSigner(t testing.TB, hostID string, principals ...string) ssh.Signer {
	t.Helper()
	if len(principals) == 0 {
		principals = []string{hostID, "127.0.0.1"}
	}
	key := newSSHKey(t)
	cert, err := p.auth.SignSSHHost(key.PublicKey(), hostID, principals, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return certSigner(t, cert, key)
}

func (p *testPKI) agentSigner(t testing.TB, hostID, role string, ttl time.Duration) ssh.Signer {
	t.Helper()
	key := newSSHKey(t)
	cert, err := p.auth.SignSSHAgent(key.PublicKey(), hostID, role, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return certSigner(t, cert, key)
}

type testServer struct {
	*Server
	addr     string
	logs     *observer.ObservedLogs
	serveErr chan error
	events   *eventLog
}

type eventLog struct {
	mu     sync.Mutex
	events []AgentEvent
}

func (l *eventLog) add(ev AgentEvent) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

func (l *eventLog) types(agentID string) []AgentEventType {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []AgentEventType
	for _, ev := range l.events {
		if ev.Agent.ID == agentID {
			out = append(out, ev.Type)
		}
	}
	return out
}

func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// startServer runs a Server on l (a new 127.0.0.1:0 listener if nil) until
// the test ends.
func startServer(t testing.TB, pki *testPKI, hostID string, l net.Listener, mod func(*Server)) *testServer {
	t.Helper()
	if l == nil {
		l = listen(t, "")
	}
	core, logs := observer.New(zapcore.DebugLevel)
	ts := &testServer{addr: l.Addr().String(), logs: logs, serveErr: make(chan error, 1), events: &eventLog{}}
	ts.Server = &Server{
		HostSigner:        pki.hostSigner(t, hostID),
		CAKeys:            []ssh.PublicKey{pki.caKey},
		Logger:            zap.New(core),
		KeepAliveInterval: 100 * time.Millisecond,
		OnAgentEvent:      ts.events.add,
	}
	if mod != nil {
		mod(ts.Server)
	}
	go func() { ts.serveErr <- ts.Serve(l) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop closes the server and checks that Serve returned ErrServerClosed.
func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	ts.Close()
	if err := <-ts.serveErr; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	ts.serveErr <- ErrServerClosed // later stops see it again
}

func (ts *testServer) logged(msg, substr string) bool {
	for _, e := range ts.logs.FilterMessage(msg).All() {
		for _, f := range e.Context {
			if f.Key == "reason" && strings.Contains(f.String, substr) {
				return true
			}
		}
	}
	return false
}

func (ts *testServer) connected(agentID string) int {
	n := 0
	for _, a := range ts.Agents() {
		if a.ID == agentID {
			n++
		}
	}
	return n
}

type testAgent struct {
	*Agent
	cancel context.CancelFunc
	done   chan error
}

// echoHandler writes extra, then echoes everything and half-closes.
func echoHandler(_ context.Context, conn net.Conn, extra []byte) {
	conn.Write(extra)
	io.Copy(conn, conn)
	conn.(interface{ CloseWrite() error }).CloseWrite()
}

func startAgent(t testing.TB, pki *testPKI, hostID string, addrs []string, mod func(*Agent)) *testAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{cancel: cancel, done: make(chan error, 1)}
	ta.Agent = &Agent{
		ProxyAddrs:        addrs,
		HostID:            hostID,
		Signer:            pki.agentSigner(t, hostID, "Db", time.Hour),
		HostCAKeys:        []ssh.PublicKey{pki.caKey},
		Handler:           echoHandler,
		Metadata:          []byte(`{"databases":["pg1"]}`),
		KeepAliveInterval: 100 * time.Millisecond,
		Backoff:           Backoff{Base: 20 * time.Millisecond, Cap: 200 * time.Millisecond},
	}
	if mod != nil {
		mod(ta.Agent)
	}
	go func() { ta.done <- ta.Run(ctx) }()
	t.Cleanup(ta.stop)
	return ta
}

func (ta *testAgent) stop() {
	ta.cancel()
	if err := <-ta.done; err != nil {
		ta.done <- err
	}
}

func (ta *testAgent) connectedTo() []string {
	var out []string
	for _, st := range ta.Status() {
		if st.Connected {
			out = append(out, st.ProxyID)
		}
	}
	slices.Sort(out)
	return out
}

func (ta *testAgent) lastError() string {
	for _, st := range ta.Status() {
		if st.LastError != "" {
			return st.LastError
		}
	}
	return ""
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (a hang guard, not a timing assertion).
func waitFor(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// manualClock is a settable clock.
type manualClock struct{ ns atomic.Int64 }

func newManualClock(t time.Time) *manualClock {
	c := &manualClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *manualClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *manualClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

type atomicSigner struct{ v atomic.Value }

func (s *atomicSigner) set(sg ssh.Signer) { s.v.Store(&sg) }
func (s *atomicSigner) get() (ssh.Signer, error) {
	return *s.v.Load().(*ssh.Signer), nil
}

// relay is a TCP relay in front of a server that can be frozen: it then
// stops moving bytes but keeps every connection open, like a peer whose
// host vanished from the network.
type relay struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	frozen bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newRelay(t testing.TB, target string) *relay {
	r := &relay{l: listen(t, ""), target: target}
	r.wg.Add(1)
	go r.loop()
	t.Cleanup(r.close)
	return r
}

func (r *relay) addr() string { return r.l.Addr().String() }

func (r *relay) loop() {
	defer r.wg.Done()
	for {
		c, err := r.l.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		frozen := r.frozen
		r.mu.Unlock()
		if frozen {
			continue // hold it open, never answer
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, up)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pipe(c, up)
		go r.pipe(up, c)
	}
}

func (r *relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		r.mu.Lock()
		frozen := r.frozen
		r.mu.Unlock()
		if frozen {
			// Swallow everything from now on; keep the sockets open.
			for err == nil {
				_, err = src.Read(buf)
			}
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (r *relay) freeze() {
	r.mu.Lock()
	r.frozen = true
	r.mu.Unlock()
}

func (r *relay) close() {
	r.l.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
