package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"
)

// Defaults for the zero values of Server and Agent fields.
const (
	DefaultHandshakeTimeout        = 10 * time.Second
	DefaultKeepAliveInterval       = 2 * time.Second
	DefaultKeepAliveCount          = 3
	DefaultMaxConcurrentHandshakes = 128
	DefaultMaxMetadataSize         = 64 << 10
)

// ChannelHandler serves a channel an agent opened (see
// Server.ChannelHandlers). ctx ends when the agent's tunnel ends or the
// server closes. The Server closes conn when the handler returns.
type ChannelHandler func(ctx context.Context, agent AgentInfo, conn net.Conn)

// A Server is the proxy end of the reverse tunnel: it accepts agents' SSH
// connections, keeps a registry of them, and opens channels to them.
//
// Set the exported fields before the first call to Serve, Dial or SetPeers
// and do not change them afterwards.
type Server struct {
	// HostSigner is the proxy's SSH host key with its host certificate
	// (ssh.NewCertSigner over a certificate from ca.SignSSHHost). Agents
	// refuse a proxy that presents a plain key. Required unless
	// GetHostSigner is set.
	HostSigner ssh.Signer
	// GetHostSigner, if set, is called for each new agent connection and
	// takes precedence over HostSigner, so a renewed host certificate is
	// used without a restart.
	GetHostSigner func() (ssh.Signer, error)

	// CAKeys are the public keys of the host CA(s) whose user certificates
	// agents log in with; several during a CA rotation. Required unless
	// GetCAKeys is set.
	CAKeys []ssh.PublicKey
	// GetCAKeys, if set, is called for each authentication attempt and
	// takes precedence over CAKeys.
	GetCAKeys func() []ssh.PublicKey
	// AllowedRoles lists the system roles (certificate extension
	// RoleExtension) that may connect. Empty means just "Db".
	AllowedRoles []string
	// VerifyAgent, if set, runs after the built-in certificate checks
	// (e.g. to refuse locked agents); an error refuses the agent and is
	// logged.
	VerifyAgent func(cert *ssh.Certificate) error

	// ChannelHandlers serve channels that agents open, by channel type
	// (e.g. ChannelAuth, served by ForwardTo). Other types are refused.
	ChannelHandlers map[string]ChannelHandler
	// OnAgentEvent, if set, is called when an agent connection comes,
	// changes its metadata, or goes. Events of one connection arrive in
	// order, from that connection's goroutine: return quickly.
	OnAgentEvent func(AgentEvent)

	// HandshakeTimeout bounds the time from accepting a connection to the
	// end of the SSH handshake, including time queued behind
	// MaxConcurrentHandshakes. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxConcurrentHandshakes bounds SSH handshakes in progress (each
	// costs a few signature operations). Zero means
	// DefaultMaxConcurrentHandshakes.
	MaxConcurrentHandshakes int
	// KeepAliveInterval is how often the proxy probes each agent; an agent
	// that leaves KeepAliveCount probes in a row unanswered is dropped
	// (after at most (KeepAliveCount+1) x KeepAliveInterval). Zero means
	// DefaultKeepAliveInterval and DefaultKeepAliveCount.
	KeepAliveInterval time.Duration
	KeepAliveCount    int
	// MaxMetadataSize bounds the metadata an agent may advertise. Zero
	// means DefaultMaxMetadataSize.
	MaxMetadataSize int

	// Logger receives refusals and connection events. Nil means no logs.
	Logger *zap.Logger
	// Clock is used to check certificate validity and to stamp
	// connections. Nil means time.Now. Timers use real time.
	Clock func() time.Time
	// Rand is the SSH randomness source. Nil means crypto/rand.
	Rand io.Reader

	initOnce sync.Once
	initErr  error
	log      *zap.Logger
	sem      chan struct{}
	template *ssh.ServerConfig // without host key
	selfID   string            // KeyId of the host certificate
	pool     bufPool

	inShutdown atomic.Bool
	active     atomic.Int64 // open session channels (opened by Dial)
	wg         sync.WaitGroup

	mu           sync.Mutex
	closed       bool
	done         chan struct{} // closed by closeAll
	listeners    map[*net.Listener]struct{}
	pending      map[net.Conn]struct{} // in handshake
	agents       map[string][]*agentConn
	nextConnID   uint64
	peers        []Peer
	peersVersion uint64
}

// certExtraKey stores the agent's certificate in ssh.Permissions.ExtraData.
type certExtraKey struct{}

