package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/proxy"
)

const testALPN = "portcullis-test"

// routerFixture is a router with an echo route for testALPN and a default
// HTTP route served by an http.Server.
type routerFixture struct {
	pki    *testPKI
	router *proxy.Router
	addr   string
	echo   net.Listener
	http   net.Listener
}

func newRouterFixture(t *testing.T, r *proxy.Router) *routerFixture {
	t.Helper()
	pki := newTestPKI(t)
	if r == nil {
		r = &proxy.Router{}
	}
	r.GetCertificate = pki.getCertificate
	f := &routerFixture{pki: pki, router: r}
	l := serveRouter(t, r)
	f.addr = l.Addr().String()

	f.echo = r.Handle([]string{testALPN}, proxy.Route{})
	connServer(t, f.echo, func(c net.Conn) {
		if _, ok := c.(*tls.Conn); !ok {
			t.Errorf("route listener returned a %T, want *tls.Conn", c)
		}
		io.Copy(c, c)
	})

	f.http = r.Handle([]string{"h2", "http/1.1"}, proxy.Route{Default: true})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			t.Error("http.Server behind the router did not set r.TLS")
			return
		}
		fmt.Fprintf(w, "http %s alpn=%q", r.Proto, r.TLS.NegotiatedProtocol)
	})}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(f.http) }()
	t.Cleanup(func() { stopHTTP(t, srv, done) })
	return f
}

// dial completes a TLS handshake with the router offering protos.
func (f *routerFixture) dial(t *testing.T, protos []string, cert *tls.Certificate) (*tls.Conn, error) {
	t.Helper()
	d := tls.Dialer{Config: f.pki.clientConfig(protos, cert)}
	c, err := d.DialContext(context.Background(), "tcp", f.addr)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// echoRoundTrip writes a line and reads it back.
func echoRoundTrip(c net.Conn) error {
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("echo returned %q", line)
	}
	return nil
}

