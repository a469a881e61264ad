// Package tunnel is the SSH reverse tunnel between database agents and
// proxies: agents dial out to the proxy and keep the connection open, and
// the proxy opens a channel back over it for each client session. It knows
// nothing about databases: a session is a net.Conn plus an opaque routing
// blob, and what an agent serves is an opaque metadata blob.
//
// # Proxy side
//
// A Server accepts agents on a net.Listener (plain TCP, or the TLS
// connections an ALPN router hands over for "portcullis-tunnel"). Each
// connection's SSH handshake runs on its own goroutine under
// HandshakeTimeout and a MaxConcurrentHandshakes limit, so a client that
// sends garbage or stalls half-way is cut off without holding up others.
// Agents are kept in a registry by host ID (Agents, OnAgentEvent); an agent
// may have several connections, all tracked, and Dial uses the newest.
//
// # Agent side
//
// An Agent dials every proxy address it knows, authenticates with its SSH
// user certificate, advertises its metadata, and serves the session
// channels proxies open with Handler. After any drop it reconnects with
// exponential backoff and full jitter (Backoff: 250ms doubling to 30s, reset
// by a tunnel that lived 10s), so agents cut off by a proxy restart do not
// return in one wave. GetSigner is consulted on each attempt, so a renewed
// certificate is used on the next reconnect.
//
// # Certificates and checks
//
// Both ends use SSH certificates from the cluster's host CA (ca.SignSSHHost,
// ca.SignSSHAgent). The proxy accepts an agent whose user certificate is
// signed by one of Server.CAKeys, valid at Server.Clock, whose KeyId equals
// the SSH user (the agent's host ID) and is among its principals, and whose
// RoleExtension is in AllowedRoles ("Db"); refusals are logged with the
// reason. The proxy drops an agent whose certificate expires while it is
// connected. The agent accepts a proxy whose host certificate is signed by
// one of Agent.HostCAKeys, valid at Agent.Clock, and lists the host part of
// the dialed address among its principals (as OpenSSH does; a certificate
// without principals is refused). A proxy behind a load balancer therefore
// needs the balancer's name among its principals, or the agent sets
// CheckProxy. The proxy's host ID is its certificate's KeyId.
//
// # Keepalives
//
// The proxy sends keepalive@openssh.com every KeepAliveInterval (2s) and
// drops an agent that leaves KeepAliveCount (3) probes in a row unanswered,
// so a vanished agent leaves the registry within about (3+1) x 2s. The agent
// only probes when the proxy has been silent for two intervals, and
// reconnects after the same number of misses. Probes use timers, not a
// goroutine per connection.
//
// # Several proxies
//
// Server.SetPeers gives a proxy the list of all proxies (ID and address);
// it sends the list to each agent (peers@portcullis request, JSON) on
// connect and on change. An agent keeps one tunnel per proxy: it dials each
// advertised address it is not connected to, closes a tunnel that turns out
// to reach a proxy it already holds (by host ID), and forgets a learned
// address once no connected proxy advertises it. Addresses in
// Agent.ProxyAddrs are never forgotten.
//
// # Channels
//
// ChannelSession ("portcullis-session") is opened by the proxy (Server.Dial)
// with the caller's routing blob as extra data. Agents open channels the
// other way with Agent.OpenChannel; the proxy serves them with
// Server.ChannelHandlers. ChannelAuth ("portcullis-auth", Agent.DialAuth) is
// the agent's path to the Auth service for certificate renewal and
// heartbeats once it has a certificate: serve it with ForwardTo, which
// splices the bytes to the Auth service; the agent runs mTLS to the Auth
// service inside it with its X.509 host certificate. Joining with a token,
// before the agent has any certificate, goes over the proxy's public HTTPS
// endpoint instead, outside this package.
//
// Channel connections are net.Conns with working deadlines (a timed-out
// Read or Write leaves the connection usable), CloseWrite for half-close,
// and the tunnel's transport addresses as LocalAddr and RemoteAddr.
//
// # Wire choices
//
// Ciphers: aes128-gcm@openssh.com, chacha20-poly1305@openssh.com,
// aes256-gcm@openssh.com; key exchange curve25519-sha256 first. x/crypto/ssh
// fixes the channel window (2 MiB) and maximum packet (32 KiB); the package
// moves data in 32 KiB chunks to match.
package tunnel
