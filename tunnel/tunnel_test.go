package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"golang.org/x/crypto/ssh"
)

func TestRoleExtensionMatchesCA(t *testing.T) {
	if RoleExtension != ca.SSHRoleExtension {
		t.Fatalf("RoleExtension = %q, ca uses %q", RoleExtension, ca.SSHRoleExtension)
	}
}

func TestSessionEchoAndHalfClose(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, nil)
	ag := startAgent(t, pki, "db1", []string{srv.addr}, nil)
	waitFor(t, "agent metadata", func() bool {
		list := srv.Agents()
		return len(list) == 1 && list[0].Metadata != nil
	})

	info := srv.Agents()[0]
	if info.ID != "db1" || info.Role != "Db" || string(info.Metadata) != `{"databases":["pg1"]}` || info.CertExpires.IsZero() {
		t.Errorf("AgentInfo = %+v", info)
	}
	if got := ag.connectedTo(); !slices.Equal(got, []string{"proxy1"}) {
		t.Errorf("agent connected to %v, want [proxy1]", got)
	}

	conn, err := srv.Dial(context.Background(), "db1", []byte("route:pg1|"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.LocalAddr() == nil || conn.RemoteAddr() == nil || conn.RemoteAddr().String() != info.RemoteAddr.String() {
		t.Errorf("addrs: local %v remote %v, agent at %v", conn.LocalAddr(), conn.RemoteAddr(), info.RemoteAddr)
	}
	payload := make([]byte, 1<<20+17)
	rand.Read(payload)
	go func() {
		conn.Write(payload)
		conn.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	want := append([]byte("route:pg1|"), payload...)
	if !bytes.Equal(got, want) {
		t.Fatalf("echo returned %d bytes, want %d (equal: false)", len(got), len(want))
	}
	if _, err := conn.Write([]byte("x")); err == nil {
		t.Error("Write after CloseWrite succeeded")
	}
	if err := conn.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := conn.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close = %v, want net.ErrClosed", err)
	}
}

func TestDialUnknownAgent(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, nil)
	_, err := srv.Dial(context.Background(), "nobody", nil)
	if !IsNotConnected(err) {
		t.Fatalf("Dial unknown agent = %v, want NotConnectedError", err)
	}
	t.Logf("error text: %v", err)
}

func TestDialCancelledContext(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, nil)
	startAgent(t, pki, "db1", []string{srv.addr}, nil)
	waitFor(t, "agent", func() bool { return srv.connected("db1") == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := srv.Dial(ctx, "db1", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with cancelled ctx = %v", err)
	}
	// A live context with a deadline goes through the cancellable path.
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := srv.Dial(ctx, "db1", []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestAgentWithForeignCAIsRefused(t *testing.T) {
	pki, other := newPKI(t), newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, nil)
	ag := startAgent(t, pki, "db1", []string{srv.addr}, func(a *Agent) {
		a.Signer = other.agentSigner(t, "db1", "Db", time.Hour)
	})
	waitFor(t, "refusal logged", func() bool { return srv.logged("refused agent", "unrecognized authority") })
	waitFor(t, "agent sees failure", func() bool { return strings.Contains(ag.lastError(), "unable to authenticate") })
	if n := len(srv.Agents()); n != 0 {
		t.Fatalf("registry has %d agents, want 0", n)
	}
}

func TestProxyWithForeignCAIsRefused(t *testing.T) {
	pki, other := newPKI(t), newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, func(s *Server) { s.HostSigner = other.hostSigner(t, "proxy1") })
	ag := startAgent(t, pki, "db1", []string{srv.addr}, nil)
	waitFor(t, "agent refuses proxy", func() bool { return strings.Contains(ag.lastError(), "not signed by a trusted host CA") })
	if n := len(srv.Agents()); n != 0 {
		t.Fatalf("registry has %d agents, want 0", n)
	}
}

func TestProxyPrincipalMustMatchDialedHost(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, func(s *Server) {
		s.HostSigner = pki.hostSigner(t, "proxy1", "proxy1", "proxy.example.com")
	})
	ag := startAgent(t, pki, "db1", []string{srv.addr}, nil)
	waitFor(t, "principal refusal", func() bool { return strings.Contains(ag.lastError(), "not in the set of valid principals") })

	// CheckProxy replaces the principal check.
	var checked atomic.Int32
	ag2 := startAgent(t, pki, "db2", []string{srv.addr}, func(a *Agent) {
		a.CheckProxy = func(addr string, cert *ssh.Certificate) error {
			if cert.KeyId != "proxy1" || addr != srv.addr {
				return errors.New("unexpected proxy")
			}
			checked.Add(1)
			return nil
		}
	})
	waitFor(t, "agent with CheckProxy connects", func() bool { return len(ag2.connectedTo()) == 1 })
	if checked.Load() == 0 {
		t.Fatal("CheckProxy was not called")
	}
}