// httpOverConn sends one HTTP/1.1 request on c and returns the body.
func httpOverConn(c net.Conn) (string, error) {
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestRouterRoutesByALPN(t *testing.T) {
	f := newRouterFixture(t, nil)
	for _, tc := range []struct {
		name   string
		protos []string
		alpn   string // negotiated
		want   string // "echo" or the HTTP handler's answer
	}{
		{"custom protocol", []string{testALPN}, testALPN, "echo"},
		{"first known protocol wins", []string{"unknown", testALPN, "h2"}, testALPN, "echo"},
		{"http/1.1", []string{"http/1.1"}, "http/1.1", `http HTTP/1.1 alpn="http/1.1"`},
		{"earlier known protocol wins", []string{"http/1.1", testALPN}, "http/1.1", `http HTTP/1.1 alpn="http/1.1"`},
		{"no ALPN goes to the default route", nil, "", `http HTTP/1.1 alpn=""`},
		{"unknown ALPN goes to the default route", []string{"unknown"}, "", `http HTTP/1.1 alpn=""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.dial(t, tc.protos, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.ConnectionState().NegotiatedProtocol; got != tc.alpn {
				t.Errorf("negotiated %q, want %q", got, tc.alpn)
			}
			if tc.want == "echo" {
				if err := echoRoundTrip(c); err != nil {
					t.Fatal(err)
				}
				return
			}
			got, err := httpOverConn(c)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("http2 client", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: f.pki.clientConfig(nil, nil), ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://localhost:" + portOf(t, f.addr) + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if want := `http HTTP/2.0 alpn="h2"`; string(b) != want {
			t.Errorf("got %q, want %q", b, want)
		}
	})
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestRouterClientAuth(t *testing.T) {
	f := newRouterFixture(t, nil)
	l := f.router.Handle([]string{"portcullis-mtls"}, proxy.Route{
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  f.pki.userCA.CertPool,
	})
	connServer(t, l, func(c net.Conn) {
		cs := c.(*tls.Conn).ConnectionState()
		fmt.Fprintf(c, "hello %s\n", cs.PeerCertificates[0].Subject.CommonName)
	})
	greeting := func(cert *tls.Certificate) (string, error) {
		c, err := f.dial(t, []string{"portcullis-mtls"}, cert)
		if err != nil {
			return "", err
		}
		defer c.Close()
		// With TLS 1.3 the server refuses the client's certificate after
		// the client's side of the handshake is done: the read sees it.
		return bufio.NewReader(c).ReadString('\n')
	}

	got, err := greeting(f.pki.userCert(t, "alice"))
	if err != nil || got != "hello alice\n" {
		t.Fatalf("client with a user certificate: %q, %v", got, err)
	}
	if got, err := greeting(nil); err == nil {
		t.Errorf("client without a certificate was served: %q", got)
	}
	other := newTestPKI(t)
	if got, err := greeting(other.userCert(t, "mallory")); err == nil {
		t.Errorf("client with a certificate from another CA was served: %q", got)
	}
	// The route with no client auth still works without a certificate.
	c, err := f.dial(t, []string{testALPN}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echoRoundTrip(c); err != nil {
		t.Fatal(err)
	}
}

// stalledConns opens a connection that sends nothing and one that sends
// the start of a TLS record that never completes.
func stalledConns(t *testing.T, addr string) []net.Conn {
	t.Helper()
	var out []net.Conn
	for _, prefix := range [][]byte{nil, {0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00}} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(prefix); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// waitClosedByServer reads c until the server closes it. The generous
// read deadline only turns a hang into a failure.
func waitClosedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the router did not close a stalled connection")
	}
}

func TestRouterStalledClientsDoNotHoldUpOthers(t *testing.T) {
	// With an hour to handshake, only Close ends the stalled connections.
	f := newRouterFixture(t, &proxy.Router{HandshakeTimeout: time.Hour})
	stalled := stalledConns(t, f.addr)
	c, err := f.dial(t, []string{testALPN}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echoRoundTrip(c); err != nil {
		t.Fatal(err)
	}
	if err := f.router.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range stalled {
		waitClosedByServer(t, s)
	}
}

func TestRouterHandshakeTimeout(t *testing.T) {
	f := newRouterFixture(t, &proxy.Router{HandshakeTimeout: 200 * time.Millisecond})
	for _, s := range stalledConns(t, f.addr) {
		waitClosedByServer(t, s)
	}
	// Plain text is refused at once.
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	waitClosedByServer(t, c)
	// The router still serves.
	tc, err := f.dial(t, []string{testALPN}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := echoRoundTrip(tc); err != nil {
		t.Fatal(err)
	}
}

func TestRouterMaxConcurrentHandshakes(t *testing.T) {
	f := newRouterFixture(t, &proxy.Router{HandshakeTimeout: time.Hour, MaxConcurrentHandshakes: 1})
	stall, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	for proxy.HandshakesInProgress(f.router) != 1 {
		time.Sleep(time.Millisecond)
	}
	// The one slot is taken: a handshake cannot start.
	d := tls.Dialer{Config: f.pki.clientConfig([]string{testALPN}, nil)}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if c, err := d.DialContext(ctx, "tcp", f.addr); err == nil {
		c.Close()
		t.Fatal("a handshake ran while the only slot was taken")
	}
	// Once the stalled client leaves, handshakes run again.
	stall.Close()
	c, err := f.dial(t, []string{testALPN}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echoRoundTrip(c); err != nil {
		t.Fatal(err)
	}
}

func TestRouterClose(t *testing.T) {
	pki := newTestPKI(t)
	r := &proxy.Router{GetCertificate: pki.getCertificate}
	route := r.Handle([]string{testALPN}, proxy.Route{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- r.Serve(l) }()
	acceptErr := make(chan error, 1)
	go func() {
		_, err := route.Accept()
		acceptErr <- err
	}()
	// Addr is the outer listener's once Serve runs.
	for route.Addr().String() != l.Addr().String() {
		time.Sleep(time.Millisecond)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-serveErr; !errors.Is(err, proxy.ErrRouterClosed) {
		t.Errorf("Serve returned %v, want ErrRouterClosed", err)
	}
	if err := <-acceptErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("a blocked Accept returned %v, want net.ErrClosed", err)
	}
	if _, err := route.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close returned %v, want net.ErrClosed", err)
	}
	late := r.Handle([]string{"late"}, proxy.Route{})
	if _, err := late.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a route added after Close returned %v, want net.ErrClosed", err)
	}
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Serve(l2); !errors.Is(err, proxy.ErrRouterClosed) {
		t.Errorf("Serve after Close returned %v, want ErrRouterClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("the router's listener still accepts after Close")
	}
}

func TestRouterRefusesClosedAndUnknownRoutes(t *testing.T) {
	f := newRouterFixture(t, nil)
	f.echo.Close()
	if c, err := f.dial(t, []string{testALPN}, nil); err == nil {
		c.Close()
		t.Error("a connection for a closed route completed its handshake")
	}
	// Other routes still work.
	c, err := f.dial(t, []string{"http/1.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := httpOverConn(c); err != nil {
		t.Fatal(err)
	}

	// Without a default route an unknown protocol is refused.
	pki := newTestPKI(t)
	r := &proxy.Router{GetCertificate: pki.getCertificate}
	l := serveRouter(t, r)
	connServer(t, r.Handle([]string{testALPN}, proxy.Route{}), func(c net.Conn) { io.Copy(c, c) })
	for _, protos := range [][]string{{"unknown"}, nil} {
		d := tls.Dialer{Config: pki.clientConfig(protos, nil)}
		if c, err := d.Dial("tcp", l.Addr().String()); err == nil {
			c.Close()
			t.Errorf("ALPN %q was served without a route", protos)
		}
	}
}

func TestRouterRefusesOldTLS(t *testing.T) {
	f := newRouterFixture(t, nil)
	cfg := f.pki.clientConfig([]string{testALPN}, nil)
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if c, err := tls.Dial("tcp", f.addr, cfg); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
}

func TestRouterConfigErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &proxy.Router{}
	if err := r.Serve(l); err == nil || !strings.Contains(err.Error(), "GetCertificate") {
		t.Errorf("Serve without GetCertificate: %v", err)
	}
	r.Close()

	r = &proxy.Router{}
	defer r.Close()
	r.Handle([]string{"a"}, proxy.Route{Default: true})
	for name, fn := range map[string]func(){
		"no names":             func() { r.Handle(nil, proxy.Route{}) },
		"empty name":           func() { r.Handle([]string{""}, proxy.Route{}) },
		"name twice in a call": func() { r.Handle([]string{"b", "b"}, proxy.Route{}) },
		"taken name":           func() { r.Handle([]string{"a"}, proxy.Route{}) },
		"second default":       func() { r.Handle([]string{"c"}, proxy.Route{Default: true}) },
		"verify without CAs":   func() { r.Handle([]string{"d"}, proxy.Route{ClientAuth: tls.RequireAndVerifyClientCert}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Handle did not panic", name)
				}
			}()
			fn()
		}()
	}
}

func TestRouterRouteWithoutCAPoolRefuses(t *testing.T) {
	f := newRouterFixture(t, nil)
	l := f.router.Handle([]string{"portcullis-mtls"}, proxy.Route{
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  func() *x509.CertPool { return nil },
	})
	connServer(t, l, func(c net.Conn) { io.WriteString(c, "served\n") })
	if c, err := f.dial(t, []string{"portcullis-mtls"}, f.pki.userCert(t, "alice")); err == nil {
		defer c.Close()
		if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			t.Errorf("a route whose ClientCAs returned nil served a client: %q", line)
		}
	}
}
