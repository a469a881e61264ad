// Package proxy is the stateless gateway of a Portcullis cluster: it
// terminates TLS from database clients, checks their certificates and
// dispatches each connection over the reverse tunnel to an agent that serves
// the requested database.
//
// # One public port
//
// A [Router] terminates TLS on the proxy's public listener and routes each
// connection by the ALPN protocol its client offers: portcullis-postgres,
// portcullis-mysql, portcullis-tunnel (agents' SSH), postgresql (psql 17
// direct TLS), and HTTP (h2, http/1.1) as the default route for clients
// that offer no ALPN. [Router.Handle] returns a net.Listener per route, so
// any Serve(net.Listener) — an http.Server, a tunnel.Server, a database
// front end — runs behind the one port. Each route has its own
// client-certificate policy, chosen per handshake in
// tls.Config.GetConfigForClient; the negotiated protocol is exactly the
// route's. Handshakes run on their own goroutines, bounded in number
// (MaxConcurrentHandshakes) and in time (HandshakeTimeout), so a client
// that stalls or sends garbage holds up nobody.
//
// # The Auth service's API
//
// An [APIForwarder] serves the Auth service's HTTPS API (paths under /v1/)
// on the proxy's HTTP route: clients and agents need to reach nothing but
// the proxy. It forwards each call over the proxy's own mutual TLS and
// tells the Auth service who the client is: its address
// (authclient.HeaderForwardedFor), the certificate chain it presented to
// the proxy (authclient.HeaderForwardedCert), and, for the join-trust call,
// keying material exported from its TLS connection with the proxy
// (authclient.HeaderForwardedEKM), which binds the Auth service's proof to
// that connection. The Auth service believes these headers only from a
// caller with a Proxy host certificate, and the forwarder removes any that
// a client sends. Errors come in the Auth service's JSON envelope
// ({"error": {"code", "message"}}), so clients handle them alike.
package proxy
