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
)

// ErrRouterClosed is returned by [Router.Serve] after [Router.Close].
var ErrRouterClosed = errors.New("proxy: router closed")

// Defaults for the zero values of Router fields.
const (
	DefaultHandshakeTimeout        = 10 * time.Second
	DefaultMaxConcurrentHandshakes = 512
)

// routeBacklog is how many handshaken connections may wait for a route's
// Accept before hand-offs block (each in its own goroutine, bounded by
// HandshakeTimeout).
const routeBacklog = 32

// A Route says how the Router terminates TLS for the connections of one
// route, chosen by ALPN (see [Router.Handle]).
type Route struct {
	// ClientAuth is the route's client-certificate policy; the zero value
	// asks for no certificate. With tls.VerifyClientCertIfGiven or
	// tls.RequireAndVerifyClientCert, ClientCAs is required.
	ClientAuth tls.ClientAuthType
	// ClientCAs returns the CAs that verify client certificates. It is
	// called for each handshake on the route, so a CA rotation takes
	// effect at once. A nil pool refuses the handshake (it never falls
	// back to the system roots).
	ClientCAs func() *x509.CertPool
	// Default makes the route take connections whose client offers no
	// ALPN protocol, or none that has a route (HTTP clients that do not
	// speak ALPN). A router has at most one default route.
	Default bool
}

// A Router terminates TLS on the proxy's public port and hands each
// connection to the listener of the route registered for the ALPN
// protocol the client offers, so that any Serve(net.Listener) — an
// http.Server, a tunnel.Server, a database front end — runs behind one
// port. The connections those listeners return are *tls.Conn with the
// handshake done: their ConnectionState has the negotiated protocol, the
// peer certificates and the keying-material exporter.
//
// Set the exported fields before the first call to Handle or Serve and do
// not change them afterwards. Routes may be added at any time.
type Router struct {
	// GetCertificate returns the proxy's certificate for a handshake. It is
	// called for every handshake, so a renewed host certificate is used at
	// once. Required.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// HandshakeTimeout bounds the time from accepting a connection until
	// it is handed to its route's listener: waiting for a handshake slot,
	// the TLS handshake, and waiting for the route's Accept. A client that
	// stalls or sends garbage is cut off then; others are not held up,
	// since each handshake runs on its own goroutine. Zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxConcurrentHandshakes bounds TLS handshakes in progress (each
	// costs signature operations). Connections beyond it wait for a slot
	// within HandshakeTimeout. Zero means DefaultMaxConcurrentHandshakes.
	MaxConcurrentHandshakes int
	// Logger receives refused and dropped connections (at debug level:
	// they are what the internet sends) and configuration problems. Nil
	// means no logs.
	Logger *zap.Logger

	initOnce sync.Once
	log      *zap.Logger
	sem      chan struct{}
	base     *tls.Config
	ctx      context.Context // ends at Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup // handshake goroutines

	mu        sync.RWMutex
	closed    bool
	addr      net.Addr
	listeners map[net.Listener]struct{}
	byProto   map[string]*route
	def       *route
	routes    []*route
}

// route is one registered Route with its listener.
type route struct {
	Route
	protos []string
	l      *routeListener
}

// hsState carries per-connection state from the handshake goroutine to
// GetConfigForClient, through the handshake's context.
type hsState struct {
	route *route
	proto string
}

type hsStateKey struct{}

func (r *Router) init() {
	r.initOnce.Do(func() {
		r.log = r.Logger
		if r.log == nil {
			r.log = zap.NewNop()
		}
		r.log = r.log.Named("router")
		n := r.MaxConcurrentHandshakes
		if n <= 0 {
			n = DefaultMaxConcurrentHandshakes
		}
		r.sem = make(chan struct{}, n)
		r.ctx, r.cancel = context.WithCancel(context.Background())
		r.listeners = make(map[net.Listener]struct{})
		r.byProto = make(map[string]*route)
		// One shared base config, so that session tickets are encrypted
		// with the same (automatically rotated) keys for every connection.
		// Resumption across routes is safe: crypto/tls re-checks a resumed
		// session's verified chains against the route's ClientAuth and
		// ClientCAs.
		r.base = &tls.Config{
			MinVersion:         tls.VersionTLS12,
			GetConfigForClient: r.configForClient,
		}
	})
}

func (r *Router) handshakeTimeout() time.Duration {
	if r.HandshakeTimeout > 0 {
		return r.HandshakeTimeout
	}
	return DefaultHandshakeTimeout
}

