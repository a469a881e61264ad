package tunnel

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"
)

// An Agent is the database-agent end of the reverse tunnel. It dials out to
// every proxy it knows, keeps each tunnel up (reconnecting with Backoff),
// advertises Metadata, and hands each session channel the proxy opens to
// Handler.
//
// Set the exported fields before Run and do not change them afterwards
// (use SetMetadata for metadata).
type Agent struct {
	// ProxyAddrs are "host:port" tunnel endpoints to keep a tunnel to for
	// as long as the agent runs (e.g. a load balancer in front of several
	// proxies). Proxies learned from them are added and dropped
	// automatically. Required.
	ProxyAddrs []string
	// HostID is the agent's host ID: the SSH user it logs in as, which
	// must be its certificate's KeyId and principal. Required.
	HostID string
	// Signer holds the agent's key with its SSH user certificate
	// (ssh.NewCertSigner over a certificate from ca.SignSSHAgent).
	// Required unless GetSigner is set.
	Signer ssh.Signer
	// GetSigner, if set, is called before each connection attempt and
	// takes precedence over Signer, so a renewed certificate is used on
	// the next reconnect.
	GetSigner func() (ssh.Signer, error)
	// HostCAKeys are the host CA public keys that must have signed a
	// proxy's SSH host certificate. Required unless GetHostCAKeys is set.
	HostCAKeys []ssh.PublicKey
	// GetHostCAKeys, if set, is called for each handshake and takes
	// precedence over HostCAKeys.
	GetHostCAKeys func() []ssh.PublicKey
	// CheckProxy, if set, replaces the default principal check on a
	// proxy's host certificate (the signature, type, and validity are
	// always checked). By default the host part of the dialed address must
	// be one of the certificate's principals, as in OpenSSH; a
	// certificate without principals is refused.
	CheckProxy func(addr string, cert *ssh.Certificate) error

	// Handler serves each session channel a proxy opens (Server.Dial),
	// on its own goroutine. extra is the proxy's routing blob. The Agent
	// closes conn when Handler returns; ctx ends when Run returns.
	// Required.
	Handler func(ctx context.Context, conn net.Conn, extra []byte)
	// Metadata is the opaque blob advertised to every proxy on connect
	// (e.g. the databases this agent serves). See SetMetadata.
	Metadata []byte

	// Dialer opens the transport to a proxy; it may wrap the connection in
	// TLS (e.g. with ALPN "portcullis-tunnel"). Nil means a net.Dialer.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// HandshakeTimeout bounds dialing plus the SSH handshake. Zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// KeepAliveInterval and KeepAliveCount: when a proxy has sent nothing
	// for two KeepAliveIntervals the agent probes it itself, and drops the
	// tunnel (then reconnects) after KeepAliveCount unanswered probes.
	// Zero means the defaults (DefaultKeepAliveInterval,
	// DefaultKeepAliveCount).
	KeepAliveInterval time.Duration
	KeepAliveCount    int
	// Backoff is the reconnect policy; the zero value is 250ms..30s.
	Backoff Backoff
	// Rand draws the backoff jitter. Nil means math/rand/v2's generator.
	Rand *rand.Rand
	// Logger receives connection events. Nil means no logs.
	Logger *zap.Logger
	// Clock is used to check the proxies' certificate validity. Nil means
	// time.Now. Timers use real time.
	Clock func() time.Time

	log   *zap.Logger
	pool  bufPool
	start time.Time // monotonic base for keepalive bookkeeping

	randMu sync.Mutex
	metaMu sync.Mutex // serializes metadata sends
	wg     sync.WaitGroup

	mu         sync.Mutex
	running    bool
	stopping   bool
	ctx        context.Context
	slots      map[string]*slot
	advertised map[*agentTunnel][]Peer
	metadata   []byte
}

// ProxyStatus describes the agent's tunnel to one proxy address.
type ProxyStatus struct {
	Addr string
	// ProxyID is the proxy's host ID from its certificate; empty until
	// the first handshake.
	ProxyID string
	// Connected reports a live tunnel, established at Since.
	Connected bool
	Since     time.Time
	// Discovered reports an address learned from a proxy rather than
	// configured in ProxyAddrs.
	Discovered bool
	// LastError says why the last attempt or tunnel failed; empty if none.
	LastError string
}