func (s *Server) init() error {
	s.initOnce.Do(func() { s.initErr = s.setup() })
	return s.initErr
}

func (s *Server) setup() error {
	s.log = s.Logger
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.log = s.log.Named("tunnel")
	s.done = make(chan struct{})
	s.listeners = make(map[*net.Listener]struct{})
	s.pending = make(map[net.Conn]struct{})
	s.agents = make(map[string][]*agentConn)
	n := s.MaxConcurrentHandshakes
	if n <= 0 {
		n = DefaultMaxConcurrentHandshakes
	}
	s.sem = make(chan struct{}, n)

	if s.GetCAKeys == nil && len(s.CAKeys) == 0 {
		return errors.New("tunnel: Server.CAKeys (or GetCAKeys) is required: the host CA public keys that sign agent certificates")
	}
	signer, err := s.hostSigner()
	if err != nil {
		return err
	}
	s.selfID = signer.PublicKey().(*ssh.Certificate).KeyId

	cfg := &ssh.ServerConfig{
		Config:            sshConfig(),
		PublicKeyCallback: s.authenticate,
		ServerVersion:     "SSH-2.0-portcullis-tunnel",
		MaxAuthTries:      3,
	}
	cfg.Rand = s.Rand
	s.template = cfg
	return nil
}

func (s *Server) hostSigner() (ssh.Signer, error) {
	signer := s.HostSigner
	if s.GetHostSigner != nil {
		var err error
		if signer, err = s.GetHostSigner(); err != nil {
			return nil, fmt.Errorf("tunnel: Server.GetHostSigner failed: %w", err)
		}
	}
	if signer == nil {
		return nil, errors.New("tunnel: Server.HostSigner (or GetHostSigner) is required: the proxy's SSH host certificate signer")
	}
	cert, ok := signer.PublicKey().(*ssh.Certificate)
	if !ok || cert.CertType != ssh.HostCert {
		return nil, errors.New("tunnel: Server.HostSigner must hold an SSH host certificate (ssh.NewCertSigner); agents refuse a plain host key")
	}
	return signer, nil
}

func (s *Server) clock() time.Time {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Now()
}

func (s *Server) caKeys() []ssh.PublicKey {
	if s.GetCAKeys != nil {
		return s.GetCAKeys()
	}
	return s.CAKeys
}

func (s *Server) handshakeTimeout() time.Duration {
	if s.HandshakeTimeout > 0 {
		return s.HandshakeTimeout
	}
	return DefaultHandshakeTimeout
}

// authenticate is the ssh.ServerConfig.PublicKeyCallback: the agent must
// present a user certificate from a trusted CA, valid now, whose KeyId and
// principals name the SSH user it logs in as, with an allowed role.
func (s *Server) authenticate(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return nil, s.refuse(meta, nil, "it presented a plain key instead of a certificate")
	}
	checker := ssh.CertChecker{
		IsUserAuthority: func(auth ssh.PublicKey) bool { return keyIn(s.caKeys(), auth) },
		Clock:           s.clock,
	}
	if _, err := checker.Authenticate(meta, key); err != nil {
		return nil, s.refuse(meta, cert, err.Error())
	}
	if len(cert.ValidPrincipals) == 0 || cert.KeyId != meta.User() {
		return nil, s.refuse(meta, cert, "the certificate's key ID and principals do not name the agent's host ID")
	}
	role := cert.Permissions.Extensions[RoleExtension]
	allowed := s.AllowedRoles
	if len(allowed) == 0 {
		allowed = []string{"Db"}
	}
	if !slices.Contains(allowed, role) {
		return nil, s.refuse(meta, cert, fmt.Sprintf("role %q may not open a tunnel", role))
	}
	if s.VerifyAgent != nil {
		if err := s.VerifyAgent(cert); err != nil {
			return nil, s.refuse(meta, cert, err.Error())
		}
	}
	return &ssh.Permissions{ExtraData: map[any]any{certExtraKey{}: cert}}, nil
}

func (s *Server) refuse(meta ssh.ConnMetadata, cert *ssh.Certificate, reason string) error {
	fields := []zap.Field{
		zap.String("agent", meta.User()),
		zap.Stringer("remote", meta.RemoteAddr()),
		zap.String("reason", reason),
	}
	if cert != nil {
		fields = append(fields, zap.Uint64("cert_serial", cert.Serial), zap.String("cert_key_id", cert.KeyId))
	}
	s.log.Warn("refused agent", fields...)
	return fmt.Errorf("tunnel: agent %q refused: %s", meta.User(), reason)
}