// Handle registers a route for the ALPN protocol names protos and returns
// the listener its connections come out of. The first protocol in the
// client's list that has a route wins, and the handshake then negotiates
// exactly that protocol. Closing the listener makes the router refuse the
// route's connections; it stays registered.
//
// Handle panics on a programming error: an empty protocol name, a name
// that has a route already, a second default route, a route with neither
// names nor Default, or a verifying ClientAuth without ClientCAs. After
// Close it returns a closed listener.
func (r *Router) Handle(protos []string, rt Route) net.Listener {
	r.init()
	if len(protos) == 0 && !rt.Default {
		panic("proxy: Router.Handle: a route needs ALPN protocol names or Default")
	}
	if rt.ClientAuth >= tls.VerifyClientCertIfGiven && rt.ClientCAs == nil {
		panic("proxy: Router.Handle: Route.ClientCAs is required when ClientAuth verifies client certificates")
	}
	seen := make(map[string]bool, len(protos))
	for _, p := range protos {
		if p == "" || seen[p] {
			panic(fmt.Sprintf("proxy: Router.Handle: ALPN protocol %q is empty or listed twice", p))
		}
		seen[p] = true
	}
	reg := &route{Route: rt, protos: append([]string(nil), protos...)}
	reg.l = &routeListener{r: r, ch: make(chan net.Conn, routeBacklog), done: make(chan struct{})}

	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range protos {
		if _, dup := r.byProto[p]; dup {
			panic(fmt.Sprintf("proxy: Router.Handle: ALPN protocol %q has a route already", p))
		}
	}
	if rt.Default && r.def != nil {
		panic("proxy: Router.Handle: the router has a default route already")
	}
	for _, p := range protos {
		r.byProto[p] = reg
	}
	if rt.Default {
		r.def = reg
	}
	r.routes = append(r.routes, reg)
	if r.closed {
		reg.l.Close()
	}
	return reg.l
}

// Serve accepts connections on l and runs each TLS handshake on its own
// goroutine until Close. It closes l when it returns, and always returns a
// non-nil error: ErrRouterClosed after Close, or a configuration or accept
// error. Serve may be called for several listeners; routes' listeners
// report the address of the first.
func (r *Router) Serve(l net.Listener) error {
	r.init()
	defer l.Close()
	if r.GetCertificate == nil {
		return errors.New("proxy: Router.GetCertificate is required: it returns the proxy's TLS certificate")
	}
	if r.HandshakeTimeout < 0 {
		return errors.New("proxy: Router.HandshakeTimeout is negative")
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrRouterClosed
	}
	if r.addr == nil {
		r.addr = l.Addr()
	}
	r.listeners[l] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.listeners, l)
		r.mu.Unlock()
	}()

	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if r.isClosed() {
				return ErrRouterClosed
			}
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				r.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("delay", delay))
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-r.ctx.Done():
					t.Stop()
				}
				continue
			}
			return err
		}
		delay = 0
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			return ErrRouterClosed
		}
		r.wg.Add(1)
		r.mu.Unlock()
		go r.serveConn(c)
	}
}

// Close stops the router at once: it closes the listeners Serve runs on,
// every route's listener (their Accept then returns net.ErrClosed) and the
// connections still in their handshake, and waits for the handshake
// goroutines to end. Connections already handed to a route are the route
// server's to close.
func (r *Router) Close() error {
	r.init()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	listeners := make([]net.Listener, 0, len(r.listeners))
	for l := range r.listeners {
		listeners = append(listeners, l)
	}
	routes := append([]*route(nil), r.routes...)
	r.mu.Unlock()

	r.cancel()
	var err error
	for _, l := range listeners {
		if e := l.Close(); e != nil && !errors.Is(e, net.ErrClosed) && err == nil {
			err = e
		}
	}
	for _, rt := range routes {
		rt.l.Close()
	}
	r.wg.Wait()
	return err
}

func (r *Router) isClosed() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.closed
}

