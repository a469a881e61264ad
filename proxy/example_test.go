package proxy_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/proxy"
)

// A proxy's public port: an HTTP route (the default, for clients without
// ALPN) and a custom protocol route, both behind one TLS listener.
func ExampleRouter() {
	// The proxy's host certificate; in a real proxy it comes from joining
	// the cluster and renews itself.
	hostCA, err := ca.NewAuthority(ca.HostCA, "example", nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	key, err := ca.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := hostCA.Sign(ca.SignRequest{
		PublicKey: key.Public(),
		Identity: ca.Identity{Kind: ca.KindHost, ClusterName: "example", Username: "proxy-1",
			Roles: []string{ca.SystemRoleProxy}},
		TTL:      time.Hour,
		DNSNames: []string{"localhost"},
	})
	if err != nil {
		log.Fatal(err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}

	router := &proxy.Router{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil },
	}
	defer router.Close()

	// HTTP: any http.Server serves the route's listener.
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over %s", r.Proto)
	})}
	go web.Serve(router.Handle([]string{"h2", "http/1.1"}, proxy.Route{Default: true}))
	defer web.Close()

	// A custom protocol: the listener returns *tls.Conn.
	echo := router.Handle([]string{"portcullis-echo"}, proxy.Route{})
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return // net.ErrClosed after router.Close
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go router.Serve(l)

	roots := x509.NewCertPool()
	roots.AddCert(hostCA.Cert)

	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{
		RootCAs: roots, ServerName: "localhost", NextProtos: []string{"portcullis-echo"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(c, "ping")
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Printf("%s: %s", c.ConnectionState().NegotiatedProtocol, line)
	c.Close()

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	resp, err := (&http.Client{Transport: tr}).Get("https://localhost:" + port + "/")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))
	// Output:
	// portcullis-echo: ping
	// hello over HTTP/2.0
}

// The Auth service's API on the proxy's HTTP route. The proxy asks for
// (but does not verify) client certificates there: the Auth service
// verifies the chain the forwarder passes on.
func ExampleAPIForwarder() {
	var (
		hostCert *tls.Certificate     // the proxy's host certificate (renewed in place)
		hostCAs  = x509.NewCertPool() // the cluster's host CAs
	)
	fwd, err := proxy.NewAPIForwarder(proxy.APIForwarderConfig{
		AuthAddr: "auth.example.internal:3025",
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    hostCAs,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return hostCert, nil
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer fwd.Close()

	router := &proxy.Router{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return hostCert, nil },
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", fwd)
	// mux.Handle("/", webUI)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(router.Handle([]string{"h2", "http/1.1"}, proxy.Route{
		Default:    true,
		ClientAuth: tls.RequestClientCert,
	}))

	l, err := net.Listen("tcp", ":443")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(router.Serve(l))
}