func TestExpiredAgentCertIsRefused(t *testing.T) {
	pki := newPKI(t)
	clock := newManualClock(time.Now().Add(2 * time.Hour))
	srv := startServer(t, pki, "proxy1", nil, func(s *Server) { s.Clock = clock.Now })
	ag := startAgent(t, pki, "db1", []string{srv.addr}, nil) // cert valid for 1h
	waitFor(t, "expiry refusal logged", func() bool { return srv.logged("refused agent", "expired") })
	if len(ag.connectedTo()) != 0 || len(srv.Agents()) != 0 {
		t.Fatal("agent with expired certificate got in")
	}
}

func TestAgentDroppedWhenCertExpiresAndRenewedCertUsed(t *testing.T) {
	pki := newPKI(t)
	clock := newManualClock(time.Now())
	srv := startServer(t, pki, "proxy1", nil, func(s *Server) { s.Clock = clock.Now })
	short := pki.agentSigner(t, "db1", "Db", 10*time.Minute)
	renewed := pki.agentSigner(t, "db1", "Db", 2*time.Hour)
	var current atomicSigner
	current.set(short)
	startAgent(t, pki, "db1", []string{srv.addr}, func(a *Agent) { a.Signer = nil; a.GetSigner = current.get })
	waitFor(t, "agent", func() bool { return srv.connected("db1") == 1 })
	first := srv.Agents()[0].CertSerial

	current.set(renewed)
	clock.Advance(30 * time.Minute)
	waitFor(t, "reconnect with the renewed certificate", func() bool {
		list := srv.Agents()
		return len(list) == 1 && list[0].CertSerial != first
	})
}

func TestWrongRoleIsRefused(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, nil)
	startAgent(t, pki, "db1", []string{srv.addr}, func(a *Agent) {
		a.Signer = pki.agentSigner(t, "db1", "Proxy", time.Hour)
	})
	waitFor(t, "role refusal", func() bool { return srv.logged("refused agent", `role "Proxy"`) })
}

func TestAgentMustLogInAsItsHostID(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, nil)
	startAgent(t, pki, "db2", []string{srv.addr}, func(a *Agent) {
		a.Signer = pki.agentSigner(t, "db1", "Db", time.Hour) // cert for db1
	})
	waitFor(t, "principal refusal", func() bool { return srv.logged("refused agent", "not in the set of valid principals") })
}