// slot is one proxy address the agent keeps a tunnel to; one goroutine each.
type slot struct {
	addr       string
	discovered bool
	// guarded by Agent.mu
	t       *agentTunnel
	proxyID string
	lastErr error
}

// agentTunnel is one live SSH connection to a proxy.
type agentTunnel struct {
	conn        ssh.Conn
	slot        *slot
	proxyID     string
	connectedAt time.Time
	lastHeard   atomicDuration
	ka          *keepAlive
}

func (a *Agent) check() error {
	switch {
	case len(a.ProxyAddrs) == 0:
		return errors.New("tunnel: Agent.ProxyAddrs is required: at least one proxy tunnel address")
	case a.HostID == "":
		return errors.New("tunnel: Agent.HostID is required: the host ID its certificate names")
	case a.Signer == nil && a.GetSigner == nil:
		return errors.New("tunnel: Agent.Signer (or GetSigner) is required: the agent's SSH certificate signer")
	case len(a.HostCAKeys) == 0 && a.GetHostCAKeys == nil:
		return errors.New("tunnel: Agent.HostCAKeys (or GetHostCAKeys) is required: the host CA keys that sign proxy certificates")
	case a.Handler == nil:
		return errors.New("tunnel: Agent.Handler is required: it serves the sessions proxies open")
	}
	for _, addr := range a.ProxyAddrs {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("tunnel: Agent.ProxyAddrs entry %q is not host:port: %w", addr, err)
		}
	}
	return nil
}

// Run keeps tunnels to the proxies until ctx ends, then closes them and
// returns ctx's error. It returns at once with an error if the configuration
// is incomplete or Run was already called. Handlers still running when Run
// returns see their ctx end and their connection closed.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.check(); err != nil {
		return err
	}
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("tunnel: Agent.Run may be called only once")
	}
	a.running = true
	a.log = a.Logger
	if a.log == nil {
		a.log = zap.NewNop()
	}
	a.log = a.log.Named("tunnel").With(zap.String("host_id", a.HostID))
	a.start = time.Now()
	a.ctx = ctx
	a.slots = make(map[string]*slot)
	a.advertised = make(map[*agentTunnel][]Peer)
	if a.metadata == nil {
		a.metadata = slices.Clone(a.Metadata)
	}
	for _, addr := range a.ProxyAddrs {
		if _, ok := a.slots[addr]; !ok {
			a.startSlotLocked(addr, false)
		}
	}
	a.mu.Unlock()

	<-ctx.Done()
	a.mu.Lock()
	a.stopping = true
	var live []ssh.Conn
	for _, s := range a.slots {
		if s.t != nil {
			live = append(live, s.t.conn)
		}
	}
	a.mu.Unlock()
	for _, c := range live {
		c.Close()
	}
	a.wg.Wait()
	return ctx.Err()
}

func (a *Agent) startSlotLocked(addr string, discovered bool) {
	if a.stopping {
		return
	}
	s := &slot{addr: addr, discovered: discovered}
	a.slots[addr] = s
	a.wg.Add(1)
	go a.runSlot(s)
}