// Serve accepts agent connections on l until Shutdown or Close, running each
// SSH handshake on its own goroutine. It always returns a non-nil error:
// ErrServerClosed after Shutdown or Close, or a configuration or accept error.
// l may yield TLS connections (e.g. from an ALPN router).
func (s *Server) Serve(l net.Listener) error {
	if err := s.init(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed || s.inShutdown.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[&l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, &l)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("delay", delay))
				select {
				case <-time.After(delay):
				case <-s.done:
				}
				continue
			}
			return err
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.pending[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handshake(c)
	}
}

// handshake runs one agent's SSH handshake under the handshake deadline and
// the concurrency limit, then registers the agent.
func (s *Server) handshake(c net.Conn) {
	defer s.wg.Done()
	timeout := s.handshakeTimeout()
	c.SetDeadline(time.Now().Add(timeout))
	fail := func(msg string, err error) {
		s.mu.Lock()
		delete(s.pending, c)
		s.mu.Unlock()
		c.Close()
		s.log.Info(msg, zap.Stringer("remote", c.RemoteAddr()), zap.Error(err))
	}

	wait := time.NewTimer(timeout)
	select {
	case s.sem <- struct{}{}:
		wait.Stop()
	case <-wait.C:
		fail("agent handshake not started in time: too many handshakes in progress", nil)
		return
	case <-s.done:
		fail("server closing", nil)
		return
	}
	cfg, err := s.connConfig()
	if err != nil {
		<-s.sem
		fail("cannot serve agent", err)
		return
	}
	sconn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	<-s.sem
	if err != nil {
		fail("agent handshake failed", err)
		return
	}
	c.SetDeadline(time.Time{})

	cert, _ := sconn.Permissions.ExtraData[certExtraKey{}].(*ssh.Certificate)
	sconn.Permissions.ExtraData = nil // keep only what AgentInfo needs
	ac := &agentConn{conn: sconn}
	ac.ctx, ac.cancel = context.WithCancel(context.Background())
	ac.info = AgentInfo{
		ID:          sconn.User(),
		RemoteAddr:  sconn.RemoteAddr(),
		ConnectedAt: s.clock(),
	}
	if cert != nil {
		ac.info.Role = cert.Permissions.Extensions[RoleExtension]
		ac.info.CertSerial = cert.Serial
		if cert.ValidBefore != ssh.CertTimeInfinity {
			ac.info.CertExpires = time.Unix(int64(cert.ValidBefore), 0)
		}
	}
	if !s.register(ac, c) {
		ac.cancel()
		sconn.Close()
		return
	}
	// A fresh goroutine: the handshake grew this one's stack.
	go s.serveAgent(ac, chans, reqs)
}

func (s *Server) connConfig() (*ssh.ServerConfig, error) {
	signer, err := s.hostSigner()
	if err != nil {
		return nil, err
	}
	cfg := *s.template
	cfg.AddHostKey(signer)
	return &cfg, nil
}

func agentFields(info AgentInfo, err error) []zap.Field {
	f := []zap.Field{zap.String("agent", info.ID), zap.Uint64("conn", info.ConnID), zap.Stringer("remote", info.RemoteAddr)}
	if err != nil {
		f = append(f, zap.Error(err))
	}
	return f
}

// serveAgent runs for the life of one agent connection: it answers the
// agent's global requests and channel opens, and unregisters it at the end.
func (s *Server) serveAgent(ac *agentConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	defer s.wg.Done()
	log := s.log.With(agentFields(ac.info, nil)...)
	log.Info("agent connected", zap.String("role", ac.info.Role))
	s.emit(AgentConnected, ac.info)

	interval, count := s.KeepAliveInterval, s.KeepAliveCount
	if interval <= 0 {
		interval = DefaultKeepAliveInterval
	}
	if count <= 0 {
		count = DefaultKeepAliveCount
	}
	ac.ka = &keepAlive{
		conn:     ac.conn,
		interval: interval,
		count:    int32(count),
		check: func() string {
			if exp := ac.info.CertExpires; !exp.IsZero() && !s.clock().Before(exp) {
				return "agent certificate expired"
			}
			return ""
		},
		dead: func(reason string) { log.Info("dropping agent", zap.String("reason", reason)) },
	}
	ac.ka.start()
	s.sendPeers(ac)

	maxMD := s.MaxMetadataSize
	if maxMD <= 0 {
		maxMD = DefaultMaxMetadataSize
	}
	for chans != nil || reqs != nil {
		select {
		case nc, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			s.agentChannel(ac, nc)
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			switch r.Type {
			case requestKeepAlive:
				r.Reply(true, nil)
			case requestMetadata:
				if len(r.Payload) > maxMD {
					log.Warn("agent metadata too large; ignored", zap.Int("size", len(r.Payload)), zap.Int("max", maxMD))
					r.Reply(false, nil)
					continue
				}
				info := s.setMetadata(ac, slices.Clone(r.Payload))
				r.Reply(true, nil)
				s.emit(AgentMetadataChanged, info)
			default:
				r.Reply(false, nil)
			}
		}
	}
	ac.ka.stop()
	ac.cancel()
	info := s.unregister(ac)
	log.Info("agent disconnected")
	s.emit(AgentDisconnected, info)
}