func TestProxyRestartOnSameAddress(t *testing.T) {
	pki := newPKI(t)
	l := listen(t, "")
	addr := l.Addr().String()
	srv := startServer(t, pki, "proxy1", l, nil)
	ag := startAgent(t, pki, "db1", []string{addr}, func(a *Agent) { a.Backoff = Backoff{} }) // production backoff
	waitFor(t, "first tunnel", func() bool { return srv.connected("db1") == 1 })

	srv.stop(t)
	start := time.Now()
	srv2 := startServer(t, pki, "proxy1", listen(t, addr), nil)
	waitFor(t, "tunnel to the new proxy", func() bool { return srv2.connected("db1") == 1 })
	t.Logf("agent back %v after the proxy restarted (backoff base 250ms, full jitter)", time.Since(start).Round(time.Millisecond))

	c, err := srv2.Dial(context.Background(), "db1", []byte("again"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "again" {
		t.Fatalf("read %q, %v", buf, err)
	}
	_ = ag
}

func TestDiscoveryTwoProxies(t *testing.T) {
	pki := newPKI(t)
	a := startServer(t, pki, "proxyA", nil, nil)
	b := startServer(t, pki, "proxyB", nil, nil)
	peers := []Peer{{ID: "proxyA", Addr: a.addr}, {ID: "proxyB", Addr: b.addr}}
	a.SetPeers(peers)
	b.SetPeers(peers)
	ag := startAgent(t, pki, "db1", []string{a.addr}, nil)
	waitFor(t, "tunnels to both proxies", func() bool {
		return slices.Equal(ag.connectedTo(), []string{"proxyA", "proxyB"})
	})
	waitFor(t, "both registries", func() bool { return a.connected("db1") == 1 && b.connected("db1") == 1 })
	for _, st := range ag.Status() {
		if st.Addr == b.addr && !st.Discovered {
			t.Errorf("status of %s: Discovered = false", st.Addr)
		}
	}
	c, err := b.Dial(context.Background(), "db1", []byte("via B"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	// A proxy that leaves the list and goes away is forgotten.
	a.SetPeers([]Peer{{ID: "proxyA", Addr: a.addr}})
	b.stop(t)
	waitFor(t, "discovered proxy forgotten", func() bool { return len(ag.Status()) == 1 })
}

func TestStoppedAgentLeavesRegistry(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, nil)
	ag := startAgent(t, pki, "db1", []string{srv.addr}, nil)
	waitFor(t, "agent", func() bool { return srv.connected("db1") == 1 })
	ag.stop()
	took := waitFor(t, "agent gone", func() bool { return srv.connected("db1") == 0 })
	t.Logf("cleanly stopped agent left the registry after %v", took)
	waitFor(t, "disconnect event", func() bool {
		return slices.Equal(srv.events.types("db1"), []AgentEventType{AgentConnected, AgentMetadataChanged, AgentDisconnected})
	})
}

func TestSilentAgentDroppedByKeepalive(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, func(s *Server) {
		s.KeepAliveInterval = 50 * time.Millisecond
		s.KeepAliveCount = 3
	})
	relay := newRelay(t, srv.addr)
	ag := startAgent(t, pki, "db1", []string{relay.addr()}, func(a *Agent) {
		a.KeepAliveInterval = time.Hour // only the proxy's probes matter here
		a.HandshakeTimeout = 200 * time.Millisecond
	})
	waitFor(t, "agent", func() bool { return srv.connected("db1") == 1 })
	relay.freeze() // the agent vanishes without closing its TCP connection
	took := waitFor(t, "silent agent dropped", func() bool { return srv.connected("db1") == 0 })
	t.Logf("silent agent left the registry %v after it went quiet (interval 50ms, count 3)", took)
	_ = ag
}

func TestSilentProxyDetectedByAgent(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, func(s *Server) { s.KeepAliveInterval = time.Hour })
	relay := newRelay(t, srv.addr)
	ag := startAgent(t, pki, "db1", []string{relay.addr()}, func(a *Agent) {
		a.KeepAliveInterval = 50 * time.Millisecond
		a.HandshakeTimeout = 200 * time.Millisecond
	})
	waitFor(t, "agent", func() bool { return len(ag.connectedTo()) == 1 })
	relay.freeze()
	took := waitFor(t, "agent notices", func() bool { return len(ag.connectedTo()) == 0 })
	t.Logf("agent dropped the silent proxy after %v", took)
}

func TestHandshakeTimeoutCutsOffBadClients(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, func(s *Server) { s.HandshakeTimeout = 300 * time.Millisecond })

	opened := time.Now()
	garbage, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	garbage.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))

	half, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.Write([]byte("SSH-2.0-stuck\r\n")) // version, then nothing

	// A real agent gets through while both are hanging.
	ag := startAgent(t, pki, "db1", []string{srv.addr}, nil)
	waitFor(t, "agent", func() bool { return len(ag.connectedTo()) == 1 })

	for name, c := range map[string]net.Conn{"garbage": garbage, "half-handshake": half} {
		c.SetReadDeadline(time.Now().Add(20 * time.Second)) // hang guard
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s client was never cut off", name)
		}
		t.Logf("%s client cut off (read ended with %v) %v after it connected (timeout 300ms)", name, err, time.Since(opened).Round(time.Millisecond))
	}
}

func TestHandshakeLimitQueuesAndFrees(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, func(s *Server) {
		s.HandshakeTimeout = 300 * time.Millisecond
		s.MaxConcurrentHandshakes = 1
	})
	stuck, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	stuck.Write([]byte("SSH-2.0-stuck\r\n"))
	ag := startAgent(t, pki, "db1", []string{srv.addr}, func(a *Agent) { a.HandshakeTimeout = 5 * time.Second })
	waitFor(t, "agent after the stuck handshake is cut off", func() bool { return len(ag.connectedTo()) == 1 })
}

func TestNewestConnectionWins(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, nil)
	tag := func(name string) func(context.Context, net.Conn, []byte) {
		return func(_ context.Context, c net.Conn, _ []byte) { c.Write([]byte(name)) }
	}
	old := startAgent(t, pki, "db1", []string{srv.addr}, func(a *Agent) { a.Handler = tag("old") })
	waitFor(t, "old", func() bool { return srv.connected("db1") == 1 })
	startAgent(t, pki, "db1", []string{srv.addr}, func(a *Agent) { a.Handler = tag("new") })
	waitFor(t, "both tracked", func() bool { return srv.connected("db1") == 2 })

	read := func() string {
		c, err := srv.Dial(context.Background(), "db1", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := read(); got != "new" {
		t.Fatalf("Dial reached %q, want the newest connection", got)
	}
	old.stop()
	waitFor(t, "old gone", func() bool { return srv.connected("db1") == 1 })
	if got := read(); got != "new" {
		t.Fatalf("Dial reached %q after the old one left", got)
	}
}

func TestSetMetadata(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, nil)
	ag := startAgent(t, pki, "db1", []string{srv.addr}, nil)
	waitFor(t, "agent", func() bool { return srv.connected("db1") == 1 })
	ag.SetMetadata([]byte("v2"))
	waitFor(t, "new metadata", func() bool {
		l := srv.Agents()
		return len(l) == 1 && string(l[0].Metadata) == "v2"
	})
}