// serveConn runs one connection's handshake under the deadline and the
// concurrency limit, then hands it to its route.
func (r *Router) serveConn(c net.Conn) {
	defer r.wg.Done()
	deadline := time.Now().Add(r.handshakeTimeout())
	c.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(r.ctx, deadline)
	defer cancel()
	drop := func(msg string, fields ...zap.Field) {
		c.Close()
		r.log.Debug(msg, append(fields, zap.Stringer("remote", c.RemoteAddr()))...)
	}

	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		drop("connection dropped before its handshake: too many handshakes in progress, or the router is closing")
		return
	}
	st := &hsState{}
	tc := tls.Server(c, r.base)
	err := tc.HandshakeContext(context.WithValue(ctx, hsStateKey{}, st))
	<-r.sem
	if err != nil {
		drop("TLS handshake failed", zap.Error(err))
		return
	}
	if st.route == nil { // GetConfigForClient picks the route; it always runs
		drop("TLS handshake ended without a route")
		return
	}
	// The route's server sets its own deadlines from here on.
	c.SetDeadline(time.Time{})
	if !st.route.l.deliver(ctx, tc) {
		tc.Close()
		r.log.Debug("connection dropped: its route is closed or did not accept it in time",
			zap.String("alpn", st.proto), zap.Stringer("remote", c.RemoteAddr()))
	}
}

// configForClient picks the route for a ClientHello and returns its TLS
// settings.
func (r *Router) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	st, _ := hello.Context().Value(hsStateKey{}).(*hsState)
	if st == nil {
		return nil, errors.New("proxy: the connection did not come through Router.Serve")
	}
	rt, proto := r.pick(hello.SupportedProtos)
	if rt == nil {
		return nil, fmt.Errorf("proxy: no route for ALPN protocols %q", hello.SupportedProtos)
	}
	if rt.l.isClosed() {
		return nil, fmt.Errorf("proxy: the route for ALPN protocol %q is closed", proto)
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.getCertificate,
		ClientAuth:     rt.ClientAuth,
	}
	if proto != "" {
		cfg.NextProtos = []string{proto}
	}
	if rt.ClientCAs != nil {
		cfg.ClientCAs = rt.ClientCAs()
	}
	if rt.ClientAuth >= tls.VerifyClientCertIfGiven && cfg.ClientCAs == nil {
		r.log.Warn("route refused a handshake: its ClientCAs returned no CA pool", zap.Strings("alpn", rt.protos))
		return nil, errors.New("proxy: the route has no CAs to verify client certificates")
	}
	st.route, st.proto = rt, proto
	return cfg, nil
}

// pick returns the route of the first protocol the client offers that has
// one, or the default route (with proto "").
func (r *Router) pick(offered []string) (rt *route, proto string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, p := range offered {
		if rt := r.byProto[p]; rt != nil {
			return rt, p
		}
	}
	return r.def, ""
}

func (r *Router) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := r.GetCertificate(hello)
	if err == nil && cert == nil {
		err = errors.New("no certificate")
	}
	if err != nil {
		r.log.Warn("cannot get the proxy's certificate for a handshake", zap.Error(err))
		return nil, fmt.Errorf("proxy: Router.GetCertificate: %w", err)
	}
	return cert, nil
}

func (r *Router) address() net.Addr {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.addr == nil {
		return notServingAddr{}
	}
	return r.addr
}

// notServingAddr is a route listener's address before Serve was called.
type notServingAddr struct{}

func (notServingAddr) Network() string { return "tcp" }
func (notServingAddr) String() string  { return "(router not serving yet)" }

// routeListener is the net.Listener of one route.
type routeListener struct {
	r    *Router
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

// Accept returns the route's next connection, a *tls.Conn whose handshake
// is done. After Close it returns an error that matches net.ErrClosed.
func (l *routeListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, l.closedErr()
	default:
	}
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, l.closedErr()
	}
}

// Close stops the route: connections waiting for Accept are closed, and
// the router refuses the route's new connections.
func (l *routeListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.drain()
	})
	return nil
}

// Addr is the address of the router's listener.
func (l *routeListener) Addr() net.Addr { return l.r.address() }

func (l *routeListener) closedErr() error {
	a := l.Addr()
	return &net.OpError{Op: "accept", Net: a.Network(), Addr: a, Err: net.ErrClosed}
}

func (l *routeListener) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// deliver hands c to Accept, waiting while the backlog is full until ctx
// ends. It reports whether c was taken.
func (l *routeListener) deliver(ctx context.Context, c net.Conn) bool {
	select {
	case l.ch <- c:
		// Close may have drained the backlog before c arrived.
		if l.isClosed() {
			l.drain()
		}
		return true
	case <-l.done:
		return false
	case <-ctx.Done():
		return false
	}
}

func (l *routeListener) drain() {
	for {
		select {
		case c := <-l.ch:
			c.Close()
		default:
			return
		}
	}
}