// agentChannel serves a channel the agent opened.
func (s *Server) agentChannel(ac *agentConn, nc ssh.NewChannel) {
	h := s.ChannelHandlers[nc.ChannelType()]
	if h == nil {
		nc.Reject(ssh.UnknownChannelType, "this proxy does not serve "+nc.ChannelType()+" channels")
		return
	}
	if s.inShutdown.Load() {
		nc.Reject(ssh.ResourceShortage, "proxy is shutting down; retry through another proxy")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	// Not counted in active: an agent's own channels (the forwarded Auth
	// API) live as long as its connection, and Shutdown does not wait
	// for them.
	conn := newChanConn(ch, reqs, ac.conn.LocalAddr(), ac.conn.RemoteAddr(), &s.pool, nil)
	s.mu.Lock()
	info := ac.info
	s.mu.Unlock()
	go func() {
		defer conn.Close()
		h(ac.ctx, info, conn)
	}()
}

// Dial opens a session channel to the agent with the given host ID and
// returns it as a net.Conn (which also has CloseWrite). extra travels as the
// channel's extra data: whatever the agent needs to route the session. The
// agent's newest connection is tried first, then older ones. An agent that
// is not connected gives a *NotConnectedError; an agent that refuses the
// channel gives a *RejectedError.
func (s *Server) Dial(ctx context.Context, agentID string, extra []byte) (net.Conn, error) {
	if err := s.init(); err != nil {
		return nil, err
	}
	if s.inShutdown.Load() {
		return nil, ErrServerClosed
	}
	conns := s.connsFor(agentID)
	if len(conns) == 0 {
		return nil, &NotConnectedError{Target: agentID}
	}
	var lastErr error
	for _, ac := range conns {
		s.active.Add(1)
		c, err := openChannel(ctx, ac.conn, ChannelSession, extra, &s.pool, func() { s.active.Add(-1) })
		if err == nil {
			return c, nil
		}
		if IsRejected(err) || ctx.Err() != nil {
			return nil, err
		}
		lastErr = err
	}
	return nil, &NotConnectedError{Target: agentID, Err: lastErr}
}

// Shutdown stops accepting agents and new sessions, waits until every
// session channel (opened by Dial) has been closed, then closes the agents'
// connections, and with them the channels agents opened (such as the
// forwarded Auth API, which would otherwise stay open as long as the
// agent). If ctx ends first it returns ctx's error and leaves the rest to
// Close.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	s.inShutdown.Store(true)
	s.closeListenersAndPending()
	poll := time.Millisecond
	t := time.NewTimer(poll)
	defer t.Stop()
	for s.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			poll = min(2*poll, 100*time.Millisecond)
			t.Reset(poll)
		}
	}
	return s.Close()
}

// Close stops the server at once: listeners, handshakes in progress and every
// agent connection (with its channels) are closed. It waits for the
// server's own goroutines; channel handlers see their context end and their
// connection closed but are not waited for.
func (s *Server) Close() error {
	if err := s.init(); err != nil {
		return err
	}
	s.inShutdown.Store(true)
	err := s.closeListenersAndPending()
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	var all []*agentConn
	for _, list := range s.agents {
		all = append(all, list...)
	}
	s.mu.Unlock()
	for _, ac := range all {
		ac.conn.Close()
	}
	s.wg.Wait()
	return err
}

func (s *Server) closeListenersAndPending() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for l := range s.listeners {
		if cerr := (*l).Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = cerr
		}
		delete(s.listeners, l)
	}
	for c := range s.pending {
		c.Close()
	}
	return err
}