func TestAuthChannelForwarded(t *testing.T) {
	pki := newPKI(t)
	authL := listen(t, "")
	defer authL.Close()
	go func() { // a stand-in Auth service: echo
		for {
			c, err := authL.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	srv := startServer(t, pki, "proxy1", nil, func(s *Server) {
		s.ChannelHandlers = map[string]ChannelHandler{ChannelAuth: ForwardTo(nil, "tcp", authL.Addr().String(), nil)}
	})
	ag := startAgent(t, pki, "db1", []string{srv.addr}, nil)
	if _, err := ag.DialAuth(context.Background()); !IsNotConnected(err) && err != nil {
		t.Logf("early DialAuth: %v", err)
	}
	waitFor(t, "agent", func() bool { return len(ag.connectedTo()) == 1 })

	c, err := ag.DialAuth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		c.Write([]byte("hello auth"))
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello auth" {
		t.Fatalf("auth echo = %q, %v", got, err)
	}

	if _, err := ag.OpenChannel(context.Background(), "portcullis-nope", nil); !IsRejected(err) {
		t.Fatalf("unknown channel type: %v, want RejectedError", err)
	}
}

func TestAgentDialAuthWithoutTunnel(t *testing.T) {
	a := &Agent{}
	if _, err := a.DialAuth(context.Background()); !IsNotConnected(err) {
		t.Fatalf("DialAuth before Run = %v", err)
	}
}

func TestShutdownDrainsSessions(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, nil)
	startAgent(t, pki, "db1", []string{srv.addr}, nil)
	waitFor(t, "agent", func() bool { return srv.connected("db1") == 1 })
	c, err := srv.Dial(context.Background(), "db1", nil)
	if err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	waitFor(t, "new sessions refused", func() bool {
		extra, err := srv.Dial(context.Background(), "db1", nil)
		if err == nil {
			extra.Close()
		}
		return errors.Is(err, ErrServerClosed)
	})
	if err := <-srv.serveErr; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	srv.serveErr <- ErrServerClosed
	// The open session still works during the drain.
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("session during drain: %q, %v", buf, err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a session open", err)
	default:
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if n := len(srv.Agents()); n != 0 {
		t.Fatalf("%d agents after Shutdown", n)
	}
}

func TestShutdownContextExpires(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, nil)
	startAgent(t, pki, "db1", []string{srv.addr}, nil)
	waitFor(t, "agent", func() bool { return srv.connected("db1") == 1 })
	c, err := srv.Dial(context.Background(), "db1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with a session open and ctx done = %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	pki := newPKI(t)
	l := listen(t, "")
	defer l.Close()
	for name, s := range map[string]*Server{
		"CAKeys":     {HostSigner: pki.hostSigner(t, "p")},
		"HostSigner": {CAKeys: []ssh.PublicKey{pki.caKey}},
		"host certificate": {
			HostSigner: newSSHKey(t), CAKeys: []ssh.PublicKey{pki.caKey},
		},
	} {
		if err := s.Serve(l); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Serve with %s missing = %v", name, err)
		}
	}
	for name, a := range map[string]*Agent{
		"ProxyAddrs": {},
		"HostID":     {ProxyAddrs: []string{"127.0.0.1:1"}},
		"Signer":     {ProxyAddrs: []string{"127.0.0.1:1"}, HostID: "h"},
		"HostCAKeys": {ProxyAddrs: []string{"127.0.0.1:1"}, HostID: "h", Signer: newSSHKey(t)},
		"Handler":    {ProxyAddrs: []string{"127.0.0.1:1"}, HostID: "h", Signer: newSSHKey(t), HostCAKeys: []ssh.PublicKey{pki.caKey}},
		"host:port": {ProxyAddrs: []string{"nope"}, HostID: "h", Signer: newSSHKey(t), HostCAKeys: []ssh.PublicKey{pki.caKey},
			Handler: echoHandler},
	} {
		if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Run with %s missing = %v", name, err)
		}
	}
}

func TestServeAfterClose(t *testing.T) {
	pki := newPKI(t)
	s := &Server{HostSigner: pki.hostSigner(t, "p"), CAKeys: []ssh.PublicKey{pki.caKey}}
	s.Close()
	l := listen(t, "")
	defer l.Close()
	if err := s.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close = %v", err)
	}
}
