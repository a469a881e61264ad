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
//
// # Database sessions
//
// [PostgresServer] and [MySQLServer] accept database clients on native
// ports (PostgreSQL's SSLRequest; MySQL's greeting and TLS upgrade) and on
// the Router's ALPN routes. What they share is the [Frontend]: the client's
// certificate must be a user certificate of this cluster carrying a route
// to a database of that protocol, agreeing with the user and database the
// client asked for, and the user must not be locked. Every refusal reaches
// the client in its protocol's own error form (an ErrorResponse, an ERR
// packet), as one sentence, and is audited as a failed db.session.start.
// A [Dispatcher] then picks an agent that serves the database (from the
// agents' tunnel metadata), opens a tunnel channel to it and speaks mutual
// TLS inside with a short-lived session certificate from the Auth service,
// cached per user certificate so that a new connection costs no signing
// round trip. After the login the proxy copies bytes both ways; the agent
// audits. A PostgreSQL CancelRequest (Ctrl-C in psql) is routed to the
// agent of the session whose key it carries.
package proxy