// runSlot keeps one proxy address connected: connect, serve until the
// tunnel drops, wait out the backoff, repeat. A discovered address is given
// up once no live proxy advertises it or its proxy is reached another way.
func (a *Agent) runSlot(s *slot) {
	defer a.wg.Done()
	ctx := a.ctx
	backoff := a.Backoff.withDefaults()
	log := a.log.With(zap.String("proxy", s.addr))
	failures := 0
	for {
		if ctx.Err() != nil {
			return
		}
		if !a.keepSlot(s) {
			log.Info("forgetting proxy address no longer advertised or already connected")
			return
		}
		lived, err := a.connect(ctx, s, log)
		if ctx.Err() != nil {
			return
		}
		if lived >= backoff.StableAfter {
			failures = 0
		}
		delay := backoff.Delay(failures, a.randFloat())
		failures++
		a.mu.Lock()
		s.lastErr = err
		a.mu.Unlock()
		log.Info("tunnel down; reconnecting", zap.Error(err), zap.Duration("lived", lived), zap.Duration("retry_in", delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// keepSlot reports whether s should keep trying, removing it if not.
func (a *Agent) keepSlot(s *slot) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !s.discovered {
		return true
	}
	id, advertised := s.proxyID, false
	for _, peers := range a.advertised {
		for _, p := range peers {
			if p.Addr == s.addr {
				advertised = true
				if id == "" {
					id = p.ID
				}
			}
		}
	}
	if advertised && (id == "" || !a.connectedToLocked(id, s)) {
		return true
	}
	delete(a.slots, s.addr)
	return false
}

// connectedToLocked reports whether a slot other than except holds a live
// tunnel to the proxy with the given ID.
func (a *Agent) connectedToLocked(proxyID string, except *slot) bool {
	for _, o := range a.slots {
		if o != except && o.t != nil && o.t.proxyID == proxyID {
			return true
		}
	}
	return false
}

func (a *Agent) randFloat() float64 {
	if a.Rand == nil {
		return rand.Float64()
	}
	a.randMu.Lock()
	defer a.randMu.Unlock()
	return a.Rand.Float64()
}

func (a *Agent) clock() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

func (a *Agent) signer() (ssh.Signer, error) {
	if a.GetSigner != nil {
		s, err := a.GetSigner()
		if err != nil {
			return nil, fmt.Errorf("tunnel: Agent.GetSigner failed: %w", err)
		}
		if s == nil {
			return nil, errors.New("tunnel: Agent.GetSigner returned no signer")
		}
		return s, nil
	}
	return a.Signer, nil
}

func (a *Agent) hostCAKeys() []ssh.PublicKey {
	if a.GetHostCAKeys != nil {
		return a.GetHostCAKeys()
	}
	return a.HostCAKeys
}

func (a *Agent) dial(ctx context.Context, addr string) (net.Conn, error) {
	if a.Dialer != nil {
		return a.Dialer(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// checkProxy verifies a proxy's host certificate (see Agent.CheckProxy).
func (a *Agent) checkProxy(addr string, key ssh.PublicKey) (*ssh.Certificate, error) {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return nil, fmt.Errorf("tunnel: proxy %s presented a plain host key, not a host certificate", addr)
	}
	if cert.CertType != ssh.HostCert {
		return nil, fmt.Errorf("tunnel: proxy %s presented a user certificate as its host certificate", addr)
	}
	if !keyIn(a.hostCAKeys(), cert.SignatureKey) {
		return nil, fmt.Errorf("tunnel: proxy %s host certificate is not signed by a trusted host CA; check Agent.HostCAKeys", addr)
	}
	if cert.KeyId == "" {
		return nil, fmt.Errorf("tunnel: proxy %s host certificate has no key ID (host ID)", addr)
	}
	checker := ssh.CertChecker{Clock: a.clock}
	if a.CheckProxy != nil {
		principal := ""
		if len(cert.ValidPrincipals) > 0 {
			principal = cert.ValidPrincipals[0]
		}
		if err := checker.CheckCert(principal, cert); err != nil {
			return nil, fmt.Errorf("tunnel: proxy %s host certificate refused: %w", addr, err)
		}
		if err := a.CheckProxy(addr, cert); err != nil {
			return nil, fmt.Errorf("tunnel: proxy %s host certificate refused: %w", addr, err)
		}
		return cert, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if len(cert.ValidPrincipals) == 0 {
		return nil, fmt.Errorf("tunnel: proxy %s host certificate names no principals (valid for any host); refused", addr)
	}
	if err := checker.CheckCert(host, cert); err != nil {
		return nil, fmt.Errorf("tunnel: proxy %s host certificate refused: %w", addr, err)
	}
	return cert, nil
}

// duplicateError: the slot reached a proxy that another slot already holds a
// tunnel to (e.g. through a load balancer).
type duplicateError struct{ proxyID string }

func (e *duplicateError) Error() string {
	return fmt.Sprintf("tunnel: already connected to proxy %q through another address", e.proxyID)
}

// handshakeResult is what a successful dial and SSH handshake produce.
type handshakeResult struct {
	conn    ssh.Conn
	chans   <-chan ssh.NewChannel
	reqs    <-chan *ssh.Request
	proxyID string
	err     error
}

// handshake dials addr and runs the SSH handshake within HandshakeTimeout.
// It runs on a short-lived goroutine so that the signature work does not
// leave a grown stack on the tunnel's long-lived one.
func (a *Agent) handshake(ctx context.Context, addr string, log *zap.Logger) (r handshakeResult) {
	signer, err := a.signer()
	if err != nil {
		return handshakeResult{err: err}
	}
	timeout := a.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := a.dial(hctx, addr)
	if err != nil {
		return handshakeResult{err: fmt.Errorf("tunnel: cannot reach proxy %s: %w", addr, err)}
	}
	nc.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(hctx, func() { nc.Close() })

	var proxyCert *ssh.Certificate
	cfg := &ssh.ClientConfig{
		Config: sshConfig(),
		User:   a.HostID,
		Auth:   []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(addr string, _ net.Addr, key ssh.PublicKey) error {
			cert, err := a.checkProxy(addr, key)
			if err != nil {
				log.Warn("refused proxy", zap.Error(err))
				return err
			}
			proxyCert = cert
			return nil
		},
		HostKeyAlgorithms: hostCertAlgorithms(),
		ClientVersion:     "SSH-2.0-portcullis-tunnel",
	}
	conn, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if !stop() {
		if err == nil {
			conn.Close()
		}
		return handshakeResult{err: fmt.Errorf("tunnel: handshake with proxy %s did not finish in time: %w", addr, context.Cause(hctx))}
	}
	if err != nil {
		return handshakeResult{err: fmt.Errorf("tunnel: handshake with proxy %s failed: %w", addr, err)}
	}
	nc.SetDeadline(time.Time{})
	return handshakeResult{conn: conn, chans: chans, reqs: reqs, proxyID: proxyCert.KeyId}
}

// connect dials s.addr, runs the handshake and serves the tunnel until it
// ends. lived is how long the tunnel was up (zero if it never was).
func (a *Agent) connect(ctx context.Context, s *slot, log *zap.Logger) (lived time.Duration, err error) {
	rc := make(chan handshakeResult, 1)
	go func() { rc <- a.handshake(ctx, s.addr, log) }()
	h := <-rc
	if h.err != nil {
		return 0, h.err
	}
	conn, chans, reqs := h.conn, h.chans, h.reqs

	t := &agentTunnel{conn: conn, slot: s, proxyID: h.proxyID, connectedAt: time.Now()}
	if err := a.attach(t); err != nil {
		conn.Close()
		return 0, err
	}
	log.Info("tunnel up", zap.String("proxy_id", t.proxyID))
	t.lastHeard.set(time.Since(a.start))
	interval, count := a.KeepAliveInterval, a.KeepAliveCount
	if interval <= 0 {
		interval = DefaultKeepAliveInterval
	}
	if count <= 0 {
		count = DefaultKeepAliveCount
	}
	t.ka = &keepAlive{
		conn:     conn,
		interval: interval,
		count:    int32(count),
		heard: func(within time.Duration) bool {
			return time.Since(a.start)-t.lastHeard.get() < within
		},
		dead: func(reason string) { log.Info("dropping tunnel", zap.String("reason", reason)) },
	}
	t.ka.start()
	a.sendMetadata(t)

	for chans != nil || reqs != nil {
		select {
		case nc, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			a.proxyChannel(t, nc)
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			a.proxyRequest(t, r, log)
		}
	}
	t.ka.stop()
	err = conn.Wait()
	a.detach(t)
	return time.Since(t.connectedAt), fmt.Errorf("tunnel: connection to proxy %s closed: %w", s.addr, err)
}

func (a *Agent) attach(t *agentTunnel) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	t.slot.proxyID = t.proxyID
	if a.stopping {
		return context.Canceled
	}
	if a.connectedToLocked(t.proxyID, t.slot) {
		return &duplicateError{proxyID: t.proxyID}
	}
	t.slot.t = t
	t.slot.lastErr = nil
	return nil
}

func (a *Agent) detach(t *agentTunnel) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t.slot.t = nil
	delete(a.advertised, t)
}

func (a *Agent) proxyRequest(t *agentTunnel, r *ssh.Request, log *zap.Logger) {
	t.lastHeard.set(time.Since(a.start))
	switch r.Type {
	case requestKeepAlive:
		r.Reply(true, nil)
	case requestPeers:
		peers, err := decodePeers(r.Payload)
		if err != nil {
			log.Warn("ignored peer list", zap.Error(err))
			r.Reply(false, nil)
			return
		}
		r.Reply(true, nil)
		a.learnPeers(t, peers)
	default:
		r.Reply(false, nil)
	}
}

// learnPeers records the proxies t's proxy advertised and starts a tunnel to
// each one the agent is not connected to yet.
func (a *Agent) learnPeers(t *agentTunnel, peers []Peer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t.slot.t != t {
		return // already detached
	}
	a.advertised[t] = peers
	for _, p := range peers {
		if _, ok := a.slots[p.Addr]; ok {
			continue
		}
		if p.ID != "" && a.connectedToLocked(p.ID, nil) {
			continue
		}
		if _, _, err := net.SplitHostPort(p.Addr); err != nil {
			continue
		}
		a.log.Info("learned proxy", zap.String("proxy", p.Addr), zap.String("proxy_id", p.ID))
		a.startSlotLocked(p.Addr, true)
	}
}

func (a *Agent) proxyChannel(t *agentTunnel, nc ssh.NewChannel) {
	if nc.ChannelType() != ChannelSession {
		nc.Reject(ssh.UnknownChannelType, "this agent does not serve "+nc.ChannelType()+" channels")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	extra := nc.ExtraData()
	conn := newChanConn(ch, reqs, t.conn.LocalAddr(), t.conn.RemoteAddr(), &a.pool, nil)
	go func() {
		defer conn.Close()
		a.Handler(a.ctx, conn, extra)
	}()
}

// SetMetadata replaces the advertised metadata and sends it to every proxy
// the agent is connected to (and to every proxy it connects to later).
func (a *Agent) SetMetadata(md []byte) {
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	a.mu.Lock()
	a.metadata = slices.Clone(md)
	var live []*agentTunnel
	for _, s := range a.slots {
		if s.t != nil {
			live = append(live, s.t)
		}
	}
	a.mu.Unlock()
	for _, t := range live {
		t.conn.SendRequest(requestMetadata, false, md)
	}
}

func (a *Agent) sendMetadata(t *agentTunnel) {
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	a.mu.Lock()
	md := a.metadata
	a.mu.Unlock()
	t.conn.SendRequest(requestMetadata, false, md)
}

// Status lists the proxy addresses the agent keeps tunnels to, sorted by
// address. Empty before Run.
func (a *Agent) Status() []ProxyStatus {
	a.mu.Lock()
	out := make([]ProxyStatus, 0, len(a.slots))
	for _, s := range a.slots {
		st := ProxyStatus{Addr: s.addr, ProxyID: s.proxyID, Discovered: s.discovered}
		if s.t != nil {
			st.Connected = true
			st.Since = s.t.connectedAt
		}
		if s.lastErr != nil {
			st.LastError = s.lastErr.Error()
		}
		out = append(out, st)
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y ProxyStatus) int {
		switch {
		case x.Addr < y.Addr:
			return -1
		case x.Addr > y.Addr:
			return 1
		}
		return 0
	})
	return out
}

// OpenChannel opens a channel of the given type to a proxy over the newest
// live tunnel (falling back to older ones) and returns it as a net.Conn.
// With no live tunnel it returns a *NotConnectedError.
func (a *Agent) OpenChannel(ctx context.Context, chanType string, extra []byte) (net.Conn, error) {
	a.mu.Lock()
	var live []*agentTunnel
	for _, s := range a.slots {
		if s.t != nil {
			live = append(live, s.t)
		}
	}
	a.mu.Unlock()
	slices.SortFunc(live, func(x, y *agentTunnel) int { return y.connectedAt.Compare(x.connectedAt) })
	var lastErr error
	for _, t := range live {
		c, err := openChannel(ctx, t.conn, chanType, extra, &a.pool, nil)
		if err == nil {
			return c, nil
		}
		if IsRejected(err) || ctx.Err() != nil {
			return nil, err
		}
		lastErr = err
	}
	return nil, &NotConnectedError{Target: "proxy", Err: lastErr}
}

// DialAuth opens a ChannelAuth channel: a byte stream the proxy forwards to
// the Auth service. The agent authenticates to the Auth service end to end
// inside it (mTLS with its X.509 host certificate); the proxy only relays.
func (a *Agent) DialAuth(ctx context.Context) (net.Conn, error) {
	return a.OpenChannel(ctx, ChannelAuth, nil)
}
